"""agentctl secret set model-key and the line agentctl status prints while the key is missing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from agentfleet.agentctl import model_key_line
from agentfleet.model_key import key_missing, set_model_key

OWNER = (os.getuid(), os.getgid())


def stack(tmp_path: Path) -> Path:
    (tmp_path / "secrets").mkdir(mode=0o711)
    return tmp_path


def test_the_key_goes_only_where_the_gateway_reads_it(tmp_path: Path) -> None:
    directory = stack(tmp_path)
    set_model_key(directory, OWNER, "sk-ant-api03-good_key-1", directory / "model-key.state")
    conf = directory / "secrets" / "gateway_key.conf"
    assert conf.read_text() == 'proxy_set_header x-api-key "sk-ant-api03-good_key-1";\n'
    assert stat.S_IMODE(conf.stat().st_mode) == 0o400 and (conf.stat().st_uid, conf.stat().st_gid) == OWNER
    assert (directory / "model-key.state").read_text() == "set\n"
    assert sorted(path.name for path in (directory / "secrets").iterdir()) == ["gateway_key.conf"]


@pytest.mark.parametrize("key", ['sk" ; include /etc/shadow', "", "two words", "k" * 513, "sk-ant\n"])
def test_a_key_nginx_would_not_take_as_one_string_is_refused_and_nothing_written(tmp_path: Path, key: str) -> None:
    directory = stack(tmp_path)
    with pytest.raises(SystemExit, match="letters, digits, _ and - only"):
        set_model_key(directory, OWNER, key, directory / "model-key.state")
    assert not (directory / "secrets" / "gateway_key.conf").exists() and not (directory / "model-key.state").exists()


def environment(state: Path, agents: str = "orchestrator,marie") -> dict[str, str]:
    return {"AGENTFLEET_KEY_AGENTS": agents, "AGENTFLEET_MODEL_KEY_STATE": str(state)}


def test_status_names_the_missing_key_and_who_needs_it(tmp_path: Path) -> None:
    state = tmp_path / "model-key.state"
    state.write_text("missing\n")
    line = model_key_line(environment(state))
    assert line.startswith("model key: NOT SET; orchestrator, marie cannot reach the model")
    assert "agentctl secret set model-key" in line
    assert model_key_line(environment(tmp_path / "absent")) == line  # no state at all: missing too


def test_status_says_nothing_once_the_key_is_set_or_when_no_agent_needs_one(tmp_path: Path) -> None:
    directory = stack(tmp_path)
    set_model_key(directory, OWNER, "sk-ant-good", directory / "model-key.state")
    assert model_key_line(environment(directory / "model-key.state")) == ""
    assert model_key_line(environment(tmp_path / "absent", agents="")) == ""


def test_a_state_file_that_is_a_link_or_too_big_counts_as_missing(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.write_text("set\n")
    (tmp_path / "link").symlink_to(real)
    big = tmp_path / "big"
    big.write_text("set\n" + " " * 100)
    assert not key_missing(real) and key_missing(tmp_path / "link") and key_missing(big)
