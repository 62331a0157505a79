"""300 tasks sent from one host, by role and by name, over the three hosts' workers while one host
is killed (its container, every process at once) and started again, and another host's NATS server
restarts: every task has exactly one completion in the fleet, none is lost, the role tasks the
killed host held are finished elsewhere (its late results recorded as duplicate attempts), and the
tasks named for its workers wait for them. Runs after test_relay_service (it kills a host)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import testinfra.host
from test_nats_cluster import HOSTS
from test_relay_service import fleet_results, on, start_worker

testinfra_hosts = ["ansible://agentfleet-fleet-alpha"]
LIB, ROOT, STATE = "/opt/agentfleet/nats/lib", "/srv/agentfleet", "/var/lib/agentfleet/relay"
ALPHA, BETA, GAMMA = HOSTS
# Every worker of the scenario's three models (molecule.yml), written by hand with its role.
WORKERS = {ALPHA: {"marie": "frontend", "anga": "backend"}, BETA: {"lea": "frontend", "bob": "backend"},
           GAMMA: {"fabien": "devops", "zoe": "frontend"}}
ROLE_TASKS = {"frontend": 120, "backend": 60, "devops": 20}
NAMED_TASKS = 100  # spread evenly over the six workers


RUN = "sleep 0.1; echo done {task_id} by $AGENTFLEET_NAME"
# zoe holds her first frontend role task until the test lets her go (RELEASE on gamma, made after
# gamma is back): gamma surely holds a role task when it is killed, not one it had just finished.
RELEASE = "/var/tmp/agentfleet-test-release"
HOLD = f"case {{task_id}} in *-frontend-*) while [ ! -e {RELEASE} ]; do sleep 0.2; done;; esac; "


def start_workers(name: str) -> None:
    for worker in WORKERS[name]:
        start_worker(name, worker, f"faults-{worker}", (HOLD if worker == "zoe" else "") + RUN)


@pytest.fixture(name="workers")
def fixture_workers() -> Iterator[None]:
    for name in HOSTS:
        start_workers(name)
    yield
    for name in HOSTS:
        on(name).run("systemctl stop 'agentfleet-test-faults-*'")


def plan() -> dict[str, dict[str, str]]:
    """Task id -> its target: by role as ROLE_TASKS says, by name in turn over every worker. The
    ids are this run's own (the fleet drops a task id it has seen within its duplicate window)."""
    run = secrets.token_hex(3)
    tasks = {f"f{run}-{role}-{index:03d}": {"role": role} for role, count in ROLE_TASKS.items() for index in range(count)}
    names = sorted(worker for workers in WORKERS.values() for worker in workers)
    tasks |= {f"f{run}-to-{index:03d}": {"to": names[index % len(names)]} for index in range(NAMED_TASKS)}
    return tasks


def send(tasks: dict[str, dict[str, str]]) -> None:
    """Into alpha's outbox at once, as its dispatcher would (atomic files of the dispatcher's)."""
    documents = {ident: {**target, "task": {"id": ident, "prompt": f"do {ident}", "submitted": time.time()}}
                 for ident, target in tasks.items()}
    script = ("import json, os, sys\n"
              "for ident, document in json.load(sys.stdin).items():\n"
              f"    path = os.path.join({ROOT + '/outbox'!r}, ident + '.json')\n"
              "    with open(os.path.join(os.path.dirname(path), '.' + ident), 'w') as handle:\n"
              "        json.dump(document, handle)\n"
              "    os.rename(os.path.join(os.path.dirname(path), '.' + ident), path)\n")
    subprocess.run(["docker", "exec", "-i", ALPHA, "setpriv", "--reuid", "agent-orchestrator", "--regid", "agent-orchestrator",
                    "--init-groups", "python3", "-c", script], input=json.dumps(documents), text=True, check=True)


def back(idents: set[str]) -> set[str]:
    listed = set(on(ALPHA).check_output(f"ls {ROOT}/fleet").split())
    return {ident for ident in idents if f"{ident}.json" in listed}


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}\n{state()}"
        time.sleep(0.3)


def state() -> str:
    """Each host's services, address, what its relay holds and its last words, for a failure's report."""
    report = []
    for name in HOSTS:
        shown = on(name).run(f"hostname -I; systemctl is-active agentfleet-nats agentfleet-relay; ls {STATE}/delivered | head;"
                             " journalctl -u agentfleet-relay -u agentfleet-nats --no-pager -n 12 | cut -c1-240")
        report.append(f"== {name}\n{shown.stdout}{shown.stderr}")
    return "\n".join(report)


def kill_and_restart(name: str, down: float) -> None:
    subprocess.run(["docker", "kill", name], check=True, capture_output=True)
    time.sleep(down)
    subprocess.run(["docker", "start", name], check=True, capture_output=True)
    wait_for(lambda: on(name).run("systemctl is-active agentfleet-relay").stdout.strip() == "active", 120,
             f"{name}'s relay active again")
    start_workers(name)


@pytest.mark.usefixtures("workers")
def test_three_hundred_tasks_survive_a_killed_host_and_a_nats_restart(host: testinfra.host.Host) -> None:
    tasks = plan()
    assert len(tasks) == 300
    send(tasks)
    # gamma dies while zoe holds a frontend task (a role two other hosts have; gamma takes the tasks
    # named for its workers first); it stays down three leases (nats_lease), time for the others to
    # take what it held.
    wait_for(lambda: on(GAMMA).run(f"ls {STATE}/delivered | grep -q -- '-frontend-'").rc == 0, 240,
             "gamma holding a role task")
    lease = int(host.ansible.get_variables()["nats_lease"])
    kill_and_restart(GAMMA, 3 * lease)
    on(GAMMA).run_expect([0], f"touch {RELEASE}")
    wait_for(lambda: len(back(set(tasks))) >= 200, 300, "200 results before the NATS restart")
    on(BETA).run_expect([0], "systemctl restart agentfleet-nats")
    wait_for(lambda: back(set(tasks)) == set(tasks), 420, "every result back on alpha")

    results = {ident: json.loads(on(ALPHA).file(f"{ROOT}/fleet/{ident}.json").content_string) for ident in tasks}
    mine = [entry for entry in fleet_results() if entry.get("result", {}).get("id") in tasks]
    # Exactly one completion each in the fleet: one result in the stream, the same one on alpha.
    assert sorted(entry["result"]["id"] for entry in mine) == sorted(tasks)
    for entry in mine:
        ident = entry["result"]["id"]
        assert (results[ident]["node"], results[ident]["worker"]) == (entry["node"], entry["worker"])
        assert results[ident]["result"]["output"].strip() == f"done {ident} by {entry['worker']}"
        target = tasks[ident]
        if "to" in target:  # named tasks ran on their worker, whatever happened to its host
            assert entry["worker"] == target["to"], ident
        else:
            assert WORKERS[entry["node"]][entry["worker"]] == target["role"], ident
    # Spread over the three hosts.
    assert {entry["node"] for entry in mine} == set(HOSTS)
    # What gamma held when it died was finished elsewhere; its late results are duplicates only.
    late = [json.loads(line) for line in on(GAMMA).run(
        f"cat {STATE}/duplicates.jsonl 2>/dev/null").stdout.splitlines()]
    late_ours = [entry["task"] for entry in late if entry["task"] in tasks]
    assert late_ours, "gamma held no role task when it was killed: nothing was tested"
    assert all(results[ident]["node"] != GAMMA for ident in late_ours), late_ours
    assert all(tasks[ident].get("role") for ident in late_ours), late_ours
    assert on(ALPHA).check_output(f"ls {ROOT}/outbox") == ""
