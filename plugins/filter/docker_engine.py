"""Filters of the docker_engine role: the daemon.json merge and address-pool checks.

    {{ current | docker_engine_daemon_merge(managed, extra) }}
    {{ pools | docker_engine_pool_errors }}   # [] when every pool is usable
    {{ text | docker_engine_parse_daemon_json(path) }}  # {} for an empty/missing file
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Callable

from ansible.errors import AnsibleFilterError

_RFC1918 = [ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def docker_engine_parse_daemon_json(text: str, path: str) -> dict[str, Any]:
    """Parse daemon.json; refuse (never overwrite) a file that is not a JSON object."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as err:
        raise AnsibleFilterError(
            f"{path} is not valid JSON ({err}); fix or remove it, the role never overwrites"
            " a file it cannot read"
        ) from err
    if not isinstance(value, dict):
        raise AnsibleFilterError(f"{path} must hold a JSON object, found {type(value).__name__}")
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def docker_engine_daemon_merge(
    current: dict[str, Any], managed: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """Merge the role's keys into the existing daemon.json without dropping foreign keys.

    A managed key set to None is left as it is (the user opted out of managing it). Nested
    dicts merge key by key, so e.g. a runtime registered by another role survives; lists
    (default-address-pools) are replaced whole.
    """
    owned = {key: value for key, value in managed.items() if value is not None}
    return _merge(_merge(current, owned), extra)


def docker_engine_pool_errors(pools: list[dict[str, Any]]) -> list[str]:
    """Explain what is wrong with each default-address-pools entry (empty when all are fine)."""
    errors: list[str] = []
    for index, pool in enumerate(pools):
        where = f"docker_engine_default_address_pools[{index}]"
        try:
            base = ipaddress.ip_network(str(pool.get("base")), strict=True)
        except ValueError as err:
            errors.append(f"{where}.base: {err}; give a network such as 172.20.0.0/14")
            continue
        size = pool.get("size")
        if not any(base.version == 4 and base.subnet_of(net) for net in _RFC1918):
            errors.append(f"{where}.base: {base} is not a private IPv4 range (RFC 1918)")
        if not isinstance(size, int) or isinstance(size, bool) or not base.prefixlen <= size <= 30:
            errors.append(f"{where}.size: {size!r} must be an integer from {base.prefixlen} to 30")
    return errors


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "docker_engine_daemon_merge": docker_engine_daemon_merge,
            "docker_engine_pool_errors": docker_engine_pool_errors,
            "docker_engine_parse_daemon_json": docker_engine_parse_daemon_json,
        }
