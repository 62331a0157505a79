"""Two hosts' relays on one real nats-server (Debian's, JetStream on), each host with its own tree
and real runtime workers on the command backend: tasks by role and by name cross hosts, each
completes once; a host that loses its lease loses a role task to the other, and its late result
is recorded as a duplicate attempt; the outbox takes only the dispatcher's well-formed tasks."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from agentfleet import agentctl
from agentfleet.fleet import Fleet
from agentfleet_files import FILES
from agentfleet_relay import RESULTS, TASKS, WORKERS, Dispatcher, Local, Relay, load_settings
from nats.js.api import ConsumerConfig, KeyValueConfig, RetentionPolicy, StreamConfig
from nats_helpers import free_port, start_server
from runtime_helpers import make_tree, start_worker

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None, reason="Debian's nats-server is not installed "
                                "(scripts/test installs it)")
HOSTS = {"alpha": {"marie": "frontend", "anga": "backend"}, "beta": {"lea": "frontend"}}
LEASE = 3.0


@pytest.fixture(name="server")
def fixture_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    server = start_server(["-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(tmp_path / "js")], port)
    url = f"nats://127.0.0.1:{port}"
    asyncio.run(setup(url))
    yield url
    server.terminate()
    server.wait(timeout=10)


async def setup(url: str) -> None:
    """What the role's admin step makes: the streams, a consumer per worker and per role, the bucket."""
    client = await nats.connect(url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=TASKS, subjects=["fleet.task.>"], retention=RetentionPolicy.WORK_QUEUE,
                                     duplicate_window=3600.0))
    await js.add_stream(StreamConfig(name=RESULTS, subjects=["fleet.result.>"], duplicate_window=3600.0))
    for workers in HOSTS.values():
        for worker, role in workers.items():
            await js.add_consumer(TASKS, ConsumerConfig(durable_name=f"worker-{worker}", ack_wait=LEASE,
                                                        filter_subject=f"fleet.task.worker.{worker}"))
    for role in sorted({role for workers in HOSTS.values() for role in workers.values()}):
        await js.add_consumer(TASKS, ConsumerConfig(durable_name=f"role-{role}", ack_wait=LEASE,
                                                    filter_subject=f"fleet.task.role.{role}"))
    for node in HOSTS:
        await js.add_consumer(RESULTS, ConsumerConfig(durable_name=f"results-{node}", ack_wait=LEASE,
                                                      filter_subject=f"fleet.result.*.{node}.>"))
    await js.create_key_value(KeyValueConfig(bucket=WORKERS))
    await js.add_stream(StreamConfig(name=FILES, subjects=["fleet.file.>"], duplicate_window=3600.0, allow_direct=True))
    await client.close()


def host_tree(root: Path, node: str) -> Local:
    workers = HOSTS[node]
    make_tree(root / node, list(workers))
    (root / node / "outbox").mkdir()
    (root / node / "fleet").mkdir()
    agents = {name: os.getuid() for name in workers} | {"monitor": os.getuid()}
    return Local(Fleet(root / node, agents, interval=0.5), workers, root / f"{node}-state", os.getuid())


def results_back(local: Local) -> list[Path]:
    """The results the relay brought back into fleet/ (beside its copy of the fleet's workers and the tasks it sent)."""
    return sorted(path for path in (local.fleet.root / "fleet").iterdir()
                  if path.name != "_workers.json" and not path.name.endswith(".sent.json"))


def outbox(local: Local, ident: str, **target: str) -> None:
    task = {"id": ident, "prompt": f"say {ident}", "submitted": time.time()}
    (local.fleet.root / "outbox" / f"{ident}.json").write_text(json.dumps({**target, "task": task}))


async def results(url: str) -> list[dict[str, Any]]:
    client = await nats.connect(url)
    js = client.jetstream()
    found = []
    subscription = await js.subscribe("fleet.result.>", ordered_consumer=True)
    info = await js.stream_info(RESULTS)
    for _ in range(info.state.messages):
        message = await subscription.next_msg(timeout=5)
        found.append({"subject": message.subject, **json.loads(message.data)})
    await client.close()
    return found


async def run_relays(url: str, relays: dict[str, Local], until: Any, timeout: float = 60) -> dict[str, Relay]:
    stop, running, clients = asyncio.Event(), {}, []
    for node, local in relays.items():
        client = await nats.connect(url)
        clients.append(client)
        js = client.jetstream()
        running[node] = Relay(js, await js.key_value(WORKERS), local, node, lease=LEASE, poll=0.2)
    loops = [asyncio.create_task(relay.run(stop)) for relay in running.values()]
    deadline = time.monotonic() + timeout
    while not await until() and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
    stop.set()
    await asyncio.gather(*loops)
    for relay in running.values():
        for follower in relay.running.values():
            follower.cancel()
    for client in clients:
        await client.close()
    return running


