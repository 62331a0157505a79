"""Filters of the docker_engine role: daemon.json's preflight parse and address-pool checks.

    {{ pools | docker_engine_pool_errors }}   # [] when every pool is usable
    {{ text | docker_engine_parse_daemon_json(path) }}  # {} for an empty/missing file
"""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

from ansible.errors import AnsibleFilterError
from ansible_collections.agentfleet.fleet.plugins.module_utils.daemon_json import DaemonJsonError, parse

_RFC1918 = [ipaddress.IPv4Network(net) for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


def docker_engine_parse_daemon_json(text: str, path: str) -> dict[str, Any]:
    """Parse daemon.json before any change (the docker_daemon_json module parses it the same way)."""
    try:
        return parse(text, path)
    except DaemonJsonError as err:
        raise AnsibleFilterError(str(err)) from err


NULLABLE = {"icc": bool, "live_restore": bool, "userland_proxy": bool, "no_new_privileges": bool, "log_driver": str,
            "log_opts": dict, "default_ulimits": dict, "default_address_pools": list}


def docker_engine_option_errors(values: dict[str, Any]) -> list[str]:
    """The daemon options that take a value or null (null leaves the key alone), by their role name
    without the docker_engine_ prefix: what is neither."""
    errors = []
    for name, kind in NULLABLE.items():
        value = values.get(name)
        if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            errors.append(f"docker_engine_{name}: {value!r} must be a {kind.__name__} or null (null leaves the key alone)")
    return errors


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


def docker_engine_ulimits(value: dict[str, Any] | None, default: dict[str, Any], host: dict[str, int]) -> dict[str, Any]:
    """The default ulimits within what the host grants (host: its init's hard limits by name). The
    role's own value is lowered to the host's limit (a container cannot get more, and dockerd
    would refuse to start it); a value the user set above it is an error naming the field."""
    if value is None:
        return {"ulimits": None, "errors": []}
    ulimits, errors = {}, []
    for name, limit in value.items():
        ceiling = host.get(str(limit.get("Name", name)) if isinstance(limit, dict) else name)
        hard = limit.get("Hard") if isinstance(limit, dict) else None
        if ceiling is None or not isinstance(hard, int) or hard <= ceiling:
            ulimits[name] = limit
        elif limit == default.get(name):
            ulimits[name] = {**limit, "Hard": ceiling, "Soft": min(int(limit.get("Soft", ceiling)), ceiling)}
        else:
            ulimits[name] = limit
            errors.append(f"docker_engine_default_ulimits.{name}: Hard {hard} is above what this host grants "
                          f"({ceiling}, the hard limit of its init); no container could start with it")
    return {"ulimits": ulimits, "errors": errors}


class FilterModule:
    """Ansible entry point."""

    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "docker_engine_pool_errors": docker_engine_pool_errors,
            "docker_engine_option_errors": docker_engine_option_errors,
            "docker_engine_ulimits": docker_engine_ulimits,
            "docker_engine_parse_daemon_json": docker_engine_parse_daemon_json,
        }
