"""The one writer (module_utils/bulk_files, behind the bulk_files module) on scratch files: written
once, atomically, fixed when they drift, refused by its validate command without touching the live
file."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.agentfleet.fleet.plugins.module_utils.bulk_files import (
    DIFF_LIMIT, ValidationError, diff, stale_directories, stale_files, write)
from agent_stack import agent_stack_redis_secret_files
from bulk_files_helpers import converge_files, run, run_module
from test_agent_stack_compose import default_stack

UID, GID = os.getuid(), os.getgid()


def specs(directory: Path, content: str = "s3cret") -> list[dict[str, Any]]:
    return [{"path": str(directory / f"redis-{name}.password"), "content": f"{content}-{name}", "uid": UID, "gid": GID,
             "mode": "0400"} for name in ("marie", "anga")]


def converge(files: list[dict[str, Any]]) -> list[str]:
    return converge_files(files)


def test_writes_each_file_once_with_its_mode(tmp_path: Path) -> None:
    assert len(converge(specs(tmp_path))) == 2
    assert converge(specs(tmp_path)) == []
    written = tmp_path / "redis-marie.password"
    assert written.read_text() == "s3cret-marie" and stat.S_IMODE(written.stat().st_mode) == 0o400
    assert sorted(path.name for path in tmp_path.iterdir()) == ["redis-anga.password", "redis-marie.password"]


def test_a_changed_secret_or_mode_is_rewritten_and_nothing_else(tmp_path: Path) -> None:
    converge(specs(tmp_path))
    (tmp_path / "redis-anga.password").chmod(0o644)
    changed = converge(specs(tmp_path, content="new"))
    assert sorted(Path(path).name for path in changed) == ["redis-anga.password", "redis-marie.password"]
    os.chmod(tmp_path / "redis-anga.password", 0o644)
    assert [Path(path).name for path in stale_files(specs(tmp_path, content="new"))] == ["redis-anga.password"]


def test_check_mode_only_reports(tmp_path: Path) -> None:
    assert len(stale_files(specs(tmp_path))) == 2 and list(tmp_path.iterdir()) == []


def test_each_agent_gets_its_own_derived_password() -> None:
    files = {Path(spec["path"]).name: spec
             for spec in agent_stack_redis_secret_files(default_stack(("marie", "anga")), "/etc/s", "pw")}
    assert len(files) == 2  # only the agents on redis
    assert files["redis-marie.password"]["uid"] == 10001 and files["redis-marie.password"]["mode"] == "0400"
    assert files["redis-marie.password"]["content"] != files["redis-anga.password"]["content"]
    assert len(files["redis-marie.password"]["content"]) == 64


def test_plain_files_show_a_diff_and_long_ones_only_their_size(tmp_path: Path) -> None:
    spec = {"path": str(tmp_path / "squid.conf"), "text": "http_port 3128\n", "content": None, "uid": UID, "gid": GID,
            "mode": "0644"}
    assert converge([spec]) == [spec["path"]]
    changed = dict(spec, text="http_port 3129\n")
    assert diff(changed)["before"] == "http_port 3128\n" and diff(changed)["after"] == "http_port 3129\n"
    assert "characters" in diff(dict(spec, text="x" * (DIFF_LIMIT + 1)))["after"]


def test_directories_are_reported_until_they_have_their_owner_and_mode(tmp_path: Path) -> None:
    wanted = [{"path": str(tmp_path / "stack"), "uid": UID, "gid": GID, "mode": "0755"}]
    assert stale_directories(wanted) == [str(tmp_path / "stack")]
    (tmp_path / "stack").mkdir(mode=0o700)
    assert stale_directories(wanted) == [str(tmp_path / "stack")]
    (tmp_path / "stack").chmod(0o755)
    assert stale_directories(wanted) == []


def test_a_file_its_validate_command_refuses_never_replaces_the_live_one(tmp_path: Path) -> None:
    live = tmp_path / "daemon.json"
    spec = {"path": str(live), "text": '{"icc": false}\n', "uid": UID, "gid": GID, "mode": "0644",
            "validate": "python3 -m json.tool %s"}
    assert converge([spec]) == [str(live)]
    with pytest.raises(ValidationError, match="daemon.json: refused by 'python3 -m json.tool %s'"):
        write(dict(spec, text="{not json\n"), run)
    assert live.read_text() == '{"icc": false}\n'
    assert [path.name for path in tmp_path.iterdir()] == ["daemon.json"]  # no temporary file left behind


def test_validate_checks_the_new_file_not_the_live_one(tmp_path: Path) -> None:
    """Control: the same command accepts the new content when it is valid, so the refusal above is its."""
    live = tmp_path / "daemon.json"
    live.write_text("{broken\n")
    spec = {"path": str(live), "text": '{"icc": false}\n', "uid": UID, "gid": GID, "mode": "0644",
            "validate": "python3 -m json.tool %s"}
    assert converge([spec]) == [str(live)] and live.read_text() == '{"icc": false}\n'


def test_a_validate_command_without_the_file_is_refused(tmp_path: Path) -> None:
    spec = {"path": str(tmp_path / "x.conf"), "text": "x\n", "uid": UID, "gid": GID, "mode": "0644", "validate": "true"}
    with pytest.raises(ValidationError, match="%s"):
        write(spec, run)
    assert not (tmp_path / "x.conf").exists()


def test_a_symlink_at_a_files_path_is_replaced_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    (tmp_path / "squid.conf").symlink_to(outside)
    spec = {"path": str(tmp_path / "squid.conf"), "text": "http_port 3128\n", "uid": UID, "gid": GID, "mode": "0644"}
    assert converge([spec]) == [spec["path"]]
    assert outside.read_text() == "keep\n" and not (tmp_path / "squid.conf").is_symlink()


def test_a_symlink_where_a_directory_belongs_is_refused(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "stack").symlink_to(tmp_path / "target")
    wanted = [{"path": str(tmp_path / "stack"), "uid": UID, "gid": GID, "mode": "0755"}]
    assert stale_directories(wanted) == [str(tmp_path / "stack")]
    with pytest.raises(OSError, match="symbolic link"):
        converge_files([], wanted)


def test_a_refused_file_leaves_every_checked_live_file_as_it_was(tmp_path: Path) -> None:
    """Two checked configurations changed together, the second refused: neither replaces its live
    file. A file without a check (the gateway's script) goes in first, so a check can read it."""
    script = {"path": str(tmp_path / "gateway.js"), "text": "old js\n", "uid": UID, "gid": GID, "mode": "0644"}
    first = {"path": str(tmp_path / "nginx.conf"), "text": "old nginx\n", "uid": UID, "gid": GID, "mode": "0644",
             "validate": f"sh -c \"grep -q 'new js' {tmp_path / 'gateway.js'}\" %s"}
    second = {"path": str(tmp_path / "squid.conf"), "text": "old squid\n", "uid": UID, "gid": GID, "mode": "0644",
              "validate": "grep -q squid %s"}
    converge([dict(script, text="new js\n"), first, second])
    converge([script])  # the script back to old: nginx.conf's check alone would now refuse
    with pytest.raises(ValidationError, match="squid.conf"):
        converge([dict(script, text="new js\n"), dict(first, text="new nginx\n"), dict(second, text="broken\n")])
    assert (tmp_path / "nginx.conf").read_text() == "old nginx\n" and (tmp_path / "squid.conf").read_text() == "old squid\n"
    assert (tmp_path / "gateway.js").read_text() == "new js\n"  # in first, and what nginx.conf's check read
    assert sorted(path.name for path in tmp_path.iterdir()) == ["gateway.js", "nginx.conf", "squid.conf"]
    # Control: both valid, both replaced.
    assert converge([dict(first, text="new nginx\n"), dict(second, text="new squid\n")]) == [first["path"], second["path"]]


def test_the_module_in_check_mode_writes_nothing_and_never_shows_a_secret(tmp_path: Path) -> None:
    files = [{"path": str(tmp_path / "stack" / "squid.conf"), "text": "http_port 3128\n", "mode": "0644",
              "uid": UID, "gid": GID},
             {"path": str(tmp_path / "stack" / "key.conf"), "content": "sk-ant-never-shown", "uid": UID, "gid": GID}]
    arguments = {"directories": [{"path": str(tmp_path / "stack"), "mode": "0755", "uid": UID, "gid": GID}], "files": files}
    checked = run_module(tmp_path, "bulk_files", arguments, "--check", "--diff")
    assert checked["changed"] and checked["written"] == [files[0]["path"], files[1]["path"]]
    assert not (tmp_path / "stack").exists()
    written = run_module(tmp_path, "bulk_files", arguments, "--diff")
    assert written["changed"] and (tmp_path / "stack" / "key.conf").read_text() == "sk-ant-never-shown"
    assert "sk-ant-never-shown" not in json.dumps(checked) + json.dumps(written)
    assert "http_port 3128" in json.dumps(written["diff"])  # plain files are shown
    assert not run_module(tmp_path, "bulk_files", arguments)["changed"]
