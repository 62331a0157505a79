#!/usr/bin/env python3
"""Benchmark: cross-host dispatch on the fleet scenario's three hosts (NATS cluster, a relay each).

    bench/fleet.py [samples] [burst] [--keep]   (default 60 300; inside the venv)

Needs the hosts of `molecule converge -s fleet`; makes them when absent (and destroys them after,
unless --keep). Workers on the command backend run on beta and gamma, none on alpha, which sends.
1. latency, one task at a time from alpha (by role, alternating backend, devops and frontend, and
   by name): claim on the other host (the worker's result.started) minus the submission on alpha
   (task.submitted, stamped by agentctl); both hosts share one clock (containers of one machine).
2. throughput: a burst of role tasks written by one agentctl process on alpha; tasks per second
   from the first submission to the last result back on alpha.
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "molecule" / "fleet" / "tests"))
from test_relay_service import LIB, ROOT, RUNNING, on, start_worker  # noqa: E402  # pylint: disable=wrong-import-position

ALPHA = "agentfleet-fleet-alpha"
ROLES = ("backend", "devops", "frontend")


def as_dispatcher(script: str) -> str:
    """Python on alpha as its dispatcher, with the runtime's agentctl importable."""
    command = ["setpriv", "--reuid", "agent-orchestrator", "--regid", "agent-orchestrator", "--init-groups",
               "env", f"PYTHONPATH={LIB}", f"AGENTFLEET_ROOT={ROOT}", "python3", "-I", "-c",
               f"import sys; sys.path.insert(0, {LIB!r}); from agentfleet.agentctl import main\n{script}"]
    return str(on(ALPHA).check_output(shlex.join(command)))


def fleet_results(prefix: str) -> list[dict[str, float]]:
    """(submitted, started, finished) of every result back on alpha whose prompt starts with prefix."""
    script = f"""
import json, pathlib
for path in pathlib.Path({ROOT!r}, "fleet").glob("[!_]*.json"):  # not _workers.json
    if path.name.endswith((".sent.json", ".proposal.json")):  # a task as sent, a proposal's manifest
        continue
    result = json.loads(path.read_text())["result"]
    if result.get("task", {{}}).get("prompt", "").startswith({prefix!r}):
        print(json.dumps({{"submitted": result["task"]["submitted"], "started": result["started"],
                          "finished": result["finished"]}}))
"""
    output = on(ALPHA).check_output(shlex.join(["python3", "-I", "-c", script]))
    return [json.loads(line) for line in output.splitlines() if line]


def latency(samples: int, run: str) -> list[float]:
    targets = [["--role", role] for role in ROLES] + [["--to", "lea"]]
    for index in range(samples):
        target = targets[index % len(targets)]
        as_dispatcher(f"sys.exit(main(['submit', *{target!r}, '--wait', '60', '{run} latency {index}']))")
    found = fleet_results(f"{run} latency ")
    assert len(found) == samples, f"{len(found)} of {samples} results came back"
    return sorted(entry["started"] - entry["submitted"] for entry in found)


def throughput(burst: int, run: str) -> tuple[float, float]:
    as_dispatcher(f"for i in range({burst}): main(['submit', '--role', {ROLES!r}[i % 3], f'{run} burst {{i}}'])")
    deadline = time.monotonic() + 600
    while len(found := fleet_results(f"{run} burst ")) < burst and time.monotonic() < deadline:
        time.sleep(1)
    assert len(found) == burst, f"{len(found)} of {burst} results came back"
    seconds = max(entry["finished"] for entry in found) - min(entry["submitted"] for entry in found)
    return burst / seconds, seconds


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(share * len(values)))]


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    numbers = [int(arg) for arg in argv if arg.isdigit()] + [60, 300][len([a for a in argv if a.isdigit()]):]
    made = subprocess.run(["docker", "inspect", ALPHA], capture_output=True, check=False).returncode != 0
    if made:
        subprocess.run(["molecule", "converge", "-s", "fleet"], cwd=REPO, check=True)
    try:
        for host, workers in RUNNING.items():
            for worker in workers:
                on(host).run(f"systemctl stop agentfleet-test-bench-{worker}")
                start_worker(host, worker, f"bench-{worker}", "echo done {task_id}")
        time.sleep(3)  # the workers' first heartbeats
        run = f"bench-{time.time():.0f}"  # this run's tasks only: alpha keeps every result it got back
        values = latency(numbers[0], run)
        rate, seconds = throughput(numbers[1], run)
    finally:
        for host, workers in RUNNING.items():
            for worker in workers:
                on(host).run(f"systemctl stop agentfleet-test-bench-{worker}")
        if made and not keep:
            subprocess.run(["molecule", "destroy", "-s", "fleet"], cwd=REPO, check=False)
    print(f"dispatch latency, submit on alpha -> claim on beta/gamma, {len(values)} tasks one at a time: "
          f"p50 {statistics.median(values) * 1000:.0f} ms, p99 {percentile(values, 0.99) * 1000:.0f} ms, "
          f"max {values[-1] * 1000:.0f} ms")
    print(f"throughput, {numbers[1]} role tasks in one burst over 4 workers on 2 hosts: {rate:.1f} tasks/s "
          f"({seconds:.1f} s from the first submission to the last result)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
