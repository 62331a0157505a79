#!/usr/bin/python
"""Write the stack's directories and files in one module call (a file or copy task per file
costs a round trip each, one per agent for the redis passwords), atomically, each only when its
content, owner or mode differs."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: agent_stack_files
short_description: Write the stack's files with numeric owners in one call
description:
  - Each file is written through a temporary file in its directory and renamed into place, so a
    reader never sees a partial file; a file whose content, owner, group and mode already match
    is left alone. Secrets (C(content)) are never returned or logged; plain files (C(text)) are
    shown under --diff. Directories are created first. Nothing is ever deleted.
options:
  directories:
    description: Directories to create or fix, in order.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      uid: {description: Numeric owner., type: int, required: true}
      gid: {description: Numeric group., type: int, required: true}
      mode: {description: Octal mode such as 0755., type: str, required: true}
  files:
    description: Files to write.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path of the file., type: path, required: true}
      content: {description: A secret (exclusive with text)., type: str, no_log: true}
      text: {description: Content that may be shown (exclusive with content)., type: str}
      uid: {description: Numeric owner (the account may not exist yet in check mode)., type: int, required: true}
      gid: {description: Numeric group., type: int, required: true}
      mode: {description: Octal mode such as 0400., type: str, default: "0400"}
"""

Spec = dict[str, Any]
# A longer file (a CA bundle) is shown in a diff by its size only.
DIFF_LIMIT = 16384


def body(spec: Spec) -> str:
    return str(spec["content"] if spec.get("content") is not None else spec["text"])


def _owned(status: os.stat_result, spec: Spec) -> bool:
    return status.st_uid == spec["uid"] and status.st_gid == spec["gid"] and (status.st_mode & 0o7777) == int(spec["mode"], 8)


def _current(path: str) -> bytes | None:
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def _write(spec: Spec) -> None:
    directory = os.path.dirname(spec["path"])
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".agentfleet-")
    try:
        os.fchmod(descriptor, int(spec["mode"], 8))
        os.fchown(descriptor, spec["uid"], spec["gid"])
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(body(spec).encode())
        os.replace(temporary, spec["path"])
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def stale_directories(directories: list[Spec]) -> list[str]:
    return [spec["path"] for spec in directories
            if os.path.islink(spec["path"]) or not os.path.isdir(spec["path"]) or not _owned(os.stat(spec["path"]), spec)]


def stale_files(files: list[Spec]) -> list[str]:
    """Paths whose file is missing or differs."""
    return [spec["path"] for spec in files
            if _current(spec["path"]) != body(spec).encode() or not _owned(os.lstat(spec["path"]), spec)]


def diff(spec: Spec) -> dict[str, str]:
    before, after = (_current(spec["path"]) or b"").decode(errors="replace"), body(spec)
    if max(len(before), len(after)) > DIFF_LIMIT:
        before, after = f"({len(before)} characters)\n", f"({len(after)} characters)\n"
    return {"before_header": spec["path"], "after_header": spec["path"], "before": before, "after": after}


def main() -> None:
    directory = {"path": {"type": "path", "required": True}, "uid": {"type": "int", "required": True},
                 "gid": {"type": "int", "required": True}, "mode": {"type": "str", "required": True}}
    file = {"path": {"type": "path", "required": True}, "content": {"type": "str", "no_log": True}, "text": {"type": "str"},
            "uid": {"type": "int", "required": True}, "gid": {"type": "int", "required": True},
            "mode": {"type": "str", "default": "0400"}}
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
    if not module.check_mode:
        for spec in directories:
            if spec["path"] in new_directories:
                os.makedirs(spec["path"], exist_ok=True)
                os.chown(spec["path"], spec["uid"], spec["gid"])
                os.chmod(spec["path"], int(spec["mode"], 8))
    stale = stale_files(files)
    diffs = [diff(spec) for spec in files if spec["path"] in stale and spec.get("text") is not None] if module._diff else []
    if not module.check_mode:
        for spec in files:
            if spec["path"] in stale:
                _write(spec)
    module.exit_json(changed=bool(new_directories or stale), directories=new_directories, written=stale, diff=diffs)


if __name__ == "__main__":
    main()
