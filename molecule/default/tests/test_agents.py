"""The agents' tree on the converged host: the access matrix is what the host enforces.

The table test derives its expectations from the model (roles' defaults plus this inventory)
through the same agent_model_stack the role applied; the hand-written cases below it name paths
and accounts literally, so a bug in the matrix code cannot pass its own test.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import testinfra.host
import yaml

ROOT = Path(__file__).resolve().parents[3]
# The filters import the collection's module_utils: collections/ holds the repository as agentfleet.fleet.
sys.path[:0] = [str(ROOT / "plugins" / "filter"), str(ROOT / "collections")]
from agent_model import agent_model_stack  # noqa: E402

PROBE = Path(__file__).with_name("access_probe.py")
ACTIONS = ("list", "read", "write")
BASE = "/srv/agentfleet"


# site.yml deploys the agents on agentfleet_hosts; the engine-only host has none.
testinfra_hosts = ["ansible://agentfleet_hosts"]


@pytest.fixture(name="agents_host")
def fixture_agents_host(host: testinfra.host.Host) -> testinfra.host.Host:
    return host


def stack(host: testinfra.host.Host) -> dict[str, Any]:
    defaults = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())
    variables = host.ansible.get_variables()
    return agent_model_stack({name.removeprefix("agent_model_"): variables.get(name, value)
                              for name, value in defaults.items()})


def probe(host: testinfra.host.Host, users: list[str], paths: list[dict[str, Any]]) -> dict[str, Any]:
    command = ["docker", "exec", "-i", host.backend.get_hostname(), "python3", "-c", PROBE.read_text()]
    request = json.dumps({"users": users, "paths": paths})
    result = subprocess.run(command, input=request, capture_output=True, text=True, check=True, timeout=300)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def mismatches(host: testinfra.host.Host) -> tuple[list[str], int]:
    """Every (agent, path, action) where the host differs from the matrix, and how many were checked."""
    model = stack(host)
    agents = {agent["account"]: agent["name"] for agent in model["agents"]}
    report = probe(host, sorted(agents), model["paths"])
    wrong, checked = [], 0
    for account, name in agents.items():
        for entry in model["paths"]:
            expected = {"list": name in entry["read"], "read": name in entry["read"], "write": name in entry["write"]}
            for action in ACTIONS:
                checked += 1
                if report[account][entry["path"]][action] != expected[action]:
                    wrong.append(f"{name} {action} {entry['path']}: host {'allows' if not expected[action] else 'denies'}")
    return wrong, checked


def test_every_agent_path_and_operation_is_enforced_as_the_matrix_says(agents_host: testinfra.host.Host) -> None:
    wrong, checked = mismatches(agents_host)
    assert checked >= 5 * 40 * len(ACTIONS), checked
    assert not wrong, "\n".join(wrong)


def test_the_table_test_catches_a_widened_path(agents_host: testinfra.host.Host) -> None:
    """Negative control: one mode widened by hand is exactly what the table reports."""
    path = f"{BASE}/workspaces/anga"
    assert agents_host.run(f"chmod 0755 {path}").rc == 0
    try:
        wrong, _ = mismatches(agents_host)
    finally:
        agents_host.run(f"chmod 0700 {path}")
    others = [agent["name"] for agent in stack(agents_host)["agents"] if agent["name"] != "anga"]
    assert len(others) >= 4
    assert sorted(wrong) == sorted(f"{name} {action} {path}: host allows" for name in others
                                   for action in ("list", "read"))


# Hand-written from the rules, with setpriv as the host's own tool for taking an identity.
def as_agent(host: testinfra.host.Host, name: str, command: str) -> bool:
    account = f"agent-{name}"
    return bool(host.run(f"setpriv --reuid={account} --regid={account} --init-groups sh -c {shlex.quote(command)}").rc == 0)


@pytest.fixture(name="files")
def fixture_files(agents_host: testinfra.host.Host) -> Iterator[testinfra.host.Host]:
    """A task for anga from the orchestrator, anga's result, marie's file in common, an archive entry.

    The task's name starts with a dot, which the live workers skip as a write in progress.
    """
    host = agents_host
    assert as_agent(host, "orchestrator", f"echo task > {BASE}/inbox/anga/.hand.json")
    assert as_agent(host, "anga", f"echo result > {BASE}/results/anga/hand.json")
    assert as_agent(host, "anga", f"echo secret > {BASE}/credentials/anga/hand.json")
    assert as_agent(host, "marie", f"echo shared > {BASE}/common/hand-marie.txt")
    assert as_agent(host, "monitor", f"echo old > {BASE}/archive/hand.json")
    yield host
    host.run(f"rm -f {BASE}/inbox/anga/.hand.json {BASE}/results/anga/hand.json {BASE}/credentials/anga/hand.json "
             f"{BASE}/common/hand-marie.txt {BASE}/archive/hand.json")


ALLOWED = [
    ("anga", "cat {base}/inbox/anga/.hand.json"),
    ("orchestrator", "cat {base}/results/anga/hand.json"),
    ("monitor", "cat {base}/results/anga/hand.json"),
    ("anga", "cat {base}/common/hand-marie.txt"),
    ("orchestrator", "cat {base}/archive/hand.json"),
    ("orchestrator", "touch {base}/triggers/marie/hand.trigger && rm {base}/triggers/marie/hand.trigger"),
]
DENIED = [
    ("marie", "cat {base}/inbox/anga/.hand.json"),
    ("marie", "ls {base}/inbox/anga"),
    ("anga", "rm -f {base}/inbox/anga/.hand.json"),
    ("anga", "echo forged > {base}/inbox/anga/forged.json"),
    ("marie", "echo forged > {base}/inbox/marie/forged.json"),
    ("marie", "cat {base}/results/anga/hand.json"),
    ("marie", "echo forged > {base}/results/anga/forged.json"),
    ("orchestrator", "echo forged > {base}/results/anga/forged.json"),
    ("marie", "ls {base}/workspaces/anga"),
    ("marie", "cat {base}/credentials/anga/hand.json"),
    ("orchestrator", "ls {base}/credentials/anga"),
    ("monitor", "ls {base}/credentials/anga"),
    ("monitor", "ls {base}/workspaces/marie"),
    ("anga", "rm -f {base}/common/hand-marie.txt"),
    ("marie", "ls {base}/archive"),
    ("orchestrator", "echo forged > {base}/archive/forged.json"),
    ("marie", "echo forged > {base}/heartbeats/anga/forged.json"),
    ("marie", "ls {base}/logs/anga"),
    ("marie", "touch {base}/triggers/anga/forged.trigger"),
    ("monitor", "ls {base}/retired"),
    ("orchestrator", "ls {base}/services/redis"),
]


@pytest.mark.parametrize(("agent", "command"), ALLOWED, ids=[f"{a}: {c.split()[0]} {c.split()[1]}" for a, c in ALLOWED])
def test_hand_written_allowed(files: testinfra.host.Host, agent: str, command: str) -> None:
    assert as_agent(files, agent, command.format(base=BASE))


@pytest.mark.parametrize(("agent", "command"), DENIED, ids=[f"{a}: {c}" for a, c in DENIED])
def test_hand_written_denied(files: testinfra.host.Host, agent: str, command: str) -> None:
    assert not as_agent(files, agent, command.format(base=BASE))
    assert files.run(f"ls {BASE}/inbox/anga {BASE}/inbox/marie {BASE}/results/anga {BASE}/archive "
                     f"| grep -c forged").stdout.strip() == "0"


def test_common_files_belong_to_the_common_group(files: testinfra.host.Host) -> None:
    assert files.file(f"{BASE}/common/hand-marie.txt").group == "agentfleet-common"


def test_ls_reads_naturally(agents_host: testinfra.host.Host) -> None:
    inbox = agents_host.file(f"{BASE}/inbox/marie")
    assert (inbox.user, inbox.group, inbox.mode) == ("agent-orchestrator", "agent-marie", 0o750)
    workspace = agents_host.file(f"{BASE}/workspaces/anga")
    assert (workspace.user, workspace.group, workspace.mode) == ("agent-anga", "agent-anga", 0o700)


def test_agent_accounts_cannot_log_in_and_live_outside_home(agents_host: testinfra.host.Host) -> None:
    for name in ("orchestrator", "marie", "anga", "fabien", "monitor"):
        user = agents_host.user(f"agent-{name}")
        assert (user.uid, user.shell) == (user.gid, "/usr/sbin/nologin")
        assert user.home == f"{BASE}/workspaces/{name}"
        assert "docker" not in user.groups
    assert agents_host.user("agent-marie").uid == 10001


def test_a_wrong_mount_still_keeps_a_worker_out(agents_host: testinfra.host.Host, image: str) -> None:
    """The whole tree mounted read-write into marie's container: file permissions alone stop her."""
    def in_container(ids: str, command: str) -> Any:
        return agents_host.run(f"docker run --rm --user {ids} --group-add 10901 -v {BASE}:/shared:rw {image} "
                               f"sh -c {shlex.quote(command)}")

    agents_host.run(f"echo task > {BASE}/inbox/anga/.hand.json")
    try:
        marie = in_container("10001:10001", "cat /shared/inbox/anga/.hand.json")
        assert marie.rc != 0 and "Permission denied" in marie.stderr
        anga = in_container("10002:10002", "cat /shared/inbox/anga/.hand.json")
        assert anga.rc == 0 and anga.stdout.strip() == "task", "the control: anga reads her own inbox"
        for path in ("credentials/anga", "workspaces/anga", "results/anga"):
            assert in_container("10001:10001", f"ls /shared/{path}").rc != 0, path
        assert in_container("10001:10001", "touch /shared/inbox/marie/forged.json").rc != 0
    finally:
        agents_host.run(f"rm -f {BASE}/inbox/anga/.hand.json")
