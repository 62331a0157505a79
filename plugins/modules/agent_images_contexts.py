#!/usr/bin/python
"""Write every image's build context in one module call: a copy or template task per file costs a
round trip each (the runtime alone is a dozen files), and most runs change none of them."""

from __future__ import annotations

import os
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: agent_images_contexts
short_description: Write the build contexts of agentfleet's images in one call
description:
  - Creates the directories and writes each file whose content or mode differs; leaves the rest
    alone and deletes nothing. Reports the paths it wrote, and their diffs under --diff.
options:
  directories:
    description: Directories to create (parents first), with their octal modes.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      mode: {description: Octal mode such as 0750., type: str, required: true}
  files:
    description: Contents, each written to one or more paths (a CA bundle goes into every context).
    type: list
    elements: dict
    default: []
    suboptions:
      paths: {description: Absolute paths to write the content to., type: list, elements: path, required: true}
      content: {description: The text., type: str, required: true}
      mode: {description: Octal mode such as 0644., type: str, required: true}
"""

# Longer files (a CA bundle) are reported by name only: a diff of them helps nobody.
DIFF_LIMIT = 16384


def stale_directories(directories: list[dict[str, Any]]) -> list[str]:
    return [spec["path"] for spec in directories
            if not os.path.isdir(spec["path"]) or os.stat(spec["path"]).st_mode & 0o7777 != int(spec["mode"], 8)]


def current(path: str) -> str | None:
    """The file's text, or None when it is missing or is not a regular file."""
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8", errors="replace")


def stale_files(files: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(path, content, mode) of each file that is missing or differs in content or mode."""
    stale = []
    for spec in files:
        for path in spec["paths"]:
            if current(path) != spec["content"] or os.stat(path).st_mode & 0o7777 != int(spec["mode"], 8):
                stale.append((path, spec["content"], spec["mode"]))
    return stale


def diff(path: str, content: str) -> dict[str, str]:
    before = current(path) or ""
    if max(len(before), len(content)) > DIFF_LIMIT:
        before, content = f"({len(before)} characters)\n", f"({len(content)} characters)\n"
    return {"before_header": path, "after_header": path, "before": before, "after": content}


def write(path: str, content: str, mode: str) -> None:
    if os.path.islink(path):
        os.unlink(path)  # the build would follow it out of the context
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.chmod(path, int(mode, 8))


def main() -> None:
    directory = {"path": {"type": "path", "required": True}, "mode": {"type": "str", "required": True}}
    file = {"paths": {"type": "list", "elements": "path", "required": True},
            "content": {"type": "str", "required": True}, "mode": {"type": "str", "required": True}}
    module = AnsibleModule(argument_spec={
        "directories": {"type": "list", "elements": "dict", "default": [], "options": directory},
        "files": {"type": "list", "elements": "dict", "default": [], "options": file}}, supports_check_mode=True)
    directories, files = module.params["directories"], module.params["files"]
    new_directories = stale_directories(directories)
    if not module.check_mode:
        for spec in directories:
            if spec["path"] in new_directories:
                os.makedirs(spec["path"], exist_ok=True)
                os.chmod(spec["path"], int(spec["mode"], 8))
    stale = stale_files(files)  # a file in a missing directory is missing too (check mode)
    diffs = [diff(path, content) for path, content, _ in stale] if module._diff else []
    if not module.check_mode:
        for path, content, mode in stale:
            write(path, content, mode)
    written = [path for path, _, _ in stale]
    module.exit_json(changed=bool(new_directories or written), directories=new_directories, written=written, diff=diffs)


if __name__ == "__main__":
    main()
