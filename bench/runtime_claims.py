#!/usr/bin/env python3
"""Benchmark: claim latency and throughput of the agent runtime with the command backend.

    bench/runtime_claims.py [workers ...]      (default 3 30)

For each worker count, on a scratch tree on this host: worker processes with the command
backend (`true`); then (1) paced: 10 tasks per worker submitted 20 ms apart, round robin, and
the latency from submit to the worker's "claimed" event, p50/p99; (2) burst: 20 tasks per
worker submitted at once, and tasks per second until the last result.
"""

from __future__ import annotations

import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "tests")]
from agentfleet import agentctl  # noqa: E402
from runtime_helpers import make_tree, start_worker  # noqa: E402
from table import print_table  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def run(count: int) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        root = make_tree(Path(scratch), [f"w{n:02d}" for n in range(count)])
        names = sorted(path.name for path in (root / "inbox").iterdir())
        log = Path(scratch) / "events.log"
        workers = [start_worker(root, name, ["true"], log) for name in names]
        while sum(1 for _ in root.glob("heartbeats/*/heartbeat.json")) < count:
            time.sleep(0.05)
        time.sleep(0.5)
        submitted = {}
        for n in range(10 * count):
            worker = names[n % count]
            submitted[agentctl.submit(root, "bench", worker)[1]] = time.time()
            time.sleep(0.02)
        burst = 20 * count
        started = time.time()
        for n in range(burst):
            agentctl.submit(root, "burst", names[n % count])
        total = 10 * count + burst
        while sum(1 for _ in root.glob("results/*/*.json")) < total:
            time.sleep(0.01)
        elapsed = time.time() - started
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            process.wait(timeout=30)
        claimed = {}
        for line in log.read_text().splitlines():
            event = json.loads(line)
            if event["event"] == "claimed":
                claimed[event["task"]] = event["time"]
        latencies = [(claimed[ident] - at) * 1000 for ident, at in submitted.items()]
    return [str(count), str(len(latencies)), f"{statistics.median(latencies):.1f} ms",
            f"{percentile(latencies, 0.99):.1f} ms", f"{burst / elapsed:.0f} tasks/s"]


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [3, 30]
    header = ["workers", "paced tasks", "claim p50", "claim p99", "burst throughput"]
    rows = [run(count) for count in counts]
    print_table(header, rows)


if __name__ == "__main__":
    main()
