"""100 agents on one host, then the model changing over time, through the same playbook.

Runs in file order: zoe is added, her uid moves, she is removed (her data is retired, never
deleted); yann is removed with agent_tree_delete_retired, the one way data goes away.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import testinfra.host

CONVERGE = Path(__file__).resolve().parents[1] / "converge.yml"
BASE = "/srv/agentfleet"
RECAP = re.compile(r"^\S+\s*:\s*ok=\d+\s+changed=(?P<changed>\d+).*failed=(?P<failed>\d+)", re.M)


def converge(*extra: dict[str, Any], check: bool = False) -> int:
    """Run the scenario's playbook; returns the changed count and fails on any failure."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")
    command = ["ansible-playbook", "-i", inventory, str(CONVERGE), *(["--check"] if check else [])]
    for values in extra:
        command += ["-e", json.dumps(values)]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    match = RECAP.search(result.stdout)
    assert match is not None, result.stdout[-2000:]
    return int(match["changed"])


def zoe(uid: int) -> dict[str, Any]:
    return {"agentfleet_test_extra_agents": [{"name": "zoe", "kind": "worker", "uid": uid}]}


def test_all_hundred_agents_have_accounts_and_paths(host: testinfra.host.Host) -> None:
    count = int(host.ansible.get_variables()["agentfleet_test_agent_count"])
    users = host.run("getent passwd | grep -c '^agent-'").stdout.strip()
    assert int(users) == count == 100
    # An inbox for every agent but the monitor: 98 workers and the orchestrator (its goals).
    assert host.run(f"ls {BASE}/inbox | wc -l").stdout.strip() == str(count - 1)
    last = host.user("agent-w098")
    assert (last.uid, last.gid, last.home) == (10099, 10099, f"{BASE}/workspaces/w098")
    assert host.file(f"{BASE}/results/w098").user == "agent-w098"


def test_check_mode_on_the_converged_host_reports_nothing(host: testinfra.host.Host) -> None:
    assert host.file(BASE).is_directory
    assert converge(check=True) == 0


def test_adding_an_agent_creates_its_account_and_paths(host: testinfra.host.Host) -> None:
    assert converge(zoe(10500)) > 0
    assert host.user("agent-zoe").uid == 10500
    for category in ("inbox", "results", "triggers", "workspaces", "credentials", "heartbeats", "logs"):
        assert host.file(f"{BASE}/{category}/zoe").is_directory, category
    assert host.file(f"{BASE}/inbox/zoe").user == "agent-orchestrator"
    assert converge(zoe(10500)) == 0


def test_a_uid_change_reowns_the_agents_tree(host: testinfra.host.Host) -> None:
    host.run(f"setpriv --reuid=agent-zoe --regid=agent-zoe --init-groups sh -c "
             f"'mkdir {BASE}/workspaces/zoe/src && echo work > {BASE}/workspaces/zoe/src/main.py "
             f"&& echo shared > {BASE}/common/zoe.txt'")
    assert converge(zoe(10501)) > 0
    assert (host.user("agent-zoe").uid, host.user("agent-zoe").gid) == (10501, 10501)
    for path in ("workspaces/zoe", "workspaces/zoe/src", "workspaces/zoe/src/main.py", "results/zoe", "common/zoe.txt"):
        assert host.file(f"{BASE}/{path}").uid == 10501, path
    assert host.run(f"find {BASE} -uid 10500 -o -gid 10500 | wc -l").stdout.strip() == "0"
    assert converge(zoe(10501)) == 0


def test_removing_an_agent_retires_its_data_and_account(host: testinfra.host.Host) -> None:
    assert converge() > 0
    assert not host.user("agent-zoe").exists
    assert not host.file(f"{BASE}/inbox/zoe").exists
    kept = host.run(f"cat {BASE}/retired/zoe/*/workspaces/src/main.py")
    assert kept.rc == 0 and kept.stdout == "work\n"
    assert host.file(f"{BASE}/retired").mode == 0o700 and host.file(f"{BASE}/retired").user == "root"
    assert host.file(f"{BASE}/common/zoe.txt").exists, "files zoe left in common stay"
    assert converge() == 0


def test_data_is_deleted_only_when_the_variable_says_so(host: testinfra.host.Host) -> None:
    yann = {"agentfleet_test_extra_agents": [{"name": "yann", "kind": "worker", "uid": 10502}]}
    converge(yann)
    host.run(f"echo draft > {BASE}/workspaces/yann/draft.txt")
    assert converge({"agent_tree_delete_retired": True}) > 0
    assert not host.file(f"{BASE}/workspaces/yann").exists
    assert not host.file(f"{BASE}/retired/yann").exists
    assert host.run(f"ls {BASE}/retired/zoe").rc == 0, "earlier retired data is never touched"
