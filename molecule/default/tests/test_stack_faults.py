"""kill -9 worker processes in the deployed stack while 100 tasks run: none lost, none twice.

The worker's PID 1 is tini; killing its child (the runtime) is a crash, so Docker's restart
policy brings the container back, and the runtime takes its interrupted task again.
"""

from __future__ import annotations

import json
import random
import shlex
import time
from collections import Counter

import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
WORKERS = ("marie", "anga", "fabien", "lea")
TASKS = 100


def sh(host: testinfra.host.Host, command: str) -> str:
    result = host.run(command)
    assert result.rc == 0, f"{command}: {result.stderr}"
    return str(result.stdout)


# Killed from inside the container, so it works the same under runc and gVisor (whose processes
# the host cannot see).
KILL_RUNTIME = ("import os\n"
                "for pid in (p for p in os.listdir('/proc') if p.isdigit()):\n"
                "    try:\n        argv = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n"
                "    except OSError:\n        continue\n"
                "    if argv[:5] == [b'python3', b'-I', b'-m', b'agentfleet', b'worker']:\n"
                "        print('killing', pid, flush=True)\n        os.kill(int(pid), 9)")


def started_at(host: testinfra.host.Host, worker: str) -> str:
    return sh(host, f"docker inspect -f '{{{{.State.StartedAt}}}}' agentfleet-{worker}-1").strip()


def crash(host: testinfra.host.Host, worker: str) -> None:
    """The killer may go down with its container (tini exits with the runtime): 137 under runc;
    under gVisor the exec may instead lose its sandbox (128). Either way the container restarts."""
    for _ in range(30):
        before = started_at(host, worker)
        result = host.run(f"docker exec agentfleet-{worker}-1 python3 -c {shlex.quote(KILL_RUNTIME)}")
        restarting = "restarting" in result.stderr or "not running" in result.stderr
        assert result.rc in (0, 128, 137) or restarting, result.stderr
        if result.rc in (128, 137) or "killing" in result.stdout:
            break
        time.sleep(1)  # restarted a moment ago: its runtime is not up yet
    else:
        raise AssertionError(f"{worker}'s runtime was never found to kill")
    for _ in range(30):
        if started_at(host, worker) != before:
            return
        time.sleep(1)
    raise AssertionError(f"{worker} did not restart after its runtime was killed (exec: {result.rc} {result.stderr})")


READ_RESULTS = ("import glob, json; print(json.dumps([json.load(open(path)) for path in "
                "glob.glob('/srv/agentfleet/results/*/*.json')]))")


def test_crashing_workers_lose_no_task_and_complete_none_twice(host: testinfra.host.Host) -> None:
    started = time.time()
    submit = "; ".join(f"agentctl submit --to {WORKERS[n % len(WORKERS)]} 'fault {n}'" for n in range(TASKS))
    output = sh(host, f"docker exec agentfleet-orchestrator-1 sh -c {json.dumps(submit)}")
    ids = [line.split()[1] for line in output.splitlines()]
    chooser = random.Random(11)
    for _ in range(6):
        time.sleep(chooser.uniform(2, 4))
        crash(host, chooser.choice(WORKERS))
    deadline, results = time.monotonic() + 420, {}
    while time.monotonic() < deadline:
        found = json.loads(sh(host, f"python3 -c {json.dumps(READ_RESULTS)}"))
        results = {result["id"]: result for result in found if result["id"] in ids}
        if len(results) == len(ids):
            break
        time.sleep(2)
    completions: Counter[str] = Counter()
    for worker in WORKERS:
        for line in sh(host, f"docker logs agentfleet-{worker}-1 2>&1").splitlines():
            event = json.loads(line) if line.startswith("{") else {}
            if event.get("event") == "completed" and event.get("task") in ids:
                completions[event["task"]] += 1
    assert len(ids) == TASKS
    assert sorted(results) == sorted(ids), f"lost: {sorted(set(ids) - set(results))}"
    # A task killed on every one of its attempts gives up by design (a result, not a loss).
    failed = [(result["id"], result["reason"]) for result in results.values()
              if result["status"] != "ok" and not result["reason"].startswith("interrupted ")]
    assert not failed, failed
    # A crash between linking the result and logging it leaves a task without its event, never with two.
    assert max(completions.values()) == 1 and sum(completions.values()) >= TASKS - 6, completions
    print(f"6 crashes, {TASKS} tasks in {time.time() - started:.0f} s, each completed once")
