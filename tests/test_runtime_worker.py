"""The worker process: claims, stop signal, kill -9, heartbeats and the healthcheck."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from agentfleet.claims import Claim
from agentfleet.watch import Watcher
from runtime_helpers import environment, make_tree, put_task, result, start_worker

SLOW = ["sh", "-c", "sleep 2; echo done {task_id}"]


def wait_for(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def events(process: subprocess.Popen[str]) -> list[dict[str, object]]:
    output, _ = process.communicate(timeout=30)
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_a_claim_held_by_a_live_worker_is_skipped(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    results = root / "results" / "marie"
    held = Claim.take(results, "t1")
    assert held is not None and held.attempt == 1
    assert Claim.take(results, "t1") is None
    held.hand_back()
    again = Claim.take(results, "t1")
    assert again is not None and again.attempt == 2
    again.finish()


def test_stop_signal_lets_the_current_task_finish_within_the_grace(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    worker = start_worker(root, "marie", SLOW, AGENTFLEET_STOP_GRACE="10")
    put_task(root, "marie", "t1")
    wait_for(lambda: (root / "results" / "marie" / "t1.claim").exists())
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert result(root, "marie", "t1")["output"] == "done t1\n"
    beat = json.loads((root / "heartbeats" / "marie" / "heartbeat.json").read_text())
    assert beat["status"] == "stopping"


def test_stop_signal_hands_a_long_task_back_and_the_next_start_completes_it(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    worker = start_worker(root, "marie", SLOW, AGENTFLEET_STOP_GRACE="0.3")
    put_task(root, "marie", "t1")
    wait_for(lambda: (root / "results" / "marie" / "t1.claim").exists())
    worker.send_signal(signal.SIGTERM)
    assert any(event["event"] == "handed-back" for event in events(worker))
    assert not (root / "results" / "marie" / "t1.json").exists()
    again = start_worker(root, "marie", SLOW)
    wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    again.send_signal(signal.SIGTERM)
    again.wait(timeout=15)
    assert result(root, "marie", "t1")["attempt"] == 2


def test_a_worker_killed_mid_task_resumes_it_once(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    worker = start_worker(root, "marie", SLOW)
    put_task(root, "marie", "t1")
    wait_for(lambda: (root / "results" / "marie" / "t1.claim").exists())
    worker.kill()
    worker.wait()
    again = start_worker(root, "marie", SLOW)
    wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    again.send_signal(signal.SIGTERM)
    completed = [event for event in events(again) if event["event"] == "completed"]
    assert [event["task"] for event in completed] == ["t1"]
    assert result(root, "marie", "t1")["attempt"] == 2
    assert not (root / "results" / "marie" / "t1.claim").exists()


def test_a_task_interrupted_too_often_fails_instead_of_looping(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    (root / "results" / "marie" / "t1.claim").write_text(json.dumps({"attempt": 3}))
    put_task(root, "marie", "t1")
    worker = start_worker(root, "marie", SLOW, AGENTFLEET_MAX_ATTEMPTS="3")
    wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)
    assert result(root, "marie", "t1")["reason"] == "interrupted 3 times; not run again"


def test_healthcheck_fails_on_a_stale_heartbeat_not_only_a_missing_one(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    health = [sys.executable, "-m", "agentfleet", "health"]
    env = environment(root, "marie", ["true"])
    assert subprocess.run(health, env=env, check=False, capture_output=True).returncode == 1
    worker = start_worker(root, "marie", ["true"])
    beat = root / "heartbeats" / "marie" / "heartbeat.json"
    wait_for(beat.exists)
    time.sleep(1.2)  # the beat is rewritten every 0.5 s
    assert subprocess.run(health, env=env, check=False, capture_output=True).returncode == 0
    worker.kill()
    worker.wait()
    time.sleep(1.6)  # more than 3 intervals without a write
    stale = subprocess.run(health, env=env, check=False, capture_output=True, text=True)
    assert stale.returncode == 1 and "stale" in stale.stderr


def test_inotify_wakes_the_worker(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path)
    assert watcher.mode == "inotify"
    started = time.monotonic()
    (tmp_path / "t1.json").write_text("{}")
    watcher.wait(5)
    assert time.monotonic() - started < 4, "woken by the event, not the timeout"
    watcher.close()


def test_polling_fallback_still_processes_tasks(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    worker = start_worker(root, "marie", ["echo", "{prompt}"], AGENTFLEET_POLL_ONLY="1")
    put_task(root, "marie", "t1", "polled")
    wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    worker.send_signal(signal.SIGTERM)
    assert any(event.get("wake") == "polling" for event in events(worker))
    assert result(root, "marie", "t1")["output"] == "polled\n"


def test_a_claim_left_beside_its_result_is_swept_at_start(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    results = root / "results" / "marie"
    (results / "t1.claim").write_text(json.dumps({"attempt": 1}))
    (results / "t1.json").write_text("{}")
    worker = start_worker(root, "marie", ["true"])
    wait_for(lambda: not (results / "t1.claim").exists())
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=15)
    assert (results / "t1.json").read_text() == "{}"
