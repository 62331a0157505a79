"""daemon.json's one merge: the Docker engine role's options and each runtime role's entry go
through here, so no key another tool or role set is ever dropped."""

from __future__ import annotations

import json
from typing import Any

from ansible_collections.agentfleet.fleet.plugins.module_utils.merge import deep_merge


class DaemonJsonError(ValueError):
    """The file is not a JSON object: it is refused, never overwritten."""


def parse(text: str, path: str) -> dict[str, Any]:
    """The file's object; {} for an empty or missing file."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise DaemonJsonError(f"{path} is not valid JSON ({err}); fix or remove it, agentfleet never overwrites"
                              " a file it cannot read") from err
    if not isinstance(value, dict):
        raise DaemonJsonError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value


def merge(current: dict[str, Any], managed: dict[str, Any], extra: dict[str, Any] | None = None,
          runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """current with the managed keys (a key set to None is left as it is: the user opted out of
    managing it), then extra, merged recursively (lists are replaced whole), then one runtime entry
    ({name, path, args}) under "runtimes", every other runtime untouched."""
    wanted = deep_merge(deep_merge(current, {key: value for key, value in managed.items() if value is not None}), extra or {})
    if runtime:
        entry = {"path": runtime["path"], **({"runtimeArgs": list(runtime["args"])} if runtime.get("args") else {})}
        wanted = {**wanted, "runtimes": {**dict(wanted.get("runtimes") or {}), runtime["name"]: entry}}
    return wanted


def render(config: dict[str, Any]) -> str:
    return json.dumps(config, indent=2, sort_keys=False) + "\n"
