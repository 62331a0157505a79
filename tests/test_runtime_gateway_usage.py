"""The monitor totals the gateway's requests per agent from its log, through a (fake) Docker API."""

from __future__ import annotations

import json
import struct
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from agentfleet import agentctl
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.gateway_usage import demultiplex, parse_stamp
from agentfleet.monitor import Monitor
from runtime_helpers import make_tree


class FakeDockerAPI(ThreadingHTTPServer):
    """Serves a gateway and an egress container whose stdout log lines are (timestamp, text); records paths."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.lines: list[tuple[str, str]] = []
        self.egress_lines: list[tuple[str, str]] = []
        self.paths: list[str] = []
        self.refuse = False


class FakeHandler(BaseHTTPRequestHandler):
    server: FakeDockerAPI

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.server.paths.append(url.path)
        if self.server.refuse:
            self.answer(403, b"agentfleet dockerproxy: only read endpoints are allowed")
        elif url.path == "/containers/json":
            labels = json.loads(query["filters"][0])["label"]
            service = next(label.rpartition("=")[2] for label in labels if label.startswith("com.docker.compose.service="))
            self.answer(200, json.dumps([{"Id": {"gateway": "gw1", "egress": "eg1"}[service]}]).encode())
        elif url.path in ("/containers/gw1/logs", "/containers/eg1/logs"):
            since = parse_stamp_from_query(query["since"][0])
            lines = self.server.lines if url.path.startswith("/containers/gw1") else self.server.egress_lines
            frames = b"".join(frame(f"{stamp} {text}\n") for stamp, text in lines if parse_stamp(stamp) >= since)
            self.answer(200, frames)
        else:
            self.answer(404, b"{}")

    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def parse_stamp_from_query(text: str) -> tuple[int, int]:
    seconds, _, nanos = text.partition(".")
    return int(seconds), int(nanos or 0)


def frame(text: str, stream: int = 1) -> bytes:
    payload = text.encode()
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def access(agent: str, status: int, sent: int = 100, rule: str = "", tokens: int = 0) -> str:
    return json.dumps({"time": "2026-11-22T06:30:00+00:00", "agent": agent, "method": "POST", "path": "/v1/messages",
                       "status": status, "rule": rule, "tokens": tokens, "sent": sent, "received": 50})


@pytest.fixture(name="api")
def fixture_api() -> Iterator[FakeDockerAPI]:
    server = FakeDockerAPI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def monitor(root: Path, api: FakeDockerAPI) -> Monitor:
    (root / "logs" / "monitor").mkdir(parents=True)
    config = Config(name="monitor", kind="monitor", root=root, backend=Backend.from_json('{"type": "command", "argv": ["true"]}'),
                    docker_api=f"http://127.0.0.1:{api.server_address[1]}")
    return Monitor(config, retention=3600)


def test_frames_and_timestamps_are_parsed_exactly() -> None:
    assert demultiplex(frame("a\nb\n") + frame("c\n", stream=2)) == ["a", "b", "c"]
    assert parse_stamp("2026-11-22T06:30:00.000000042Z") == (1795329000, 42)
    assert parse_stamp("2026-11-22T06:30:00.5Z") == (1795329000, 500_000_000)


def test_requests_are_totalled_per_agent_and_never_twice(tmp_path: Path, api: FakeDockerAPI,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_MONITOR", "monitor")
    root = make_tree(tmp_path, ["marie"])
    api.lines = [("2026-11-22T06:30:00.000000001Z", access("marie", 200, tokens=13)),
                 ("2026-11-22T06:30:00.000000002Z", "2026/11/22 06:30:00 [notice] 1#1: a notice, not a request"),
                 ("2026-11-22T06:30:00.000000003Z", access("marie", 429, sent=10, rule="rate")),
                 ("2026-11-22T06:30:01.000000000Z", access("", 403, sent=70))]
    watcher = monitor(root, api)
    watcher.check(0)
    watcher.check(0)  # the same lines again: the proxy's since is inclusive, the monitor is not
    report = json.loads((root / "logs" / "monitor" / "gateway-usage.json").read_text())
    assert report["agents"]["marie"] == {"requests": 2, "sent": 110, "received": 100, "status": {"200": 1, "429": 1},
                                         "tokens": 13, "refused": {"rate": 1}, "last": "2026-11-22T06:30:00+00:00"}
    assert report["agents"]["(not an agent)"]["status"] == {"403": 1}
    api.lines.append(("2026-11-22T06:30:02.000000000Z", access("marie", 200)))
    monitor_again = Monitor(watcher.config, retention=3600)  # a restarted monitor resumes from its report
    monitor_again.check(0)
    assert json.loads(monitor_again.usage.report.read_text())["agents"]["marie"]["requests"] == 3
    assert agentctl.main(["--root", str(root), "usage"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:5] == ["AGENT", "REQUESTS", "TOKENS", "STATUS", "REFUSED"]
    assert ["marie", "3", "13", "200:2,429:1", "rate:1"] in [line.split()[:5] for line in table]


def test_a_spent_budget_is_announced_once_a_day(tmp_path: Path, api: FakeDockerAPI,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path, ["marie"])
    api.lines = [(f"2026-11-22T06:30:0{i}.000000000Z", access("marie", 429, rule="budget-tokens")) for i in range(3)]
    watcher = monitor(root, api)
    watcher.check(0)
    announced = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "gateway-budget-spent" in line]
    assert [(e["of"], e["rule"], e["day"]) for e in announced] == [("marie", "budget-tokens", "2026-11-22")]
    api.lines.append(("2026-11-22T06:30:09.000000000Z", access("marie", 429, rule="budget-tokens")))
    watcher.check(0)
    assert "gateway-budget-spent" not in capsys.readouterr().out


def test_a_refusing_proxy_is_reported_and_the_monitor_keeps_going(tmp_path: Path, api: FakeDockerAPI,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = make_tree(tmp_path, ["marie"])
    api.refuse = True
    watcher = monitor(root, api)
    watcher.check(0)
    assert "gateway-usage-error" in capsys.readouterr().out and watcher.usage_error.startswith("docker API")
    assert (root / "heartbeats" / "monitor" / "heartbeat.json").exists()
    api.refuse = False
    watcher.check(0)
    assert "gateway-usage-ok" in capsys.readouterr().out


def test_usage_without_a_report_says_so(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no gateway usage report yet"):
        agentctl.main(["--root", str(make_tree(tmp_path, ["marie"])), "usage"])


def squid(agent: str, status: int, rule: str = "-") -> str:
    """A line in the egress proxy's logformat (squid.conf.j2)."""
    return json.dumps({"agent": agent, "status": status, "rule": rule})


