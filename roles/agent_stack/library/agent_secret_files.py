#!/usr/bin/python
"""Write many small secret files in one module call (one per agent: a loop of copy tasks costs a
round trip each), atomically, each only when its content, owner or mode differs."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: agent_secret_files
short_description: Write secret files with numeric owners in one call
description:
  - Each file is written through a temporary file in its directory and renamed into place, so a
    reader never sees a partial secret; a file whose content, owner, group and mode already match
    is left alone. Contents are never returned or logged. Nothing is ever deleted.
options:
  files:
    description: Files to write.
    type: list
    elements: dict
    required: true
    suboptions:
      path: {description: Absolute path of the file; its directory must exist., type: path, required: true}
      content: {description: The secret., type: str, required: true, no_log: true}
      uid: {description: Numeric owner (the account may not exist yet in check mode)., type: int, required: true}
      gid: {description: Numeric group., type: int, required: true}
      mode: {description: Octal mode such as 0400., type: str, default: "0400"}
"""

Spec = dict[str, Any]


def _matches(spec: Spec) -> bool:
    try:
        status = os.lstat(spec["path"])
        with open(spec["path"], "rb") as handle:
            current = handle.read()
    except FileNotFoundError:
        return False
    return (current == spec["content"].encode() and status.st_uid == spec["uid"] and status.st_gid == spec["gid"]
            and (status.st_mode & 0o7777) == int(spec["mode"], 8) and not os.path.islink(spec["path"]))


def _write(spec: Spec) -> None:
    directory = os.path.dirname(spec["path"])
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".agentfleet-")
    try:
        os.fchmod(descriptor, int(spec["mode"], 8))
        os.fchown(descriptor, spec["uid"], spec["gid"])
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(spec["content"].encode())
        os.replace(temporary, spec["path"])
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def stale_files(files: list[Spec]) -> list[str]:
    """Paths whose file is missing or differs."""
    return [spec["path"] for spec in files if not _matches(spec)]


def main() -> None:
    file_options = {"path": {"type": "path", "required": True}, "content": {"type": "str", "required": True, "no_log": True},
                    "uid": {"type": "int", "required": True}, "gid": {"type": "int", "required": True},
                    "mode": {"type": "str", "default": "0400"}}
    module = AnsibleModule(argument_spec={"files": {"type": "list", "elements": "dict", "required": True,
                                                    "options": file_options}},
                           supports_check_mode=True)
    files: list[Spec] = module.params["files"]
    bad = [spec["path"] for spec in files if not os.path.isabs(spec["path"])]
    if bad:
        module.fail_json(msg=f"files[].path: not absolute: {bad}")
    stale = stale_files(files)
    if not module.check_mode:
        for spec in files:
            if spec["path"] in stale:
                _write(spec)
    module.exit_json(changed=bool(stale), written=stale)


if __name__ == "__main__":
    main()
