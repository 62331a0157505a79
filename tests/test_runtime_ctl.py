"""agentctl, the monitor and the backends' parsing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from agentfleet import agentctl, schema
from agentfleet.fleet import Fleet
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.monitor import Monitor
from runtime_helpers import make_tree, put_task


def beat(root: Path, name: str, age: float = 0, status: str = "idle", interval: float = 5) -> None:
    document = {"agent": name, "kind": "worker", "status": status, "task": None, "updated": time.time() - age,
                "interval": interval, "completed": 0, "pid": 1}
    assert schema.errors(document, schema.load("heartbeat")) == []
    (root / "heartbeats" / name / "heartbeat.json").write_text(json.dumps(document))


def test_submit_goes_to_the_least_busy_worker_with_a_fresh_heartbeat(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["anga", "fabien", "marie"])
    beat(root, "anga", status="busy")
    beat(root, "fabien", age=60)  # stale: 60 s > 3 x 5 s
    beat(root, "marie")
    assert agentctl.submit(Fleet.from_env(root, {}), "one", None)[0] == "marie"
    assert agentctl.submit(Fleet.from_env(root, {}), "two", None)[0] in ("anga", "marie")
    worker, ident = agentctl.submit(Fleet.from_env(root, {}), "three", "fabien")
    task = json.loads((root / "inbox" / "fabien" / f"{ident}.json").read_text())
    assert worker == "fabien" and task["prompt"] == "three"
    assert schema.errors(task, schema.load("task")) == []


def test_submit_names_an_unknown_worker(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["marie"])
    with pytest.raises(SystemExit, match="--to zoe: no such worker"):
        agentctl.submit(Fleet.from_env(root, {}), "x", "zoe")
    with pytest.raises(SystemExit, match="no worker has a fresh heartbeat"):
        agentctl.submit(Fleet.from_env(root, {}), "x", None)


def test_status_marks_stale_agents(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["anga", "marie"])
    beat(root, "anga", age=60)
    beat(root, "marie")
    table = agentctl.status_table(Fleet.from_env(root, {})).splitlines()
    assert table[0].split() == ["AGENT", "KIND", "STATUS", "TASK", "DONE", "PENDING", "AGE"]
    assert table[1].split()[:3] == ["anga", "worker", "STALE"] and table[2].split()[:3] == ["marie", "worker", "idle"]


def test_show_and_wait_print_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path, ["marie"])
    document = {"id": "t1", "worker": "marie", "status": "failed", "output": "", "reason": "exit status 2",
                "attempt": 1, "started": 1.0, "finished": 2.0}
    (root / "results" / "marie" / "t1.json").write_text(json.dumps(document))
    put_task(root, "marie", "t1")
    assert agentctl.main(["--root", str(root), "wait", "t1", "--timeout", "1"]) == 1
    assert json.loads(capsys.readouterr().out)["reason"] == "exit status 2"
    with pytest.raises(SystemExit, match="no result for t2 within 0.2 s"):
        agentctl.main(["--root", str(root), "wait", "t2", "--timeout", "0.2"])


def test_monitor_archives_after_retention_and_reports_stale_agents(tmp_path: Path) -> None:
    root = make_tree(tmp_path, ["anga", "marie"])
    (root / "heartbeats" / "monitor").mkdir(exist_ok=True)
    beat(root, "anga", age=60)
    beat(root, "marie")
    old = {"id": "old", "worker": "marie", "status": "ok", "output": "", "reason": "", "attempt": 1,
           "started": 0.0, "finished": time.time() - 7200}
    new = {**old, "id": "new", "finished": time.time()}
    for document in (old, new):
        (root / "results" / "marie" / f"{document['id']}.json").write_text(json.dumps(document))
    backend = Backend(type="command", argv=["true"])
    monitor = Monitor(Config(name="monitor", kind="monitor", root=root, backend=backend), retention=3600)
    monitor.check(time.time())
    assert json.loads((root / "archive" / "marie" / "old.json").read_text())["id"] == "old"
    assert not (root / "archive" / "marie" / "new.json").exists()
    report = json.loads((root / "heartbeats" / "monitor" / "heartbeat.json").read_text())
    assert report["stale"] == ["anga"] and schema.errors(report, schema.load("heartbeat")) == []


def test_claude_backend_command_and_outcomes() -> None:
    backend = Backend(type="claude", model="claude-test", max_turns=3)
    argv = backend.command({"id": "t1", "prompt": "fix it"}, "/work")
    assert argv[:6] == ["claude", "-p", "fix it", "--output-format", "stream-json", "--verbose"]
    assert argv[-2:] == ["--model", "claude-test"]
    ok = json.dumps({"type": "result", "subtype": "success", "is_error": False, "result": "fixed"})
    assert backend.outcome(0, ok, "") == ("ok", "fixed", "")
    # The stream: events, then the result (an assistant text that looks like a result does not count).
    stream = "\n".join([json.dumps({"type": "system", "subtype": "init"}),
                        json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "done"}]}}),
                        ok, ""])
    assert backend.outcome(0, stream, "") == ("ok", "fixed", "")
    assert backend.outcome(0, stream.replace(ok, ""), "")[0] == "failed"
    error = json.dumps({"type": "result", "subtype": "error_max_turns", "is_error": True, "result": ""})
    assert backend.outcome(1, error, "")[2] == "claude reported error_max_turns"
    assert backend.outcome(1, "Invalid API key", "")[0] == "failed"


def test_command_placeholders_are_filled_in_one_pass() -> None:
    backend = Backend(type="command", argv=["run", "{task_id}", "--", "{prompt}"])
    assert backend.command({"id": "t1", "prompt": "say {task_id}"}, "/w") == ["run", "t1", "--", "say {task_id}"]


def test_backend_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="backend.type"):
        Backend.from_json('{"type": "gpt"}')
    with pytest.raises(ValueError, match="backend.argv"):
        Backend.from_json('{"type": "command"}')


def test_ollama_backend_calls_the_generate_api(tmp_path: Path) -> None:
    """Against a stand-in Ollama API on loopback that records what it was asked."""
    import http.server
    import subprocess
    import sys
    import threading

    asked: list[dict[str, object]] = []

    class StandIn(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            asked.append({"path": self.path, **json.loads(self.rfile.read(int(self.headers["Content-Length"])))})
            body = json.dumps({"response": "stand-in answer", "done": True}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = Backend(type="ollama", model="qwen-test", ollama_url=f"http://127.0.0.1:{server.server_port}")
        argv = backend.command({"id": "t1", "prompt": "hi"}, str(tmp_path))
        env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1] / "runtime")}
        done = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, text=True, check=False)
    finally:
        server.shutdown()
    assert backend.outcome(done.returncode, done.stdout, done.stderr) == ("ok", "stand-in answer", "")
    assert asked == [{"path": "/api/generate", "model": "qwen-test", "prompt": "hi", "stream": False}]


def test_ollama_client_speaks_over_a_unix_socket(tmp_path: Path) -> None:
    """The route for opted-in agents is a mounted socket; the same client talks HTTP over it."""
    import socketserver
    import threading

    from agentfleet.ollama import generate

    class StandIn(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            # Read the whole request before answering: closing while the client still
            # sends its body would break its pipe (a race, not the behaviour under test).
            head = self.rfile.readline()
            length = 0
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            assert head.startswith(b"POST ") and json.loads(self.rfile.read(length))["model"] == "m"
            body = json.dumps({"response": "over the socket"}).encode()
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))

    path = str(tmp_path / "ollama.sock")
    server = socketserver.UnixStreamServer(path, StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert generate(f"unix://{path}", "m", "hi") == "over the socket"
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="ollama_url"):
        generate("ftp://x", "m", "hi")
