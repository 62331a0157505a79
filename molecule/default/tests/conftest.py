"""Fixtures shared by the verify tests: a base image inside each host's own engine."""

from __future__ import annotations

import subprocess
from typing import Iterator

import pytest
import testinfra.host

BASE_IMAGE = "agentfleet-test/debian"


@pytest.fixture(scope="module")
def image(host: testinfra.host.Host) -> str:
    """Load the debootstrap base of this host's Debian release into the host's engine."""
    name = f"{BASE_IMAGE}:{host.system_info.codename}"
    if host.run(f"docker image inspect {name}").rc != 0:
        save = subprocess.Popen(["docker", "save", name], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "exec", "-i", host.backend.get_hostname(), "docker", "load"],
            stdin=save.stdout, capture_output=True, text=True, check=False,
        )
        save.wait()
        assert load.returncode == 0 and save.returncode == 0, load.stderr
    return name


@pytest.fixture
def cleanup(host: testinfra.host.Host) -> Iterator[list[str]]:
    """Collect names of containers and networks the test makes; removed after the test."""
    names: list[str] = []
    yield names
    for name in reversed(names):
        host.run(f"docker rm -f {name}; docker network rm {name}")
