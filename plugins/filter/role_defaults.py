"""Partial overrides of a role's dict defaults merge field by field over the built-in value,
which is read from the role's own defaults/main.yml (one copy), instead of replacing it whole.

    {{ docker_engine_log_opts | agentfleet.fleet.over_role_default(role_path, 'docker_engine_log_opts') }}
    {{ 'ollama_agent_socket_dir' | agentfleet.fleet.role_default('ollama') }}   # where no role_path is
"""

from __future__ import annotations

import os
from typing import Any, Callable

import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.agentfleet.fleet.plugins.module_utils.merge import deep_merge


def over_role_default(value: Any, role_path: str, name: str) -> Any:
    """value merged over the role's default of name; None (the user opts out) stays None."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AnsibleFilterError(f"{name}: must be a mapping, got {type(value).__name__}")
    with open(os.path.join(role_path, "defaults", "main.yml"), encoding="utf-8") as handle:
        default = (yaml.safe_load(handle) or {}).get(name)
    if not isinstance(default, dict):
        raise AnsibleFilterError(f"{name}: the role's default is not a mapping ({role_path})")
    return deep_merge(default, dict(value))


def role_default(name: str, role: str) -> Any:
    """The default of name in the role of this collection (a play that derives a value for one
    role from another's default reads it here instead of keeping a second copy)."""
    defaults = os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", "roles", role, "defaults", "main.yml")
    with open(defaults, encoding="utf-8") as handle:
        values = yaml.safe_load(handle) or {}
    if name not in values:
        raise AnsibleFilterError(f"{name}: not a default of the role {role}")
    return values[name]


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"over_role_default": over_role_default, "role_default": role_default}