def workers_for(root: Path, node: str, tmp_path: Path, command: str = "echo done {task_id}") -> list[subprocess.Popen[str]]:
    return [start_worker(root / node, name, ["sh", "-c", command], log=tmp_path / f"{name}.log", AGENTFLEET_STOP_GRACE="1")
            for name in HOSTS[node]]


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.terminate()
        process.wait(timeout=15)


def test_tasks_by_role_and_by_name_cross_hosts_and_each_completes_once(server: str, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "hosts"
    alpha, beta = host_tree(root, "alpha"), host_tree(root, "beta")
    for index in range(12):
        outbox(alpha, f"role-{index:02d}", role="frontend")
    outbox(alpha, "to-lea", to="lea")
    outbox(beta, "to-anga", to="anga")
    processes = workers_for(root, "alpha", tmp_path) + workers_for(root, "beta", tmp_path)
    try:
        async def done() -> bool:
            back = len(results_back(alpha)) + len(results_back(beta))
            return back >= 14 and len(await results(server)) >= 14
        asyncio.run(run_relays(server, {"alpha": alpha, "beta": beta}, done))
    finally:
        stop(processes)
    found = asyncio.run(results(server))
    idents = sorted(entry["result"]["id"] for entry in found)
    assert idents == sorted([f"role-{index:02d}" for index in range(12)] + ["to-lea", "to-anga"])
    where = {entry["result"]["id"]: (entry["node"], entry["worker"]) for entry in found}
    assert where["to-lea"] == ("beta", "lea") and where["to-anga"] == ("alpha", "anga")
    assert {where[f"role-{index:02d}"][1] for index in range(12)} == {"marie", "lea"}  # both hosts took role tasks
    assert all(entry["result"]["status"] == "ok" for entry in found)
    assert not list((alpha.fleet.root / "outbox").iterdir())
    # Each result came back to the host that sent its task, and only there; who ran it is the
    # node its result was published under.
    back = {path.stem: json.loads(path.read_text()) for path in results_back(alpha)}
    assert sorted(back) == sorted([f"role-{index:02d}" for index in range(12)] + ["to-lea"])
    assert (back["to-lea"]["node"], back["to-lea"]["worker"], back["to-lea"]["result"]["status"]) == ("beta", "lea", "ok")
    assert [path.name for path in results_back(beta)] == ["to-anga.json"]
    # agentctl results on alpha lists them too, each with the node that ran it.
    assert agentctl.main(["--root", str(alpha.fleet.root), "results"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "lea@beta  to-lea  ok" in [line.rstrip() for line in listed] and len(listed) == 14, listed  # 12 + to-lea + to-anga
    assert not list((alpha.state / "sent").iterdir())


def test_a_host_that_loses_its_lease_loses_the_task_and_its_late_result_is_a_duplicate(server: str, tmp_path: Path) -> None:
    root = tmp_path / "hosts"
    alpha, beta = host_tree(root, "alpha"), host_tree(root, "beta")
    outbox(alpha, "orphan", role="frontend")
    # alpha's worker takes the task and alpha dies with it running: relay and workers stop.
    alpha_workers = workers_for(root, "alpha", tmp_path, "sleep 60")
    try:
        async def delivered() -> bool:
            return "orphan" in alpha.delivered()
        asyncio.run(run_relays(server, {"alpha": alpha}, delivered, timeout=20))
    finally:
        stop(alpha_workers)
    assert alpha.delivered() == {"orphan": ("marie", "alpha")}
    assert not (root / "alpha" / "results" / "marie" / "orphan.json").exists()
    # While alpha is down its inbox is out of reach: the task is set aside until alpha is back.
    held = root / "alpha" / "inbox" / "marie" / "orphan.json"
    task = held.read_text()
    held.unlink()
    beta_workers = workers_for(root, "beta", tmp_path)
    try:
        async def finished_elsewhere() -> bool:
            return any(entry["result"]["id"] == "orphan" for entry in await results(server))
        asyncio.run(run_relays(server, {"beta": beta}, finished_elsewhere, timeout=30))
    finally:
        stop(beta_workers)
    # alpha comes back: its worker runs the task it held, and its relay publishes the late result.
    held.write_text(task)
    alpha_workers = workers_for(root, "alpha", tmp_path)
    try:
        async def settled() -> bool:
            return not alpha.delivered()
        asyncio.run(run_relays(server, {"alpha": alpha}, settled, timeout=30))
    finally:
        stop(alpha_workers)
    found = [entry for entry in asyncio.run(results(server)) if entry["result"]["id"] == "orphan"]
    assert [(entry["node"], entry["worker"]) for entry in found] == [("beta", "lea")]
    assert alpha.duplicates == ["orphan"]
    recorded = [json.loads(line) for line in (alpha.state / "duplicates.jsonl").read_text().splitlines()]
    assert [entry["task"] for entry in recorded] == ["orphan"]


def test_the_outbox_takes_only_the_dispatchers_well_formed_tasks(server: str, tmp_path: Path) -> None:
    alpha = host_tree(tmp_path / "hosts", "alpha")
    box = alpha.fleet.root / "outbox"
    outbox(alpha, "fine", role="frontend")
    (box / "both.json").write_text(json.dumps({"to": "lea", "role": "frontend", "task": {"id": "both", "prompt": "x"}}))
    (box / "other-id.json").write_text(json.dumps({"to": "lea", "task": {"id": "else", "prompt": "x"}}))
    (box / "bad-task.json").write_text(json.dumps({"to": "lea", "task": {"id": "bad-task", "prompt": ""}}))
    (tmp_path / "elsewhere.json").write_text(json.dumps({"to": "lea", "task": {"id": "link", "prompt": "x"}}))
    (box / "link.json").symlink_to(tmp_path / "elsewhere.json")
    taken = [document["task"]["id"] for _path, document, _base in alpha.outbox()]
    assert taken == ["fine"]
    reasons = "\n".join(alpha.fleet.problems)
    for name, reason in (("both", "exactly one of to and role"), ("other-id", "the task's id does not match the file name"),
                         ("bad-task", "task.prompt: shorter than 1"), ("link", "a symlink")):
        assert f"{name}.json: {reason}" in reasons, reasons
    other = Local(alpha.fleet, alpha.roles, alpha.state, dispatcher_uid=os.getuid() + 1)
    outbox(other, "foreign", role="frontend")
    assert [document for _path, document, _base in other.outbox()] == []
    assert "owned by uid" in alpha.fleet.problems[-1]


def test_settings_with_a_missing_or_wrong_field_are_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "relay.json"
    good = {"url": "tls://10.0.0.1:4222", "ca": "c", "cert": "c", "key": "k", "node": "alpha", "root": "/srv/agentfleet",
            "state": "/s", "roles": {"marie": "frontend"}, "agents": {"marie": 10001}, "lease": 30,
            "dispatcher_uid": 10000, "dispatcher_gid": 10000, "dispatcher_groups": [10000, 10900]}
    path.write_text(json.dumps(good))
    assert load_settings(str(path)) == good
    path.write_text(json.dumps({**good, "lease": "soon", "dispatcher_gid": True, "roles": None}))
    with pytest.raises(SystemExit) as refused:
        load_settings(str(path))
    assert all(f"{field}: required" in str(refused.value) for field in ("lease", "dispatcher_gid", "roles"))


def test_a_result_sent_back_is_stored_only_when_well_formed(server: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Another host's bytes: a worker that is not a name, an id that is not the subject's, or a
    result not in the schema is refused (said, escaped) and never reaches fleet/."""
    alpha = host_tree(tmp_path / "hosts", "alpha")
    result = {"worker": "lea", "status": "ok", "output": "x", "reason": "", "attempt": 1, "started": 1.0, "finished": 2.0}
    sent = {"good": {"worker": "lea", "result": {**result, "id": "good"}},
            "escape": {"worker": "lea\x1b[2J", "result": {**result, "id": "escape"}},
            "other-id": {"worker": "lea", "result": {**result, "id": "good"}},
            "no-status": {"worker": "lea", "result": {"id": "no-status"}}}
    for ident in sent:
        alpha.mark("sent", ident)

    async def publish() -> None:
        client = await nats.connect(server)
        for ident, document in sent.items():
            payload = json.dumps({"node": "beta", **document}).encode()
            await client.jetstream().publish(f"fleet.result.beta.alpha.{ident}", payload)
        await client.close()
    asyncio.run(publish())
    said: list[str] = []

    async def settled() -> bool:
        said.append(capsys.readouterr().err)
        refused = [ident for ident in sent if f"fleet.result.beta.alpha.{ident}" in "".join(said)]
        return (alpha.fleet.root / "fleet" / "good.json").exists() and len(refused) == 3
    asyncio.run(run_relays(server, {"alpha": alpha}, settled))
    assert [path.name for path in results_back(alpha)] == ["good.json"], said
    assert json.loads((alpha.fleet.root / "fleet" / "good.json").read_text())["worker"] == "lea"
    assert "\x1b" not in "".join(said)


def test_every_hosts_workers_reach_agentctl_status_and_a_bad_entry_is_left_out(
        server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bucket holds other hosts' bytes: an entry that is not a worker's is left out, and who
    wrote an entry is its key's node, never what it says."""
    alpha, beta = host_tree(tmp_path / "hosts", "alpha"), host_tree(tmp_path / "hosts", "beta")
    now = time.time()
    hostile = {"beta.mallory": json.dumps({"role": "\x1b[2J", "fresh": True, "pending": 0, "updated": now}).encode(),
               "beta.eve": json.dumps({"node": "alpha", "role": "frontend", "fresh": True, "pending": 1, "updated": now}).encode(),
               "beta.bad": b"not json", "beta.minus": json.dumps({"role": "", "fresh": True, "pending": -1, "updated": now}).encode()}

    async def put() -> None:
        client = await nats.connect(server)
        kv = await client.jetstream().key_value(WORKERS)
        for key, value in hostile.items():
            await kv.put(key, value)
        await client.close()
    asyncio.run(put())
    view = alpha.fleet.root / "fleet" / "_workers.json"

    async def shown() -> bool:
        return view.exists() and {"marie", "anga", "lea"} <= {row["worker"] for row in json.loads(view.read_text())["workers"]}
    asyncio.run(run_relays(server, {"alpha": alpha, "beta": beta}, shown))
    rows = {(row["node"], row["worker"]): row for row in json.loads(view.read_text())["workers"]}
    assert set(rows) == {("alpha", "marie"), ("alpha", "anga"), ("beta", "lea"), ("beta", "eve")}
    assert rows[("beta", "lea")]["role"] == "frontend" and rows[("beta", "eve")]["pending"] == 1
    table = agentctl.fleet_status_table(alpha.fleet)
    assert "beta   lea" in table and "\x1b" not in table and "mallory" not in table
    said = capsys.readouterr().err
    assert all(f"agentfleet_workers.beta.{name}" in said for name in ("mallory", "bad", "minus")) and "\x1b" not in said


def test_every_hosts_latest_goals_reach_agentctl_goals_and_a_bad_entry_is_left_out(
        server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """beta's orchestrator has a goal done and one waiting: alpha's `agentctl goals` lists both under
    beta; a host's goals entry out of shape is left out and said, escaped."""
    alpha, beta = host_tree(tmp_path / "hosts", "alpha"), host_tree(tmp_path / "hosts", "beta")
    make_tree(beta.fleet.root, ["orchestrator"])
    beta.fleet.agents["orchestrator"], beta.dispatcher_name = os.getuid(), "orchestrator"
    task = {"id": "g-done", "prompt": "a goal", "project": "shop", "base": "0" * 40}
    (beta.fleet.root / "inbox" / "orchestrator" / "g-done.json").write_text(json.dumps(task))
    (beta.fleet.root / "inbox" / "orchestrator" / "g-wait.json").write_text(json.dumps({"id": "g-wait", "prompt": "later"}))
    result = {"id": "g-done", "worker": "orchestrator", "status": "ok", "output": "", "reason": "", "attempt": 1,
              "started": 1.0, "finished": 2.0, "task": task}
    (beta.fleet.root / "results" / "orchestrator" / "g-done.json").write_text(json.dumps(result))

    async def put() -> None:
        client = await nats.connect(server)
        kv = await client.jetstream().key_value(WORKERS)
        await kv.put("gamma._goals", json.dumps({"goals": [{"goal": "x\x1b[2J", "project": "-", "status": "ok", "tasks": 0}]}).encode())
        await kv.put("delta._goals", b"[]")
        await client.close()
    asyncio.run(put())
    view = alpha.fleet.root / "fleet" / "_workers.json"

    async def shown() -> bool:
        return view.exists() and len(json.loads(view.read_text()).get("goals", [])) >= 2
    asyncio.run(run_relays(server, {"alpha": alpha, "beta": beta}, shown))
    assert [(goal["node"], goal["goal"], goal["project"], goal["status"], goal["tasks"])
            for goal in json.loads(view.read_text())["goals"]] == [("beta", "g-done", "shop", "ok", 0),
                                                                     ("beta", "g-wait", "-", "pending", 0)]
    table = agentctl.fleet_goals_table(alpha.fleet)
    assert "beta  g-done  shop     ok" in table and "g-wait" in table and "\x1b" not in table, table
    said = capsys.readouterr().err
    assert all(f"agentfleet_workers.{node}._goals" in said for node in ("gamma", "delta")) and "\x1b" not in said
