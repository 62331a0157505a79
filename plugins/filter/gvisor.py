"""gVisor's inputs and its runtime entry in daemon.json."""

from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def gvisor_arch(machine: str) -> str:
    return ARCHES.get(machine, machine)


def gvisor_input_errors(settings: dict[str, Any], machine: str) -> list[str]:
    """Everything wrong with the gvisor_* inputs, each naming its variable."""
    errors = []
    arch = gvisor_arch(machine)
    if not NAME.match(str(settings["runtime_name"])):
        errors.append(f"gvisor_runtime_name: {settings['runtime_name']!r} is not a runtime name")
    if settings["runtime_name"] in ("runc", "io.containerd.runc.v2"):
        errors.append("gvisor_runtime_name: runc is Docker's own runtime; choose another name")
    for index, argument in enumerate(settings["runtime_args"] or []):
        if not str(argument).startswith("--"):
            errors.append(f"gvisor_runtime_args[{index}]: {argument!r} is not a --flag")
    if settings["source"] == "release":
        if arch not in ARCHES.values():
            errors.append(f"gvisor_source: release binaries exist for x86_64 and aarch64, not {machine}")
        elif not SHA256.match(str(settings["release_sha256"].get(arch, ""))):
            errors.append(f"gvisor_release_sha256.{arch}: required for gvisor_source release (64 hex digits)")
    return errors


def gvisor_runtime_args(settings: dict[str, Any]) -> list[str]:
    """The runsc arguments: the user's, else the default that works with the source's runsc."""
    if settings["runtime_args"] is not None:
        arguments = list(settings["runtime_args"])
    else:
        arguments = ["--network=host"] if settings["source"] == "distro" else []
    if settings["platform"] and not any(a.startswith("--platform") for a in arguments):
        arguments.append(f"--platform={settings['platform']}")
    return arguments


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"gvisor_input_errors": gvisor_input_errors, "gvisor_runtime_args": gvisor_runtime_args,
                "gvisor_arch": gvisor_arch}
