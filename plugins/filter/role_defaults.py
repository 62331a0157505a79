"""Partial overrides of a role's dict defaults merge field by field over the built-in value,
which is read from the role's own defaults/main.yml (one copy), instead of replacing it whole.

    {{ docker_engine_log_opts | agentfleet.fleet.over_role_default(role_path, 'docker_engine_log_opts') }}
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


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"over_role_default": over_role_default}
