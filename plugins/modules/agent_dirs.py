#!/usr/bin/python
# Copyright: (c) 2026, agentfleet developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ensure the whole agent tree in one module call (hundreds of paths), retire what left the model."""

from __future__ import annotations

DOCUMENTATION = r"""
module: agent_dirs
short_description: Create and re-own the agents' directory tree in one call
version_added: 0.1.0
author: agentfleet developers (@agentfleet)
description:
  - Creates every directory in O(paths) system calls with its owner, group and mode, refuses
    symlinks on managed paths, moves entries that left the model into a root-only retired
    directory (or deletes them when asked) and re-owns files after an agent's uid/gid changed.
options:
  paths:
    description: Directories with numeric owner, group and octal mode, as agent_model_stack.paths.
    type: list
    elements: dict
    required: true
  per_name_dirs:
    description: Directories whose entries are named after agents; unmanaged entries are retired.
    type: list
    elements: path
    required: true
  retired_dir:
    description: Where retired entries go, as <name>/<UTC time>/<category>.
    type: path
    required: true
  delete_retired:
    description: Delete entries that left the model instead of moving them to retired_dir.
    type: bool
    default: false
  uid_map:
    description: Old uid to new uid; files under the tree owned by an old uid are re-owned.
    type: dict
    default: {}
  gid_map:
    description: Old gid to new gid, as uid_map.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Create the agents' tree and retire what left the model
  agentfleet.fleet.agent_dirs:
    paths: "{{ agent_model_stack.paths }}"
    per_name_dirs: ["/srv/agentfleet/inbox", "/srv/agentfleet/results"]
    retired_dir: /srv/agentfleet/retired
"""

RETURN = r"""
changes:
  description: One line per directory created, re-owned, re-moded or retired.
  returned: always
  type: list
  elements: str
  sample: ["created /srv/agentfleet/inbox/marie 10001:10001 0750"]
"""

import os
import shutil
import stat
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule


Path = dict[str, Any]


class TreeError(Exception):
    pass


def _retire_plan(paths: list[Path], per_name_dirs: list[str], retired_dir: str) -> list[str]:
    managed = {p["path"] for p in paths}
    found = []
    for parent in per_name_dirs:
        if not os.path.isdir(parent) or os.path.islink(parent):
            continue
        found += [os.path.join(parent, entry) for entry in sorted(os.listdir(parent))
                  if os.path.join(parent, entry) not in managed and os.path.join(parent, entry) != retired_dir]
    return found


def _retire(entry: str, retired_dir: str, stamp: str, delete: bool) -> str:
    if delete:
        if os.path.isdir(entry) and not os.path.islink(entry):
            shutil.rmtree(entry)
        else:
            os.unlink(entry)
        return f"deleted {entry}"
    category, name = os.path.basename(os.path.dirname(entry)), os.path.basename(entry)
    target = os.path.join(retired_dir, name, stamp, category)
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    os.rename(entry, target)
    return f"retired {entry} -> {target}"


def _reown(root: str, skip: str, uid_map: dict[int, int], gid_map: dict[int, int], apply: bool) -> int:
    count = 0
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(top, d) != skip]
        for entry in [top] + [os.path.join(top, name) for name in dirs + files]:
            info = os.lstat(entry)
            uid, gid = uid_map.get(info.st_uid, -1), gid_map.get(info.st_gid, -1)
            if uid == -1 and gid == -1:
                continue
            count += 1
            if apply:
                os.lchown(entry, uid, gid)
    return count


def _ensure(path: Path, apply: bool) -> list[str]:
    name, uid, gid, mode = path["path"], int(path["owner"]), int(path["group"]), int(str(path["mode"]), 8)
    try:
        info = os.lstat(name)
    except FileNotFoundError:
        if apply:
            os.mkdir(name, 0o700)
            os.lchown(name, uid, gid)
            os.chmod(name, mode)
        return [f"created {name} {uid}:{gid} {mode:04o}"]
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise TreeError(f"{name} exists and is not a directory (symlinks are refused); move it away")
    changes = []
    if (info.st_uid, info.st_gid) != (uid, gid):
        changes.append(f"owner {name} {info.st_uid}:{info.st_gid} -> {uid}:{gid}")
        if apply:
            os.lchown(name, uid, gid)
    if stat.S_IMODE(info.st_mode) != mode:
        changes.append(f"mode {name} {stat.S_IMODE(info.st_mode):04o} -> {mode:04o}")
        if apply:
            os.chmod(name, mode)
    return changes


def converge(params: dict[str, Any], apply: bool) -> list[str]:
    paths = sorted(params["paths"], key=lambda p: str(p["path"]))
    root = paths[0]["path"]
    retired = params["retired_dir"]
    changes = []
    parent = os.path.dirname(root)
    if not os.path.isdir(parent):
        changes.append(f"created {parent}")
        if apply:
            os.makedirs(parent, 0o755)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    per_name = set(params["per_name_dirs"])
    top = [p for p in paths if os.path.dirname(p["path"]) not in per_name]
    for path in top:
        changes += _ensure(path, apply)
    for entry in _retire_plan(paths, params["per_name_dirs"], retired):
        changes.append(_retire(entry, retired, stamp, params["delete_retired"]) if apply else f"retire {entry}")
    uid_map = {int(k): int(v) for k, v in params["uid_map"].items()}
    gid_map = {int(k): int(v) for k, v in params["gid_map"].items()}
    if (uid_map or gid_map) and os.path.isdir(root):
        count = _reown(root, retired, uid_map, gid_map, apply)
        if count:
            changes.append(f"re-owned {count} entries under {root} (uid {uid_map}, gid {gid_map})")
    for path in paths:
        if os.path.dirname(path["path"]) in per_name:
            changes += _ensure(path, apply)
    return changes


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "paths": {"type": "list", "elements": "dict", "required": True},
            "per_name_dirs": {"type": "list", "elements": "path", "required": True},
            "retired_dir": {"type": "path", "required": True},
            "delete_retired": {"type": "bool", "default": False},
            "uid_map": {"type": "dict", "default": {}},
            "gid_map": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    try:
        changes = converge(module.params, apply=not module.check_mode)
    except (TreeError, OSError) as error:
        module.fail_json(msg=str(error))
    diff = {"before": "", "after": "".join(f"{line}\n" for line in changes)}
    module.exit_json(changed=bool(changes), changes=changes, diff=diff)


if __name__ == "__main__":
    main()
