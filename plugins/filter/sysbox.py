"""Sysbox's gate (distribution, kernel) and input checks."""

from __future__ import annotations

import re
from typing import Any

SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEB_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def sysbox_arch(machine: str) -> str:
    return DEB_ARCH.get(machine, machine)


def _kernel(release: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", release)[:2])


def sysbox_gate_errors(facts: dict[str, Any], supported: dict[str, list[str]], min_kernel: str) -> list[str]:
    """Why this host cannot run Sysbox, naming the facts; [] when it can."""
    errors = []
    distribution, major = facts.get("distribution", "?"), str(facts.get("distribution_major_version", "?"))
    if major not in [str(v) for v in supported.get(distribution, [])]:
        errors.append(f"sysbox_supported: {distribution} {major} is not a distribution Sysbox supports "
                      f"({', '.join(f'{d} {v}' for d, versions in supported.items() for v in versions) or 'none listed'})")
    if _kernel(str(facts.get("kernel", "0"))) < _kernel(min_kernel):
        errors.append(f"sysbox_min_kernel: kernel {facts.get('kernel')} is older than {min_kernel}")
    if sysbox_arch(str(facts.get("architecture", ""))) not in ("amd64", "arm64"):
        errors.append(f"sysbox_package_url: no Sysbox package for {facts.get('architecture')}")
    return errors


def sysbox_input_errors(settings: dict[str, Any], machine: str) -> list[str]:
    errors = []
    arch = sysbox_arch(machine)
    if not SHA256.match(str(settings["package_sha256"].get(arch, ""))):
        errors.append(f"sysbox_package_sha256.{arch}: required (64 hex digits for sysbox_version {settings['version']})")
    if not re.match(r"^[0-9]+\.[0-9]+\.[0-9]+$", str(settings["version"])):
        errors.append(f"sysbox_version: {settings['version']!r} is not a release such as 0.6.7")
    name = str(settings["runtime_name"])
    if name in ("runc", "io.containerd.runc.v2") or not re.match(r"^[a-z][a-z0-9._-]*$", name):
        errors.append(f"sysbox_runtime_name: {settings['runtime_name']!r} is not a usable runtime name")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"sysbox_gate_errors": sysbox_gate_errors, "sysbox_input_errors": sysbox_input_errors,
                "sysbox_arch": sysbox_arch}
