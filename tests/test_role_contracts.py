"""Every role keeps its defaults, argument spec and table in docs/variables.md in agreement."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ROLES = sorted(path for path in (ROOT / "roles").iterdir() if path.is_dir())


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_defaults_and_argument_spec_agree(role: Path) -> None:
    defaults = load(role / "defaults" / "main.yml")
    options = load(role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, option in options.items():
        assert option.get("default") == defaults[name], name
        assert name.startswith(f"{role.name}_"), f"{name} lacks the role prefix"
        assert option.get("description"), f"{name} has no description"


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_every_default_has_a_comment(role: Path) -> None:
    lines = (role / "defaults" / "main.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")) and line != "---":
            assert lines[index - 1].startswith("#"), f"no comment above {line}"


def test_variable_tables_and_access_matrix_are_current() -> None:
    """scripts/role-docs --check: docs/variables.md and the access matrix of docs/security.md."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "role-docs"), "--check"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(("doc", "marker"), [("docs/variables.md", "ROLE VARIABLES"),
                                             ("docs/security.md", "ACCESS MATRIX")])
def test_the_generated_blocks_live_in_their_docs_file_only(doc: str, marker: str) -> None:
    """Each block is generated into one file: its markers are there once, and nowhere in README.md."""
    text = (ROOT / doc).read_text()
    for edge in ("BEGIN", "END"):
        assert text.count(f"<!-- {edge} {marker} -->") == 1, f"{doc}: {edge} {marker}"
    assert marker not in (ROOT / "README.md").read_text()