def test_egress_tunnels_and_refusals_are_totalled_per_agent_by_rule(tmp_path: Path, api: FakeDockerAPI,
                                                                    capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_MONITOR", "monitor")
    root = make_tree(tmp_path, ["fabien"])
    api.egress_lines = [("2026-11-22T06:30:00.000000001Z", squid("fabien", 200)),
                        ("2026-11-22T06:30:00.000000002Z", squid("fabien", 403, "ERR_AGENTFLEET_PRIVATE")),
                        ("2026-11-22T06:30:00.000000003Z", squid("fabien", 403, "ERR_AGENTFLEET_NOT_ALLOWED")),
                        ("2026-11-22T06:30:00.000000004Z", squid("fabien", 503, "ERR_DNS_FAIL")),
                        ("2026-11-22T06:30:00.000000005Z", "2026/11/22 06:30:00| a notice, not a request"),
                        ("2026-11-22T06:30:00.000000006Z", squid("-", 403, "ERR_AGENTFLEET_PORT")),
                        ("2026-11-22T06:30:00.000000007Z", squid("\x1b[2Jx<b>", 403, "ERR_<script>")),
                        ("2026-11-22T06:30:00.000000008Z", squid("fabien", 407, "-"))]
    watcher = monitor(root, api)
    watcher.check(0)
    watcher.check(0)  # counted once
    report = json.loads((root / "logs" / "monitor" / "egress-usage.json").read_text())
    assert report["agents"]["fabien"] == {"tunnels": 1, "refused": {"private": 1, "not_allowed": 1, "dns_fail": 1,
                                                                   "other": 1}, "last": "2026-11-22T06:30:00"}
    assert report["agents"]["(not an agent)"]["refused"] == {"port": 1, "other": 1}
    assert set(report["agents"]) == {"fabien", "(not an agent)"}
    assert agentctl.main(["--root", str(root), "egress"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["AGENT", "TUNNELS", "REFUSED", "LAST"]
    assert ["fabien", "1", "dns_fail:1,not_allowed:1,other:1,private:1"] in [line.split()[:3] for line in table]


def test_a_tampered_egress_report_is_not_resumed(tmp_path: Path, api: FakeDockerAPI) -> None:
    root = make_tree(tmp_path, ["fabien"])
    (root / "logs" / "monitor").mkdir(parents=True)
    (root / "logs" / "monitor" / "egress-usage.json").write_text('{"agents": {"x": {"tunnels": -1}}, "since": [0, 0]}')
    config = Config(name="monitor", kind="monitor", root=root, backend=Backend.from_json('{"type": "command", "argv": ["true"]}'),
                    docker_api=f"http://127.0.0.1:{api.server_address[1]}")
    watcher = Monitor(config, retention=3600)
    assert watcher.egress.lost and watcher.egress.agents == {}
