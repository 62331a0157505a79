#!/usr/bin/python
# Copyright: (c) 2026, agentfleet developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read what the role decides on in one call: installed packages, daemon.json, Compose's version,
the service's state, whether the API answers, and the role's paths (a task per read cost a round
trip each, most of a re-run that changes nothing)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_engine_state
short_description: Read the Docker engine's state on the host; changes nothing
description:
  - Reports the installed packages, daemon.json's text, the Compose plugin's version, the
    service's state, whether the engine's API answers, and the type, owner and mode of paths, in
    one call.
version_added: 0.1.0
author: agentfleet developers (@agentfleet)
options:
  daemon_json: {description: Path of daemon.json., type: path, required: true}
  paths: {description: "Paths whose type, owner and mode are reported.", type: list, elements: path, default: []}
  compose: {description: Also ask the Compose plugin its version., type: bool, default: false}
  service: {description: The systemd unit of the engine., type: str, default: docker}
  socket: {description: The engine's API socket., type: path, default: /var/run/docker.sock}
"""

EXAMPLES = r"""
- name: Read the engine's state
  agentfleet.fleet.docker_engine_state:
    daemon_json: /etc/docker/daemon.json
    paths: [/etc/docker]
    compose: true
  register: docker_engine_state
"""

RETURN = r"""
packages:
  description: Packages dpkg lists as installed.
  returned: success
  type: list
  elements: str
daemon_json:
  description: daemon.json's text ('' when it does not exist).
  returned: success
  type: str
compose:
  description: C(rc) and C(output) of C(docker compose version --short); {} unless I(compose).
  returned: success
  type: dict
service:
  description: C(active) and C(enabled), booleans.
  returned: success
  type: dict
api:
  description: Whether GET /_ping on the engine's socket answers 200.
  returned: success
  type: bool
paths:
  description: For each path, C(exists) and, when it does, C(type), C(uid), C(gid) and C(mode).
  returned: success
  type: dict
limits:
  description:
    - The hard limits of the host's init process by ulimit name (C(nofile), C(nproc), C(memlock)), the most any
      service or container on the host can get; absent when unlimited.
  returned: success
  type: dict
  sample: {nofile: 524288, nproc: 95000}
"""

import os
import socket
import stat
import subprocess
from typing import Any

from ansible.module_utils.basic import AnsibleModule

PATHS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]


def installed_packages(dpkg_output: str) -> list[str]:
    """Packages dpkg lists as installed and configured ("ii")."""
    return [line.split()[1] for line in dpkg_output.splitlines() if line.startswith("ii ") and len(line.split()) > 1]


def read_text(path: str) -> str:
    """The file's text, '' when it does not exist; OSError when it exists but cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return ""


def path_state(path: str) -> dict[str, Any]:
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    kind = "directory" if stat.S_ISDIR(status.st_mode) else "file" if stat.S_ISREG(status.st_mode) else "other"
    return {"exists": True, "type": kind, "uid": status.st_uid, "gid": status.st_gid,
            "mode": f"{stat.S_IMODE(status.st_mode):04o}"}


def api_answers(path: str, timeout: float = 2.0) -> bool:
    """GET /_ping on the engine's socket: the daemon is up and serving its API."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(path)
            client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = client.recv(64)
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and reply.split(b" ", 2)[1:2] == [b"200"]


LIMIT_NAMES = {"Max open files": "nofile", "Max processes": "nproc", "Max locked memory": "memlock"}


def hard_limits(text: str) -> dict[str, int]:
    """The hard limits /proc/<pid>/limits lists (columns: name, soft, hard, unit), by ulimit name."""
    limits = {}
    for line in text.splitlines():
        for label, name in LIMIT_NAMES.items():
            fields = line[len(label):].split() if line.startswith(label) else []
            if len(fields) >= 2 and fields[1].isdigit():
                limits[name] = int(fields[1])
    return limits


def run(argv: list[str]) -> tuple[int, str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    return result.returncode, (result.stdout or result.stderr).strip()


def main() -> None:
    module = AnsibleModule(argument_spec={
        "daemon_json": {"type": "path", "required": True},
        "paths": {"type": "list", "elements": "path", "default": []},
        "compose": {"type": "bool", "default": False},
        "service": {"type": "str", "default": "docker"},
        "socket": {"type": "path", "default": "/var/run/docker.sock"}}, supports_check_mode=True)
    params = module.params
    try:
        daemon_json = read_text(params["daemon_json"])
    except (OSError, UnicodeDecodeError) as err:
        module.fail_json(msg=f"{params['daemon_json']} cannot be read ({err}); the role never overwrites a file it cannot read")
    dpkg = module.get_bin_path("dpkg-query", opt_dirs=PATHS)
    packages = installed_packages(run([dpkg, "--show", "--showformat=${db:Status-Abbrev} ${Package}\n"])[1]) if dpkg else []
    docker = module.get_bin_path("docker", opt_dirs=PATHS)
    compose_rc, compose = run([docker, "compose", "version", "--short"]) if docker and params["compose"] else (1, "no docker CLI")
    systemctl = module.get_bin_path("systemctl", opt_dirs=PATHS)
    active = bool(systemctl) and run([systemctl, "is-active", "--quiet", params["service"]])[0] == 0
    enabled = bool(systemctl) and run([systemctl, "is-enabled", "--quiet", params["service"]])[0] == 0
    module.exit_json(
        changed=False, packages=packages, daemon_json=daemon_json,
        compose={"rc": compose_rc, "output": compose} if params["compose"] else {},
        service={"active": active, "enabled": enabled}, api=api_answers(params["socket"]),
        paths={path: path_state(path) for path in params["paths"]}, limits=hard_limits(read_text("/proc/1/limits")))


if __name__ == "__main__":
    main()
