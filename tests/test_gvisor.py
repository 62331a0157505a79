"""The gvisor role's input checks and runtime arguments."""

from __future__ import annotations

from typing import Any

import pytest
from gvisor import gvisor_input_errors, gvisor_runtime_args

GOOD: dict[str, Any] = {"source": "distro", "release_sha256": {}, "runtime_name": "runsc", "runtime_args": None,
                        "platform": ""}


def test_default_arguments_follow_the_source() -> None:
    assert gvisor_runtime_args(GOOD) == ["--network=host"]
    assert gvisor_runtime_args({**GOOD, "source": "release"}) == []
    assert gvisor_runtime_args({**GOOD, "runtime_args": [], "platform": "ptrace"}) == ["--platform=ptrace"]


BAD = [
    ({"runtime_name": "Run SC"}, "gvisor_runtime_name: 'Run SC' is not a runtime name"),
    ({"runtime_name": "runc"}, "gvisor_runtime_name: runc is Docker's own runtime"),
    ({"runtime_args": ["network=host"]}, "gvisor_runtime_args[0]: 'network=host' is not a --flag"),
    ({"source": "release"}, "gvisor_release_sha256.x86_64: required for gvisor_source release"),
    ({"source": "release", "release_sha256": {"x86_64": "abc"}}, "gvisor_release_sha256.x86_64: required"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[message.split(":")[0] for _, message in BAD])
def test_bad_input_names_the_variable(change: dict[str, Any], message: str) -> None:
    errors = gvisor_input_errors({**GOOD, **change}, "x86_64")
    assert any(message in error for error in errors), errors


def test_good_input_and_a_release_with_its_checksum_pass() -> None:
    assert gvisor_input_errors(GOOD, "x86_64") == []
    assert gvisor_input_errors({**GOOD, "source": "release", "release_sha256": {"aarch64": "a" * 64}}, "arm64") == []
    assert gvisor_input_errors({**GOOD, "source": "release"}, "riscv64")[0].startswith("gvisor_source: release")
