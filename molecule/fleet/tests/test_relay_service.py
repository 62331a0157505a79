"""Each host's relay as the role deploys it: a unit under its own account whose only privilege is
to act as the tree's dispatcher; every host's workers in the fleet's bucket; tasks sent with
agentctl from a host with no worker running (by role and by name) run on the other hosts' workers
and each result comes back, once, to the host that sent it. The workers are the runtime's own
processes on the command backend, started here as their agents' accounts (no engine on these hosts)."""

from __future__ import annotations

import asyncio
import json
import shlex
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra.host
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from test_nats_cluster import HOSTS, client, credentials

testinfra_hosts = ["ansible://agentfleet_hosts"]
LIB = "/opt/agentfleet/nats/lib"
ROOT = "/srv/agentfleet"
# Where the workers run (none on alpha, which sends): written by hand, the inventory checked against it.
RUNNING = {"agentfleet-fleet-beta": ["lea", "bob"], "agentfleet-fleet-gamma": ["fabien", "zoe"]}


def on(name: str) -> testinfra.host.Host:
    return testinfra.host.get_host(f"docker://{name}")


def agentctl(*args: str) -> str:
    """agentctl on alpha as its dispatcher (the orchestrator's account), as the host's agentctl drops to it."""
    command = ["setpriv", "--reuid", "agent-orchestrator", "--regid", "agent-orchestrator", "--init-groups",
               "env", f"PYTHONPATH={LIB}", f"AGENTFLEET_ROOT={ROOT}", "python3", "-I", "-c",
               "import sys; sys.path.insert(0, %r); from agentfleet.agentctl import main; sys.exit(main(sys.argv[1:]))" % LIB,
               *args]
    return str(on(HOSTS[0]).check_output(shlex.join(command)))


def start_worker(name: str, worker: str, unit: str, command: str, projects: dict[str, str] | None = None) -> None:
    """The runtime's worker for worker on host name, as its account, running command on each task
    (the command backend), as the transient unit agentfleet-test-<unit>; projects: name -> mirror."""
    backend = json.dumps({"type": "command", "argv": ["sh", "-c", command], "timeout": 30})
    groups = " ".join(["agentfleet-common", *(f"agentfleet-project-{project}" for project in projects or {})])
    on(name).run_expect([0], shlex.join([
        "systemd-run", f"--unit=agentfleet-test-{unit}", f"--uid=agent-{worker}", f"--gid=agent-{worker}",
        "-p", f"SupplementaryGroups={groups}", f"--setenv=AGENTFLEET_PROJECTS={json.dumps(projects or {})}",
        f"--setenv=PYTHONPATH={LIB}", f"--setenv=AGENTFLEET_ROOT={ROOT}",
        f"--setenv=AGENTFLEET_NAME={worker}", f"--setenv=AGENTFLEET_BACKEND={backend}",
        "--setenv=AGENTFLEET_HEARTBEAT_INTERVAL=1", "python3", "-I", "-c",
        "import sys; sys.path.insert(0, %r); from agentfleet.__main__ import main; sys.exit(main(sys.argv[1:]))" % LIB,
        "worker"]))


@pytest.fixture(name="workers", scope="module")
def fixture_workers() -> Iterator[None]:
    for name, workers in RUNNING.items():
        for worker in workers:
            start_worker(name, worker, f"worker-{worker}", "echo done {task_id} by $AGENTFLEET_NAME")
    yield
    for name, workers in RUNNING.items():
        for worker in workers:
            on(name).run(f"systemctl stop agentfleet-test-worker-{worker}")


