"""Live transcripts and cancel: the worker writes logs/<agent>/<task>.jsonl as the backend runs,
agentctl logs renders it (hostile: escaped, cut, never a link), and agentctl cancel stops a task,
its tools included, or keeps it from starting; a cancelled task is never run again."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from agentfleet.fleet import Fleet
from agentfleet.operate import cancel, show_logs
from agentfleet.transcript import MAX_FIELD, render
from agentfleet.untrusted import Refused
from runtime_helpers import make_tree, put_task, result, start_worker
from test_runtime_worker import wait_for

UID = os.getuid()


def tree(tmp_path: Path) -> Path:
    root = make_tree(tmp_path, ["marie"])
    (root / "logs" / "marie").mkdir(parents=True)
    return root


def fleet(root: Path) -> Fleet:
    return Fleet(root, {"marie": UID})


def logs(root: Path, target: str, follow: bool = False) -> str:
    out = io.StringIO()
    show_logs(fleet(root), target, out, follow, timeout=30)
    return out.getvalue()


def test_the_transcript_shows_output_before_the_task_ends(tmp_path: Path) -> None:
    root = tree(tmp_path)
    put_task(root, "marie", "t1")
    worker = start_worker(root, "marie", ["sh", "-c", "echo first-line; sleep 3; echo last-line"])
    try:
        transcript = root / "logs" / "marie" / "t1.jsonl"
        wait_for(lambda: transcript.exists() and "first-line" in transcript.read_text())
        assert not (root / "results" / "marie" / "t1.json").exists()
        assert "first-line" in logs(root, "marie") and "last-line" not in logs(root, "t1")
        followed = logs(root, "t1", follow=True)  # returns once the result exists, with every line
        assert followed.splitlines()[1:] == ["first-line", "last-line"]
        assert result(root, "marie", "t1")["status"] == "ok"
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_cancel_stops_a_running_task_and_the_tools_it_started(tmp_path: Path) -> None:
    root = tree(tmp_path)
    put_task(root, "marie", "t1")
    pidfile = tmp_path / "escaped.pid"
    # The backend starts a tool in a session of its own (as a CLI may); cancel must stop it too.
    argv = ["sh", "-c", f"setsid sh -c 'echo $$ > {pidfile}; exec sleep 300' & echo started; sleep 300"]
    worker = start_worker(root, "marie", argv)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        asked = time.monotonic()
        assert cancel(fleet(root), "t1") == "marie t1 cancel requested"
        wait_for(lambda: (root / "results" / "marie" / "t1.json").exists(), timeout=10)
        assert time.monotonic() - asked < 5
        done = result(root, "marie", "t1")
        assert done["status"] == "cancelled" and done["reason"].startswith("cancelled by the dispatcher after")
        escaped = int(pidfile.read_text())
        wait_for(lambda: not Path(f"/proc/{escaped}").exists() or "Z" in Path(f"/proc/{escaped}/stat").read_text().split()[2])
        # Never run again: the worker finds nothing to do, and cancel says it is over.
        assert "already finished on marie: cancelled" in cancel(fleet(root), "t1")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert [line for line in (root / "results" / "marie").iterdir() if line.name.startswith("t1")] == \
        [root / "results" / "marie" / "t1.json"]


def test_a_task_cancelled_before_it_starts_never_runs(tmp_path: Path) -> None:
    root = tree(tmp_path)
    put_task(root, "marie", "t1")
    cancel(fleet(root), "t1")
    ran = tmp_path / "ran"
    worker = start_worker(root, "marie", ["sh", "-c", f"touch {ran}"])
    try:
        wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result(root, "marie", "t1")["reason"] == "cancelled by the dispatcher before it ran" and not ran.exists()
    # The marker is not a task: nothing was rejected for it.
    assert sorted(path.name for path in (root / "results" / "marie").iterdir()) == ["t1.json"]


def test_a_link_in_the_inbox_is_not_the_dispatchers_word(tmp_path: Path) -> None:
    root = tree(tmp_path)
    put_task(root, "marie", "t1")
    (root / "inbox" / "marie" / "t1.cancel").symlink_to(root / "inbox" / "marie" / "t1.json")
    worker = start_worker(root, "marie", ["sh", "-c", "echo ran"])
    try:
        wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert result(root, "marie", "t1")["status"] == "ok"


@pytest.mark.parametrize(("line", "shown"), [
    (json.dumps({"type": "output", "text": "\x1b[2Jcleared\rhidden"}), "\\x1b[2Jcleared\\rhidden"),
    (json.dumps({"type": "assistant", "message": {"content": [
        {"type": "tool_use", "name": "Bash", "input": {"command": "rm -rf /tmp/x\x07"}}]}}), "tool Bash: rm -rf /tmp/x\\x07"),
    (json.dumps({"type": "user", "message": {"content": [
        {"type": "tool_result", "content": [{"type": "text", "text": "ok"}], "is_error": True}]}}), "tool error: ok"),
    (json.dumps({"type": "result", "subtype": "success", "num_turns": 2}), "[finished] success after 2 turns"),
    (json.dumps({"type": "output", "text": "<script>alert(1)</script>"}), "<script>alert(1)</script>"),
    ("not json \x1b]0;title\x07", "[not a JSON line: malformed JSON"),
    ("[" * 100 + "]" * 100, "[not a JSON line: nested deeper than 32 levels]"),
])
def test_hostile_lines_are_rendered_as_inert_text(line: str, shown: str) -> None:
    rendered = render(line.encode())
    assert rendered and rendered[0].startswith(shown) and all(text.isprintable() for text in rendered)


def test_a_long_field_is_cut_and_says_how_much_is_left() -> None:
    rendered = render(json.dumps({"type": "output", "text": "x" * (MAX_FIELD + 50)}).encode())
    assert rendered == ["x" * MAX_FIELD + " [50 more characters]"]


def test_a_transcript_that_is_a_link_or_someone_elses_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path)
    put_task(root, "marie", "t1")
    secret = tmp_path / "secret"
    secret.write_text(json.dumps({"type": "output", "text": "root's secret"}))
    (root / "logs" / "marie" / "t1.jsonl").symlink_to(secret)
    with pytest.raises(Refused, match="not a regular file"):
        logs(root, "t1")
    (root / "logs" / "marie" / "t1.jsonl").unlink()
    (root / "logs" / "marie" / "t1.jsonl").write_text(json.dumps({"type": "output", "text": "hi"}) + "\n")
    with pytest.raises(Refused, match="owned by uid"):
        show_logs(Fleet(root, {"marie": UID + 1}), "t1", io.StringIO())


def test_a_long_claude_session_still_ends_in_its_result(tmp_path: Path) -> None:
    """More than the output kept (1 MB) of stream before the result event: the result is still read."""
    root = tree(tmp_path)
    put_task(root, "marie", "t1")
    event = json.dumps({"type": "user", "message": {"content": [{"type": "tool_result", "content": "y" * 60_000}]}})
    final = json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "all done"})
    script = tmp_path / "claude"
    script.write_text(f"#!/bin/sh\nfor i in $(seq 40); do echo '{event}'; done\necho '{final}'\n")
    script.chmod(0o755)
    worker = start_worker(root, "marie", [], AGENTFLEET_BACKEND=json.dumps({"type": "claude", "timeout": 60}),
                          PATH=f"{tmp_path}:{os.environ['PATH']}")
    try:
        wait_for(lambda: (root / "results" / "marie" / "t1.json").exists())
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert (result(root, "marie", "t1")["status"], result(root, "marie", "t1")["output"]) == ("ok", "all done")
    assert (root / "logs" / "marie" / "t1.jsonl").stat().st_size > 2_000_000
