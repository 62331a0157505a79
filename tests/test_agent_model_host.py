"""The agent_model_host module's readers: getent's fact format, and the registry's three states."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from agent_model_host import EMPTY_REGISTRY, host_accounts, read_registry


def getent(database: str, name: str) -> list[str]:
    return subprocess.run(["getent", database, name], capture_output=True, text=True, check=True).stdout.strip().split(":")


def test_accounts_have_the_form_getent_gives() -> None:
    facts = host_accounts()
    assert facts["getent_passwd"]["root"] == getent("passwd", "root")[1:]
    assert facts["getent_group"]["root"] == getent("group", "root")[1:]


def test_a_missing_registry_is_empty(tmp_path: Path) -> None:
    assert read_registry(str(tmp_path / "accounts.json")) == EMPTY_REGISTRY


def test_the_registry_is_read(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    path.write_text('{"users": {"agentfleet-marie": 10002}, "groups": {}}')
    assert read_registry(str(path))["users"] == {"agentfleet-marie": 10002}


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_a_damaged_registry_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "accounts.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        read_registry(str(path))