def test_the_relay_runs_as_its_own_account_able_only_to_act_as_the_dispatcher(host: testinfra.host.Host) -> None:
    assert host.service("agentfleet-relay").is_running and host.service("agentfleet-relay").is_enabled
    unit = dict(line.split("=", 1) for line in host.check_output(
        "systemctl show agentfleet-relay -p CapabilityBoundingSet -p AmbientCapabilities -p NoNewPrivileges"
        " -p ProtectSystem -p MainPID").splitlines())
    assert unit["NoNewPrivileges"] == "yes" and unit["ProtectSystem"] == "strict"
    assert unit["CapabilityBoundingSet"] == "cap_setgid cap_setuid" and unit["AmbientCapabilities"] == ""
    # Started as root, it became its own account for good: real and effective ids its own, the
    # saved ones the dispatcher's (the only other ids it can take), no capability left.
    relay, dispatcher = host.user("agentfleet-relay"), host.user("agent-orchestrator")
    status = dict(line.split(":\t", 1) for line in host.file(f"/proc/{unit['MainPID']}/status").content_string.splitlines())
    assert status["Uid"].split() == [str(relay.uid), str(relay.uid), str(dispatcher.uid), str(relay.uid)], status
    assert status["Gid"].split() == [str(relay.gid), str(relay.gid), str(dispatcher.gid), str(relay.gid)], status
    assert all(int(status[key], 16) == 0 for key in ("CapInh", "CapPrm", "CapEff", "CapAmb")), status
    assert status["NoNewPrivs"] == "1"
    # Control: its own account cannot write an inbox; only acting as the dispatcher does.
    worker = next(agent["name"] for agent in host.ansible.get_variables()["agent_model_agents"] if agent["kind"] == "worker")
    denied = host.run(f"setpriv --reuid agentfleet-relay --regid agentfleet-relay --clear-groups touch {ROOT}/inbox/{worker}/x")
    assert denied.rc != 0 and "Permission denied" in denied.stderr
    key = host.file("/etc/agentfleet/nats/tls/relay.key")
    assert (key.user, key.group, key.mode) == ("root", "agentfleet-relay", 0o640)
    # Everything it runs and imports is root's: no agent (and not the relay) can change its code.
    assert host.check_output(f"find {LIB} /opt/agentfleet/nats/venv \\( ! -user root -o \\( -perm /022 ! -type l \\) \\) -print") == ""


def bucket_keys() -> list[str]:
    async def read() -> list[str]:
        nc = await client(HOSTS[0], credentials(HOSTS[0], "admin", Path(tmp())), "_INBOX_agentfleet-fleet-alpha_admin")
        try:
            kv = await nc.jetstream(timeout=5).key_value("agentfleet_workers")
            return sorted(await kv.keys())
        finally:
            await nc.close()
    return asyncio.run(read())


def tmp() -> str:
    return tempfile.mkdtemp(prefix="agentfleet-fleet-test-")


