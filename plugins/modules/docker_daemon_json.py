#!/usr/bin/python
# Copyright: (c) 2026, agentfleet developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one writer of the Docker engine's daemon.json: the engine role's options and each runtime
role's entry are merged here, validated by dockerd, and written atomically."""

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_daemon_json
short_description: Merge keys and runtimes into the Docker engine's daemon.json
description:
  - Reads daemon.json, merges I(options) (a key set to null is left as it is), then I(extra)
    recursively, then the I(runtime) entry under C(runtimes); every key it is not given stays as
    it is. A file that is not a JSON object is refused, never overwritten.
  - Writes only when the merged object differs from the file's, so a file another tool formatted
    differently is left alone (and the engine not restarted) while it already holds every value.
  - The new file is checked by I(validate) before it replaces the live one.
version_added: 0.1.0
author: agentfleet developers (@agentfleet)
options:
  path: {description: The engine's daemon.json., type: path, default: /etc/docker/daemon.json}
  options: {description: Keys to set; a null value leaves that key alone., type: dict, default: {}}
  extra: {description: "Further keys merged last, recursively (lists replaced whole).", type: dict, default: {}}
  runtime:
    description: One OCI runtime to register under C(runtimes), every other runtime untouched.
    type: dict
    suboptions:
      name: {description: The runtime's name (what C(docker run --runtime) names)., type: str, required: true}
      path: {description: Absolute path of its binary., type: path, required: true}
      args: {description: Its C(runtimeArgs)., type: list, elements: str, default: []}
  validate:
    description:
      - Command run on the new file before it replaces the live one, C(%s) standing for its path.
      - Default, when the host's dockerd is 23.0 or later, C(dockerd --validate --config-file=%s);
        with an older or no dockerd (check mode on a new host) the file gets no check beyond the
        JSON the module renders itself.
    type: str
attributes:
  check_mode: {support: full, description: Reports the change and writes nothing.}
  diff_mode: {support: full, description: Shows the file before and after.}
"""

EXAMPLES = r"""
- name: Keep containers apart and register gVisor
  agentfleet.fleet.docker_daemon_json:
    options: {icc: false, no-new-privileges: true}
    runtime: {name: runsc, path: /usr/bin/runsc, args: ["--network=sandbox"]}
  notify: Restart docker
"""

RETURN = r"""
config:
  description: daemon.json's object after the merge (what the file holds, or would hold in check mode).
  returned: success
  type: dict
  sample: {icc: false, runtimes: {runsc: {path: /usr/bin/runsc}}}
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.agentfleet.fleet.plugins.module_utils.bulk_files import ValidationError, current, write
from ansible_collections.agentfleet.fleet.plugins.module_utils.daemon_json import DaemonJsonError, merge, parse, render


def dockerd_validate(module: AnsibleModule) -> str | None:
    """dockerd's own check when it has one (--validate, 23.0 and later)."""
    dockerd = module.get_bin_path("dockerd")
    if dockerd is None:
        return None
    rc, out, _err = module.run_command([dockerd, "--version"])
    found = re.search(r"version (\d+)\.", out)
    return f"{dockerd} --validate --config-file=%s" if rc == 0 and found and int(found.group(1)) >= 23 else None


def main() -> None:
    runtime = {"name": {"type": "str", "required": True}, "path": {"type": "path", "required": True},
               "args": {"type": "list", "elements": "str", "default": []}}
    module = AnsibleModule(argument_spec={
        "path": {"type": "path", "default": "/etc/docker/daemon.json"},
        "options": {"type": "dict", "default": {}}, "extra": {"type": "dict", "default": {}},
        "runtime": {"type": "dict", "options": runtime}, "validate": {"type": "str"}}, supports_check_mode=True)
    path = module.params["path"]
    if os.path.lexists(path) and current(path) is None:
        module.fail_json(msg=f"{path} is not a regular file (a link or a directory); move it away")
    try:
        before_text = (current(path) or b"").decode()
        before = parse(before_text, path)
    except (DaemonJsonError, UnicodeDecodeError) as error:
        module.fail_json(msg=str(error))
    wanted = merge(before, module.params["options"], module.params["extra"], module.params["runtime"])
    changed = wanted != before
    if changed and not module.check_mode:
        spec = {"path": path, "text": render(wanted), "uid": 0, "gid": 0, "mode": "0644",
                "validate": module.params["validate"] or dockerd_validate(module)}
        try:
            write(spec, module.run_command)
        except (ValidationError, OSError) as error:
            module.fail_json(msg=str(error))
    diff = {"before_header": path, "after_header": path, "before": before_text, "after": render(wanted)}
    module.exit_json(changed=changed, config=wanted, diff=diff if changed else {})


if __name__ == "__main__":
    main()
