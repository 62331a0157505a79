"""Bad task input becomes a rejected result with its reason; it is never executed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from agentfleet import schema
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.tasks import read_task, task_id
from agentfleet.worker import Worker
from runtime_helpers import make_tree, put_task, result


def worker(root: Path, marker: Path, **settings: object) -> Worker:
    backend = Backend(type="command", argv=["sh", "-c", f"echo ran {{task_id}} >> {marker}; echo {{prompt}}"])
    return Worker(Config(name="marie", kind="worker", root=root, backend=backend, **settings))  # type: ignore[arg-type]


def write(root: Path, name: str, content: bytes | str) -> Path:
    path = root / "inbox" / "marie" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


BAD = [
    ("malformed JSON", "t1.json", "{not json", "malformed JSON"),
    ("not an object", "t2.json", "[1, 2]", "document: expected object"),
    ("missing prompt", "t3.json", '{"id": "t3"}', "prompt: required"),
    ("empty prompt", "t4.json", '{"id": "t4", "prompt": ""}', "prompt: shorter than 1"),
    ("unknown field", "t5.json", '{"id": "t5", "prompt": "x", "shell": "rm -rf /"}', "shell: not allowed"),
    ("id differs from the file name", "t6.json", '{"id": "other", "prompt": "x"}', "does not match the file name"),
    ("unknown backend", "t7.json", '{"id": "t7", "prompt": "x", "backend": "gpt"}', "backend: 'gpt' is not one of"),
    ("another worker's backend", "t8.json", '{"id": "t8", "prompt": "x", "backend": "claude"}',
     "is not this worker's backend 'command'"),
    ("id with a path separator", "t9.json", '{"id": "../t9", "prompt": "x"}', "id: '../t9' does not match"),
    ("file name not <id>.json", "t 10.txt", '{"id": "t10", "prompt": "x"}', "is not <id>.json"),
    ("prompt of the wrong type", "t11.json", '{"id": "t11", "prompt": 42}', "prompt: expected string"),
    ("invalid UTF-8", "t12.json", b'{"id": "t12", "prompt": "\xff"}', "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "reason"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_task_is_rejected_with_its_reason_and_never_run(tmp_path: Path, name: str, content: str, reason: str) -> None:
    root, marker = make_tree(tmp_path, ["marie"]), tmp_path / "ran"
    path = write(root, name, content)
    assert worker(root, marker).run_once() == 1
    answer = result(root, "marie", task_id(path))
    assert answer["status"] == "rejected" and reason in answer["reason"], answer["reason"]
    assert schema.errors(answer, schema.load("result")) == []
    assert not marker.exists(), "a rejected task must never run"


def test_oversized_task_is_rejected(tmp_path: Path) -> None:
    root, marker = make_tree(tmp_path, ["marie"]), tmp_path / "ran"
    put_task(root, "marie", "big", "x" * 5000)
    worker(root, marker, max_task_bytes=1000).run_once()
    assert "over the limit of 1000" in result(root, "marie", "big")["reason"]
    assert not marker.exists()


def test_symlinked_task_is_refused(tmp_path: Path) -> None:
    root, marker = make_tree(tmp_path, ["marie"]), tmp_path / "ran"
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"id": "link", "prompt": "leak"}))
    (root / "inbox" / "marie" / "link.json").symlink_to(secret)
    worker(root, marker).run_once()
    assert result(root, "marie", "link")["reason"] == "the task file: a symlink, not a regular file"


def test_a_fifo_does_not_block_the_worker(tmp_path: Path) -> None:
    root, marker = make_tree(tmp_path, ["marie"]), tmp_path / "ran"
    os.mkfifo(root / "inbox" / "marie" / "pipe.json")
    worker(root, marker).run_once()
    assert result(root, "marie", "pipe")["reason"] == "the task file: a FIFO, not a regular file"


def test_the_worker_keeps_going_after_bad_input(tmp_path: Path) -> None:
    root, marker = make_tree(tmp_path, ["marie"]), tmp_path / "ran"
    write(root, "a-bad.json", "{")
    put_task(root, "marie", "b-good", "fine")
    assert worker(root, marker).run_once() == 2
    assert result(root, "marie", "b-good")["status"] == "ok"
    assert result(root, "marie", "b-good")["output"] == "fine\n"
    assert marker.read_text() == "ran b-good\n"


def test_dot_files_are_writes_in_progress(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    write(root, ".t1.json.tmp", "{")
    assert worker(root, tmp_path / "ran").run_once() == 0


def test_read_task_accepts_a_valid_task(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    path = put_task(root, "marie", "ok-1", "build it", backend="command")
    assert read_task(path, 1000, "command") == ({"id": "ok-1", "prompt": "build it", "backend": "command"}, "")


def test_results_are_readable_by_whoever_may_enter_the_directory(tmp_path: Path) -> None:
    root, marker = make_tree(tmp_path, ["marie"]), tmp_path / "ran"
    put_task(root, "marie", "t1")
    worker(root, marker).run_once()
    assert (root / "results" / "marie" / "t1.json").stat().st_mode & 0o777 == 0o644
