"""One runtime entry merged into daemon.json."""

from __future__ import annotations

from typing import Any


def docker_runtime_merge(current: dict[str, Any], name: str, path: str, arguments: list[str]) -> dict[str, Any]:
    """daemon.json with this runtime set, every other key and runtime untouched."""
    runtimes = dict(current.get("runtimes") or {})
    runtimes[name] = {"path": path, **({"runtimeArgs": list(arguments)} if arguments else {})}
    return {**current, "runtimes": runtimes}


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"docker_runtime_merge": docker_runtime_merge}
