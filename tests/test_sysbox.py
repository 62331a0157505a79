"""The sysbox role: its gate, its inputs and its refusals before any change. Installing it needs
the package from downloads.nestybox.com, which our machines cannot reach: that part skips."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sysbox import sysbox_gate_errors, sysbox_input_errors

ROOT = Path(__file__).resolve().parents[1]
SUPPORTED = {"Debian": ["11", "12"], "Ubuntu": ["20", "22", "24"]}
BOOKWORM = {"distribution": "Debian", "distribution_major_version": "12", "kernel": "6.1.0-28-amd64",
            "architecture": "x86_64"}
SETTINGS = {"version": "0.6.7", "package_sha256": {"amd64": "a" * 64}, "runtime_name": "sysbox-runc"}


def test_a_supported_host_passes_the_gate() -> None:
    assert sysbox_gate_errors(BOOKWORM, SUPPORTED, "5.12") == []


@pytest.mark.parametrize(("facts", "message"), [
    ({"distribution_major_version": "13"}, "sysbox_supported: Debian 13 is not a distribution Sysbox supports"),
    ({"distribution": "Fedora"}, "sysbox_supported: Fedora 12"),
    ({"kernel": "5.10.0-30-amd64"}, "sysbox_min_kernel: kernel 5.10.0-30-amd64 is older than 5.12"),
    ({"architecture": "riscv64"}, "sysbox_package_url: no Sysbox package for riscv64"),
])
def test_the_gate_names_what_is_unsupported(facts: dict[str, Any], message: str) -> None:
    errors = sysbox_gate_errors({**BOOKWORM, **facts}, SUPPORTED, "5.12")
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize(("change", "message"), [
    ({"package_sha256": {}}, "sysbox_package_sha256.amd64: required"),
    ({"version": "latest"}, "sysbox_version: 'latest' is not a release"),
    ({"runtime_name": "runc"}, "sysbox_runtime_name: 'runc' is not a usable runtime name"),
])
def test_bad_input_names_the_variable(change: dict[str, Any], message: str) -> None:
    errors = sysbox_input_errors({**SETTINGS, **change}, "x86_64")
    assert any(message in error for error in errors), errors
    assert sysbox_input_errors(SETTINGS, "amd64") == []


def play(extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    command = ["ansible-playbook", "-i", "localhost,", str(ROOT / "tests" / "playbooks" / "sysbox.yml"), "--check",
               "-e", json.dumps(extra)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def test_the_role_refuses_an_unsupported_host_before_any_change() -> None:
    result = play({"sysbox_supported": {"Ubuntu": ["24"]}, "sysbox_package_sha256": {"amd64": "a" * 64}})
    assert result.returncode != 0 and "is not a distribution Sysbox supports" in result.stdout, result.stdout[-2000:]
    assert "changed=0" in result.stdout


def test_the_role_refuses_a_missing_checksum_before_any_change() -> None:
    result = play({"sysbox_supported": {"Debian": ["11", "12", "13"], "Ubuntu": ["24"]}, "sysbox_min_kernel": "3.0"})
    assert result.returncode != 0 and "sysbox_package_sha256.amd64: required" in result.stdout, result.stdout[-2000:]
    assert "changed=0" in result.stdout


@pytest.mark.skipif(shutil.which("sysbox-runc") is None,
                    reason="sysbox-runc is not installed here (its package comes from downloads.nestybox.com, which "
                           "this machine cannot reach): Sysbox isolation is NOT verified")
def test_a_container_under_sysbox_runc_starts() -> None:
    result = subprocess.run(["docker", "run", "--rm", "--runtime", "sysbox-runc", "agentfleet-test/debian:trixie",
                             "true"], capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, result.stderr