def test_every_hosts_workers_are_in_the_fleets_bucket(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    node = variables["inventory_hostname"]
    mine = sorted(f"{node}.{agent['name']}" for agent in variables["agent_model_agents"] if agent["kind"] == "worker")
    every = sorted(["agentfleet-fleet-alpha.marie", "agentfleet-fleet-alpha.anga", "agentfleet-fleet-beta.lea",
                    "agentfleet-fleet-beta.bob", "agentfleet-fleet-gamma.fabien", "agentfleet-fleet-gamma.zoe"])
    # Beside the workers, each host's latest goals under <node>._goals (no worker's name starts with _).
    goals = sorted(f"{name}._goals" for name in ("agentfleet-fleet-alpha", "agentfleet-fleet-beta", "agentfleet-fleet-gamma"))
    deadline = time.monotonic() + 20
    while bucket_keys() != sorted(every + goals) and time.monotonic() < deadline:
        time.sleep(1)
    keys = bucket_keys()
    assert keys == sorted(every + goals) and [key for key in keys if key.startswith(f"{node}.") and "._" not in key] == mine


@pytest.mark.usefixtures("workers")
def test_agentctl_status_on_one_host_shows_every_hosts_workers() -> None:
    """From the bucket, by way of alpha's relay: the workers running on beta and gamma are ready,
    alpha's own (none running) are not."""
    expected = {("agentfleet-fleet-beta", "lea", "frontend"), ("agentfleet-fleet-beta", "bob", "backend"),
                ("agentfleet-fleet-gamma", "fabien", "devops"), ("agentfleet-fleet-gamma", "zoe", "frontend")}
    deadline, ready, rows, table = time.monotonic() + 30, set[tuple[str, str, str]](), [], ""
    while ready != expected and time.monotonic() < deadline:
        time.sleep(1)
        table = agentctl("status").split("the fleet (every host's workers", 1)[-1]
        rows = [line.split() for line in table.splitlines()[2:] if line.strip()]
        ready = {(cells[0], cells[1], cells[2]) for cells in rows if cells[3] == "ready"}
    assert ready == expected, table
    assert {(cells[0], cells[1]) for cells in rows} >= {("agentfleet-fleet-alpha", "marie"), ("agentfleet-fleet-alpha", "anga")}


def fleet_results() -> list[dict[str, Any]]:
    """Every message of the results stream, with its subject, read by sequence (no consumer to set
    up, so a cluster still electing its consumer leaders answers all the same)."""
    async def read() -> list[dict[str, Any]]:
        nc = await client(HOSTS[0], credentials(HOSTS[0], "admin", Path(tmp())), "_INBOX_agentfleet-fleet-alpha_admin")
        try:
            js = nc.jetstream(timeout=10)
            state = (await js.stream_info("AGENTFLEET_RESULTS")).state
            found: list[dict[str, Any]] = []
            for sequence in range(state.first_seq, state.last_seq + 1):
                try:
                    message = await js.get_msg("AGENTFLEET_RESULTS", sequence)
                except NotFoundError:
                    continue
                found.append({"subject": message.subject, **json.loads(message.data or b"{}")})
            return found
        finally:
            await nc.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            return asyncio.run(read())
        except (NatsError, asyncio.TimeoutError):  # JetStream electing its leaders again after a restart
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


@pytest.mark.usefixtures("workers")
def test_tasks_sent_from_one_host_run_on_the_others_and_come_back_once() -> None:
    alpha = on(HOSTS[0])
    sent = {agentctl("submit", "--role", "frontend", f"front {index}").split()[1]: "frontend" for index in range(6)}
    sent |= {agentctl("submit", "--to", "fabien", "deploy it").split()[1]: "fabien"}
    line, _, body = agentctl("submit", "--role", "backend", "--wait", "60", "api").partition("\n")
    waited = json.loads(body)
    sent |= {line.split()[1]: "backend"}
    assert line.startswith("fleet:backend ")
    assert (waited["node"], waited["worker"], waited["status"]) == ("agentfleet-fleet-beta", "bob", "ok")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not {f"{ident}.json" for ident in sent} <= set(alpha.check_output(f"ls {ROOT}/fleet").split()):
        time.sleep(1)
    back = {ident: json.loads(alpha.file(f"{ROOT}/fleet/{ident}.json").content_string) for ident in sent}
    for ident, target in sent.items():
        ran = (back[ident]["node"], back[ident]["worker"])
        assert ran in {"frontend": {("agentfleet-fleet-beta", "lea"), ("agentfleet-fleet-gamma", "zoe")},
                       "backend": {("agentfleet-fleet-beta", "bob")},
                       "fabien": {("agentfleet-fleet-gamma", "fabien")}}[target], (ident, ran)
        assert back[ident]["result"]["output"].strip() == f"done {ident} by {ran[1]}"
        assert alpha.file(f"{ROOT}/fleet/{ident}.json").user == "agent-orchestrator"
    # Exactly once each in the fleet's results, published under the node that ran it, back to alpha.
    # (the stream also holds what test_nats_cluster published as each relay: "{}")
    published = [entry for entry in fleet_results() if entry.get("result", {}).get("id") in sent]
    assert sorted(entry["result"]["id"] for entry in published) == sorted(sent)
    assert all(entry["subject"] == f"fleet.result.{entry['node']}.{HOSTS[0]}.{entry['result']['id']}" for entry in published)
    assert alpha.check_output(f"ls {ROOT}/outbox") == ""
