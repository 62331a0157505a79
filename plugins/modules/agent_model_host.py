#!/usr/bin/python
# Copyright: (c) 2026, agentfleet developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what the model is checked against on the host in one call: its accounts, its groups and
agentfleet's registry (separate getent, stat and slurp tasks cost a round trip each, in every play)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: agent_model_host
short_description: Read the host's accounts, groups and agentfleet's account registry
version_added: 0.1.0
author: agentfleet developers (@agentfleet)
description:
  - Sets the facts C(getent_passwd) and C(getent_group) in the form ansible.builtin.getent gives
    them (through NSS, so directory accounts count too), and returns the registry of accounts
    agentfleet created (empty when the file does not exist yet). Changes nothing.
options:
  registry:
    description: Path of agentfleet's account registry (JSON).
    type: path
    required: true
"""

EXAMPLES = r"""
- name: Read the host's accounts and agentfleet's registry
  agentfleet.fleet.agent_model_host:
    registry: /var/lib/agentfleet/accounts.json
  register: agent_model_host
"""

RETURN = r"""
registry:
  description: The accounts agentfleet created, as the registry file holds them ({} when it does not exist).
  returned: success
  type: dict
  sample: {users: [agentfleet-marie], groups: [agentfleet-marie]}
ansible_facts:
  description: The host's accounts and groups.
  returned: success
  type: complex
  contains:
    getent_passwd:
      description: Each user's passwd fields after its name, as ansible.builtin.getent gives them.
      type: dict
      returned: success
    getent_group:
      description: Each group's fields after its name, as ansible.builtin.getent gives them.
      type: dict
      returned: success
"""

import grp
import json
import pwd
from typing import Any

from ansible.module_utils.basic import AnsibleModule


EMPTY_REGISTRY: dict[str, dict[str, Any]] = {"users": {}, "groups": {}}


def host_accounts() -> dict[str, dict[str, list[str]]]:
    """passwd and group as ansible.builtin.getent returns them: name -> the remaining fields."""
    passwd = {entry.pw_name: [entry.pw_passwd, str(entry.pw_uid), str(entry.pw_gid), entry.pw_gecos, entry.pw_dir,
                              entry.pw_shell] for entry in pwd.getpwall()}
    group = {entry.gr_name: [entry.gr_passwd or "", str(entry.gr_gid), ",".join(entry.gr_mem)] for entry in grp.getgrall()}
    return {"getent_passwd": passwd, "getent_group": group}


def read_registry(path: str) -> dict[str, Any]:
    """The registry, or an empty one when agentfleet has not created an account here yet."""
    try:
        with open(path, encoding="utf-8") as handle:
            registry = json.load(handle)
    except FileNotFoundError:
        return EMPTY_REGISTRY
    if not isinstance(registry, dict):
        raise ValueError(f"{path}: not a JSON object")
    return registry


def main() -> None:
    module = AnsibleModule(argument_spec={"registry": {"type": "path", "required": True}}, supports_check_mode=True)
    try:
        registry = read_registry(module.params["registry"])
    except ValueError as error:  # json.JSONDecodeError is a ValueError too
        module.fail_json(msg=f"agent_model_registry: {error}")
    module.exit_json(changed=False, ansible_facts=host_accounts(), registry=registry)


if __name__ == "__main__":
    main()
