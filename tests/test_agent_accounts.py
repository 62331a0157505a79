"""The agent_accounts module's plan against fake account databases."""

from __future__ import annotations

import grp
import json
import pwd
import stat
from pathlib import Path
from typing import Any

import agent_accounts
import pytest
from ansible.plugins.filter.core import to_nice_json

MARIE = {"name": "agent-marie", "uid": 10001, "group": "agent-marie", "groups": ["agentfleet-common"],
         "home": "/srv/agentfleet/workspaces/marie", "comment": "agentfleet worker marie"}
GROUPS = [{"name": "agentfleet-common", "gid": 10901}, {"name": "agent-marie", "gid": 10001}]
SHELL = "/usr/sbin/nologin"


def databases(monkeypatch: pytest.MonkeyPatch, users: list[tuple[Any, ...]], groups: list[tuple[Any, ...]]) -> None:
    monkeypatch.setattr(pwd, "getpwall", lambda: [pwd.struct_passwd(u) for u in users])
    monkeypatch.setattr(grp, "getgrall", lambda: [grp.struct_group(g) for g in groups])


def test_a_fresh_host_gets_groups_before_users(monkeypatch: pytest.MonkeyPatch) -> None:
    databases(monkeypatch, [], [])
    commands = agent_accounts.plan([MARIE], GROUPS, {}, SHELL)
    assert commands == [
        ["groupadd", "--system", "--gid", "10901", "agentfleet-common"],
        ["groupadd", "--system", "--gid", "10001", "agent-marie"],
        ["useradd", "--system", "--no-create-home", "--uid", "10001", "--gid", "agent-marie", "--groups",
         "agentfleet-common", "--home", MARIE["home"], "--shell", SHELL, "--comment", MARIE["comment"], "agent-marie"],
    ]


def test_a_converged_host_needs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    databases(monkeypatch, [("agent-marie", "x", 10001, 10001, MARIE["comment"], MARIE["home"], SHELL)],
              [("agentfleet-common", "x", 10901, ["agent-marie"]), ("agent-marie", "x", 10001, [])])
    assert agent_accounts.plan([MARIE], GROUPS, {}, SHELL) == []


def test_a_moved_uid_an_extra_group_and_a_login_shell_are_fixed(monkeypatch: pytest.MonkeyPatch) -> None:
    databases(monkeypatch, [("agent-marie", "x", 10011, 10001, MARIE["comment"], MARIE["home"], "/bin/bash")],
              [("agentfleet-common", "x", 10901, ["agent-marie"]), ("agent-marie", "x", 10001, []),
               ("docker", "x", 999, ["agent-marie"])])
    assert agent_accounts.plan([MARIE], GROUPS, {}, SHELL) == [
        ["usermod", "--uid", "10001", "--groups", "agentfleet-common", "--shell", SHELL, "agent-marie"]]


def test_only_owned_accounts_that_left_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    databases(monkeypatch, [("agent-zoe", "x", 10005, 10005, "", "", SHELL), ("alice", "x", 1000, 1000, "", "", SHELL)],
              [("agent-zoe", "x", 10005, []), ("alice", "x", 1000, [])])
    owned = {"users": {"agent-zoe": 10005}, "groups": {"agent-zoe": 10005}}
    commands = agent_accounts.plan([], [], owned, SHELL)
    assert commands == [["userdel", "agent-zoe"], ["groupdel", "agent-zoe"]]


def test_the_registry_lists_owned_accounts_until_they_are_removed() -> None:
    owned = {"users": {"agent-zoe": 10005}, "groups": {"agent-zoe": 10005}}
    pending = json.loads(agent_accounts.registry([MARIE], GROUPS, owned))
    final = json.loads(agent_accounts.registry([MARIE], GROUPS))
    assert pending["users"] == {"agent-marie": 10001, "agent-zoe": 10005}
    assert final == {"users": {"agent-marie": 10001},
                     "groups": {"agent-marie": 10001, "agentfleet-common": 10901}}


def test_the_registry_text_is_what_the_copy_task_wrote_before() -> None:
    """Same bytes as `to_nice_json` plus a newline, so an upgrade does not rewrite the file."""
    text = agent_accounts.registry([MARIE], GROUPS)
    assert text == to_nice_json(json.loads(text)) + "\n"


def test_the_registry_is_written_atomically_in_a_new_directory(tmp_path: Path) -> None:
    path = tmp_path / "new" / "accounts.json"
    agent_accounts._write(str(path), "{}\n")
    assert path.read_text() == "{}\n" and stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755 and [p.name for p in path.parent.iterdir()] == [path.name]
