"""kill -9 workers at random while 100 tasks run: no task lost, none completed twice."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import Counter
from pathlib import Path

from agentfleet import agentctl
from agentfleet.fleet import Fleet
from runtime_helpers import make_tree, start_worker

WORKERS = ["w1", "w2", "w3"]
TASKS = 100


def test_random_kills_lose_nothing_and_complete_nothing_twice(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    runs = tmp_path / "runs"
    runs.mkdir()
    argv = ["sh", "-c", f"echo x >> {runs}/{{task_id}}; sleep 0.05; echo {{task_id}}"]
    log = tmp_path / "events.log"
    # Losing and doubling are the point here; giving up after repeated kills has its own test.
    settings = {"AGENTFLEET_MAX_ATTEMPTS": "1000"}
    live = {name: start_worker(root, name, argv, log, **settings) for name in WORKERS}
    ids = [agentctl.submit(Fleet.from_env(root, {}), f"task {n}", WORKERS[n % 3])[1] for n in range(TASKS)]
    chooser, kills, deadline = random.Random(7), 0, time.monotonic() + 120
    while sum(1 for _ in root.glob("results/*/*.json")) < TASKS and time.monotonic() < deadline:
        time.sleep(chooser.uniform(0.05, 0.3))
        victim = chooser.choice(WORKERS)
        live[victim].send_signal(signal.SIGKILL)
        live[victim].wait()
        live[victim] = start_worker(root, victim, argv, log, **settings)
        kills += 1
    for process in live.values():
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    completions = Counter(event["task"] for event in events if event["event"] == "completed")
    results = {path.stem: json.loads(path.read_text()) for path in root.glob("results/*/*.json")}
    assert kills >= 5
    assert sorted(results) == sorted(ids), "lost tasks"
    assert all(result["status"] == "ok" for result in results.values())
    # A kill between linking a result and logging it can drop an event, never add a second one.
    assert max(completions.values()) == 1, "a task completed twice"
    assert sum(completions.values()) >= TASKS - kills
    assert list(root.glob("results/*/*.claim")) == []
    reruns = sum(1 for path in runs.iterdir() if len(path.read_text().splitlines()) > 1)
    print(f"{kills} kills, {reruns} tasks re-run after a kill, {TASKS} results, each completed once")
