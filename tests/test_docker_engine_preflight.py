"""Bad input to docker_engine fails in preflight with a message naming the field.

Runs the role's argument spec and preflight against this machine (Debian 12) in check mode;
the good-input control shows each failure comes from its bad value alone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "tests" / "playbooks" / "docker_engine_preflight.yml"


def preflight(extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    command = ["ansible-playbook", "-i", "localhost,", str(PLAYBOOK), "--check", "-e", json.dumps(extra)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def test_good_input_passes() -> None:
    result = preflight({"docker_engine_install_source": "docker"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_auto_picks_dockers_repository_where_the_distribution_lacks_compose() -> None:
    """Debian 12 packages no Compose v2: auto takes Docker's repository, where a version pin is fine
    (the control of the distro case below)."""
    result = preflight({"docker_engine_install_source": "auto", "docker_engine_version": "5:27.*"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


BAD_INPUTS: list[tuple[str, dict[str, Any], str]] = [
    ("unknown source", {"docker_engine_install_source": "podman"}, "docker_engine_install_source"),
    ("compose from Debian 12 packages",
     {"docker_engine_install_source": "distro", "docker_engine_install_compose": True},
     "docker_engine_install_compose: Debian-12 packages no Docker Compose v2"),
    ("version pin with distro packages",
     {"docker_engine_install_source": "distro", "docker_engine_install_compose": False,
      "docker_engine_version": "20.10*"}, "docker_engine_version"),
    ("hold without a version", {"docker_engine_hold": True}, "docker_engine_hold needs docker_engine_version"),
    # auto on Debian 12 without Compose resolves to its own packages, where a version pin does not apply.
    ("version pin where auto picks distro packages",
     {"docker_engine_install_source": "auto", "docker_engine_install_compose": False, "docker_engine_version": "20.10*"},
     "a version pin applies to Docker's repository only"),
    ("icc not a boolean", {"docker_engine_icc": "maybe"}, "docker_engine_icc"),
    ("log options not a mapping", {"docker_engine_log_opts": "10m"}, "docker_engine_log_opts"),
    ("public address pool", {"docker_engine_default_address_pools": [{"base": "11.0.0.0/16", "size": 24}]},
     "docker_engine_default_address_pools[0].base: 11.0.0.0/16 is not a private"),
    ("pool with host bits", {"docker_engine_default_address_pools": [{"base": "172.20.0.1/14", "size": 24}]},
     "docker_engine_default_address_pools[0].base"),
    ("pool size wider than base", {"docker_engine_default_address_pools": [{"base": "10.1.0.0/16", "size": 8}]},
     "docker_engine_default_address_pools[0].size"),
    ("bad environment name", {"docker_engine_service_environment": {"A-B": "1"}},
     "docker_engine_service_environment"),
    ("newline in environment value", {"docker_engine_service_environment": {"A": "1\nExecStart=/bin/sh"}},
     "docker_engine_service_environment"),
    ("zero wait", {"docker_engine_wait_timeout": 0}, "docker_engine_wait_timeout must be positive"),
    ("admin also denied", {"docker_engine_admin_users": ["root"], "docker_engine_denied_users": ["root"]},
     "docker_engine_admin_users: root"),
    ("unknown admin", {"docker_engine_admin_users": ["no-such-user-af"]},
     "docker_engine_admin_users: no such account: no-such-user-af"),
    ("admin users not a list", {"docker_engine_admin_users": {"alice": 1}}, "docker_engine_admin_users"),
]


@pytest.mark.parametrize("extra,field", [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_is_refused_naming_the_field(extra: dict[str, Any], field: str) -> None:
    result = preflight(extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert field in output, output[-3000:]
