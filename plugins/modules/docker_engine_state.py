#!/usr/bin/python
"""Read what the role decides on in one call: installed packages, daemon.json, the engine's and
Compose's versions, the service's state, whether the API answers, and the role's paths (a task
per read cost a round trip each, most of a re-run that changes nothing)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: docker_engine_state
short_description: Read the Docker engine's state on the host; changes nothing
options:
  daemon_json: {description: Path of daemon.json., type: path, required: true}
  paths: {description: Paths whose type, owner and mode are reported., type: list, elements: path, default: []}
  compose: {description: Also ask the Compose plugin its version., type: bool, default: false}
  service: {description: The systemd unit of the engine., type: str, default: docker}
  socket: {description: The engine's API socket., type: path, default: /var/run/docker.sock}
"""

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
    dockerd, docker = module.get_bin_path("dockerd", opt_dirs=PATHS), module.get_bin_path("docker", opt_dirs=PATHS)
    compose_rc, compose = run([docker, "compose", "version", "--short"]) if docker and params["compose"] else (1, "no docker CLI")
    systemctl = module.get_bin_path("systemctl", opt_dirs=PATHS)
    active = bool(systemctl) and run([systemctl, "is-active", "--quiet", params["service"]])[0] == 0
    enabled = bool(systemctl) and run([systemctl, "is-enabled", "--quiet", params["service"]])[0] == 0
    module.exit_json(
        changed=False, packages=packages, daemon_json=daemon_json,
        dockerd_version=run([dockerd, "--version"])[1] if dockerd else "",
        compose={"rc": compose_rc, "output": compose} if params["compose"] else {},
        service={"active": active, "enabled": enabled}, api=api_answers(params["socket"]),
        paths={path: path_state(path) for path in params["paths"]})


if __name__ == "__main__":
    main()
