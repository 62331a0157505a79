#!/usr/bin/python
# Copyright: (c) 2026, agentfleet developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write many directories and files in one module call (a file or copy task per file costs a round
trip each: the stack's configurations, every image's build context, one secret per agent)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: bulk_files
short_description: Write many files and directories with numeric owners, atomically, in one call
description:
  - Directories are created or fixed first, in the order given. Each file is written to a
    temporary file in its directory and renamed into place, so a reader never sees a partial file.
    Files without a I(validate) command go in first (a check may read them); then every file with
    one is checked, and only when all passed are they renamed into place, so a refused file leaves
    every checked live file as it was.
  - A file whose content, owner, group and mode already match is left alone. A symbolic link or
    other non-regular file at a file's path is replaced, never followed. Nothing is ever deleted.
  - Secrets (I(content)) are never returned or logged; plain files (I(text)) are shown under
    C(--diff), a file over 16 KiB by its size only.
version_added: 0.1.0
author: agentfleet developers (@agentfleet)
options:
  directories:
    description: Directories to create or fix, parents before children.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      uid: {description: Numeric owner (the account may not exist yet in check mode)., type: int, default: 0}
      gid: {description: Numeric group., type: int, default: 0}
      mode: {description: Octal mode such as C(0755)., type: str, required: true}
  files:
    description: Files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path of the file., type: path, required: true}
      content: {description: A secret; exclusive with I(text)., type: str}
      text: {description: Content that may be shown; exclusive with I(content)., type: str}
      uid: {description: Numeric owner., type: int, default: 0}
      gid: {description: Numeric group., type: int, default: 0}
      mode: {description: Octal mode such as C(0400)., type: str, default: "0400"}
      validate:
        description:
          - A command run on the new file before it replaces the live one, C(%s) standing for the
            new file's path; a non-zero exit fails the task and leaves the live file as it was.
        type: str
attributes:
  check_mode: {support: full, description: Reports what would be written and writes nothing.}
  diff_mode: {support: full, description: Shows each plain file's change; secrets are never shown.}
"""

EXAMPLES = r"""
- name: Write a configuration, checked by its program, and a secret only its service reads
  agentfleet.fleet.bulk_files:
    directories:
      - {path: /etc/example, mode: "0755"}
    files:
      - path: /etc/example/haproxy.cfg
        text: "{{ lookup('ansible.builtin.template', 'haproxy.cfg.j2') }}"
        mode: "0644"
        validate: /usr/sbin/haproxy -c -f %s
      - path: /etc/example/password
        content: "{{ example_password }}"
        uid: 10001
        gid: 10001
        mode: "0400"
  no_log: true
"""

RETURN = r"""
directories:
  description: Directories created or re-owned (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/example]
written:
  description: Files written (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/etc/example/haproxy.cfg]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentfleet.fleet.plugins.module_utils.bulk_files import (
    ValidationError, diff, ensure_directories, stale_directories, stale_files, write_all)


def main() -> None:
    directory = {"path": {"type": "path", "required": True}, "uid": {"type": "int", "default": 0},
                 "gid": {"type": "int", "default": 0}, "mode": {"type": "str", "required": True}}
    file = {"path": {"type": "path", "required": True}, "content": {"type": "str", "no_log": True}, "text": {"type": "str"},
            "uid": {"type": "int", "default": 0}, "gid": {"type": "int", "default": 0},
            "mode": {"type": "str", "default": "0400"}, "validate": {"type": "str"}}
    module = AnsibleModule(argument_spec={
        "directories": {"type": "list", "elements": "dict", "default": [], "options": directory},
        "files": {"type": "list", "elements": "dict", "default": [], "options": file,
                  "mutually_exclusive": [["content", "text"]], "required_one_of": [["content", "text"]]}},
        supports_check_mode=True)
    directories, files = module.params["directories"], module.params["files"]
    bad = [spec["path"] for spec in directories + files if not os.path.isabs(spec["path"])]
    if bad:
        module.fail_json(msg=f"path: not absolute: {bad}")
    new_directories = stale_directories(directories)
    stale = stale_files(files)  # a file in a missing directory is missing too (check mode)
    diffs = [diff(spec) for spec in files if spec["path"] in stale and spec.get("text") is not None] if module._diff else []
    if not module.check_mode:
        try:
            ensure_directories(directories, new_directories)
            write_all([spec for spec in files if spec["path"] in stale], module.run_command)
        except (ValidationError, OSError) as error:
            module.fail_json(msg=str(error), directories=new_directories, written=[])
    module.exit_json(changed=bool(new_directories or stale), directories=new_directories, written=stale, diff=diffs)


if __name__ == "__main__":
    main()
