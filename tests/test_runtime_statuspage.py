"""The status page shows the fleet read-only, and what agents wrote only as text: rendered in
headless Chromium (Debian's package), as a person would see it."""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentfleet import agentctl
from agentfleet.fleet import Fleet
from agentfleet.statuspage import PageServer, collect, render
from page_text import CHROMIUM, chromium, seen
from runtime_helpers import make_tree

ME = os.getuid()
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
HOSTILE = '<img src=x onerror="document.title=1"><b id="pwned">bold</b><script>document.title="pwned"</script>\x1b[2J'


def fleet_tree(root: Path) -> Fleet:
    make_tree(root, ["marie", "anga"])
    now = time.time()
    for name, status, task in (("marie", "busy", "20261130T101010-aaaaaaaa"), ("anga", "idle", None),
                               ("monitor", "idle", None)):
        beat = {"agent": name, "kind": "monitor" if name == "monitor" else "worker", "status": status, "task": task,
                "updated": now - (400 if name == "anga" else 1), "interval": 5, "completed": 3, "pid": 7}
        (root / "heartbeats" / name / "heartbeat.json").write_text(json.dumps(beat))
    (root / "inbox" / "marie" / "20261130T101010-aaaaaaaa.json").write_text("{}")
    (root / "inbox" / "marie" / "20261130T101011-bbbbbbbb.json").write_text("{}")
    result = {"id": "20261130T090000-cccccccc", "worker": "anga", "status": "failed", "output": "", "reason": HOSTILE,
              "attempt": 1, "started": now - 60, "finished": now - 30}
    (root / "results" / "anga" / f"{result['id']}.json").write_text(json.dumps(result))
    (root / "results" / "anga" / "20261130T090001-dddddddd.json").symlink_to("/etc/passwd")
    (root / "logs" / "monitor").mkdir(parents=True)
    usage = {"agents": {"marie": {"requests": 4, "sent": 1, "received": 1, "status": {"200": 3, "429": 1},
                                  "refused": {"rate": 1}, "tokens": 99, "last": "t"}}, "since": [1, 2]}
    (root / "logs" / "monitor" / "gateway-usage.json").write_text(json.dumps(usage))
    egress = {"agents": {"anga": {"tunnels": 2, "refused": {"private": 5}, "last": "t"}}, "since": [1, 2]}
    (root / "logs" / "monitor" / "egress-usage.json").write_text(json.dumps(egress))
    return Fleet(root, {"marie": ME, "anga": ME, "monitor": ME}, interval=5, monitor="monitor")


def audit_report(path: Path) -> Path:
    rows = [{"check": "docker_socket", "target": "/var/run/docker.sock", "ok": True, "observed": "absent"},
            {"check": "egress_proxy", "target": "x.test:443", "ok": False, "observed": "<i>opened</i>"}]
    path.write_text(json.dumps([{"agent": "marie", "rows": rows}]))
    return path


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"AGENTFLEET_DOCTOR_AUDIT": str(audit_report(tmp_path / "audit.json"))}


def test_the_page_holds_each_section_and_escapes_what_agents_wrote(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    now = time.time()
    markup = render(collect(fleet_tree(root), env_for(tmp_path), now), "host<1>", now)
    page = seen(markup)
    text = "".join(page.text)
    for title in ("Agents", "Recent results", "Model gateway: requests and refusals", "Egress proxy: tunnels and refusals",
                  "Disk use against each agent's bound", "Last audit", "Files refused while reading"):
        assert title in text
    assert [tag for tag, _ in page.elements if tag in ("script", "img", "b", "i", "form", "a", "iframe")] == []
    assert HOSTILE[:-4] in text and "\\x1b[2J" in text  # shown, as text, control character escaped
    assert "STALE" in text and "agentfleet on host<1>" in text
    assert "BREACH: x.test:443: <i>opened</i>" in text
    assert "results/anga/20261130T090001-dddddddd.json" in text  # the link is named, not followed


@pytest.fixture(name="server")
def fixture_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PageServer]:
    root = tmp_path / "tree"
    fleet_tree(root)
    monkeypatch.setenv("AGENTFLEET_AGENTS", json.dumps({"marie": ME, "anga": ME, "monitor": ME}))
    monkeypatch.setenv("AGENTFLEET_MONITOR", "monitor")
    server = PageServer(("127.0.0.1", 0), root, env_for(tmp_path))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def request(server: PageServer, method: str, path: str = "/", host: str = "") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    try:
        connection.request(method, path, body=b"x" if method == "POST" else None, headers={"Host": host} if host else {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_only_get_is_served_with_a_policy_that_allows_no_script(server: PageServer) -> None:
    status, headers, body = request(server, "GET")
    assert status == 200 and b"Recent results" in body
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script" not in policy and "unsafe" not in policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    for method in ("POST", "PUT", "DELETE"):
        assert request(server, method)[0] == 501
    assert request(server, "GET", "/../etc/passwd")[0] == 404
    # A name that points at loopback from a site's page (DNS rebinding) is not answered; the control: localhost is.
    assert request(server, "GET", host="attacker.test:8377")[0] == 421
    assert request(server, "GET", host="localhost:9000")[0] == 200


def test_the_page_serves_on_ipv6_loopback(tmp_path: Path) -> None:
    server = PageServer(("::1", 0), tmp_path, {})
    try:
        assert server.socket.family.name == "AF_INET6"
    finally:
        server.server_close()


def test_the_page_binds_only_to_loopback() -> None:
    assert agentctl.loopback("127.0.0.1") == "127.0.0.1" and agentctl.loopback("::1") == "::1"
    for address in ("0.0.0.0", "192.0.2.1", "localhost.test", "::"):
        with pytest.raises(SystemExit, match="not a loopback address"):
            agentctl.loopback(address)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test installs it)")
def test_a_person_sees_the_fleet_and_the_hostile_field_as_text_in_chromium(server: PageServer) -> None:
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "status-page.png"
    shot.unlink(missing_ok=True)
    chromium(ARTIFACTS / ".chromium", "--window-size=1280,1800", f"--screenshot={shot}", url)
    assert shot.stat().st_size > 10_000  # kept as the run's artifact
    dom = seen(chromium(ARTIFACTS / ".chromium", "--dump-dom", url))
    text = dom.words()
    assert "marie" in text and "busy" in text and "STALE" in text and "private:5" in text and "rate:1" in text
    assert " ".join(HOSTILE[:-4].split()) in text  # the agent's markup, as the characters it wrote
    tags = [tag for tag, _ in dom.elements]
    assert "img" not in tags and "b" not in tags and "script" not in tags  # nothing it wrote became an element
    assert not any(attrs.get("id") == "pwned" for _, attrs in dom.elements)
