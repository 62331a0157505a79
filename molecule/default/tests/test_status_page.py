"""The status page on the live fleet: served on the host's loopback only, as the dispatching agent's
account, and a hostile agent field is shown as text in Chromium (the page is fetched on the test
host and rendered here; the screenshot is kept in artifacts/)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))  # the page reader the unit test uses
from page_text import CHROMIUM, chromium, seen  # noqa: E402
ARTIFACTS = ROOT / "artifacts"
TREE = "/srv/agentfleet"
HOSTILE = "olga"
IDENT = "20261130T120000-0badf00d"
MARKUP = '<img src=x onerror="document.title=1"><b id="pwned">bold</b><script>document.title=2</script>'


# The test host has no curl: Python's http.client, as a request from the host's own loopback.
FETCH = """
import http.client, json, sys
method, address, host = sys.argv[1:4]
connection = http.client.HTTPConnection(address, 8377, timeout=10)
try:
    connection.request(method, "/", body=b"x" if method != "GET" else None, headers={"Host": host})
    response = connection.getresponse()
    print(json.dumps({"status": response.status, "headers": dict(response.getheaders()),
                      "body": response.read().decode("utf-8", "replace")}))
except OSError as error:
    print(json.dumps({"status": 0, "error": str(error)}))
"""


def fetch(host: testinfra.host.Host, method: str = "GET", address: str = "127.0.0.1", name: str = "127.0.0.1:8377") -> Any:
    return json.loads(host.check_output(f"python3 -c {shlex.quote(FETCH)} {method} {address} {name}"))


@pytest.fixture(name="planted", scope="module")
def fixture_planted(host: testinfra.host.Host) -> Iterator[str]:
    """A valid result of olga's whose reason is markup, written by olga herself."""
    result = {"id": IDENT, "worker": HOSTILE, "status": "failed", "output": "", "reason": MARKUP, "attempt": 1,
              "started": time.time() - 2, "finished": time.time()}
    code = (f"import json; open('/agentfleet/results/{HOSTILE}/{IDENT}.json', 'w').write(json.dumps({result!r}))")
    done = host.run(f"docker exec agentfleet-{HOSTILE}-1 python3 -I -c {shlex.quote(code)}")
    assert done.rc == 0, done.stderr
    yield IDENT
    host.run(f"docker exec agentfleet-{HOSTILE}-1 rm -f /agentfleet/results/{HOSTILE}/{IDENT}.json")


def test_the_page_listens_on_loopback_only_as_the_dispatching_agent(host: testinfra.host.Host) -> None:
    assert host.service("agentfleet-status.service").is_running
    listening = host.check_output("ss -Hltn 'sport = :8377'").split("\n")
    assert [line.split()[3] for line in listening if line] == ["127.0.0.1:8377"]
    pid = host.check_output("systemctl show -p MainPID --value agentfleet-status.service")
    assert host.check_output(f"ps -o user= -p {pid}") == "agent-orchestrator"
    address = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    assert fetch(host)["status"] == 200  # the control: the same request on loopback is answered
    assert fetch(host, address=address, name=f"{address}:8377")["status"] == 0  # nothing listens there
    refused = host.run(f"docker exec agentfleet-marie-1 python3 -c \"import socket; socket.create_connection(('{address}', 8377), 3)\"")
    assert refused.rc != 0


def test_nothing_on_the_page_acts(host: testinfra.host.Host) -> None:
    for method in ("POST", "PUT", "DELETE"):
        assert fetch(host, method)["status"] == 501
    policy = fetch(host)["headers"]["Content-Security-Policy"]
    assert policy.startswith("default-src 'none'") and "script-src" not in policy
    assert fetch(host, name="attacker.test:8377")["status"] == 421  # a rebound name is not answered


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/test installs it)")
def test_a_person_sees_the_fleet_and_a_hostile_result_as_text(host: testinfra.host.Host, planted: str) -> None:
    agents = sorted(host.check_output(f"ls {TREE}/heartbeats").split())
    deadline, markup = time.monotonic() + 60, ""
    while time.monotonic() < deadline:  # the page is rendered at most every 2 s, the monitor counts every interval
        markup = str(fetch(host)["body"])
        if planted in markup and "private:" in markup:
            break
        time.sleep(2)
    ARTIFACTS.mkdir(exist_ok=True)
    saved = ARTIFACTS / "molecule-status-page.html"
    saved.write_text(markup)
    shot = ARTIFACTS / "molecule-status-page.png"
    chromium(ARTIFACTS / ".chromium", "--window-size=1400,2400", f"--screenshot={shot}", saved.as_uri())
    dom = seen(chromium(ARTIFACTS / ".chromium", "--dump-dom", saved.as_uri()))
    text = dom.words()
    for name in agents:
        assert name in text
    for title in ("Agents", "Recent results", "Goals", "Model gateway", "Egress proxy", "Disk use", "Last audit"):
        assert title in text
    assert " ".join(MARKUP.split()) in text  # what olga wrote, as the characters she wrote
    assert not [tag for tag, _ in dom.elements if tag in ("img", "b", "script")]
    assert not any(attrs.get("id") == "pwned" for _, attrs in dom.elements)
    egress = json.loads(host.check_output(f"cat {TREE}/logs/monitor/egress-usage.json"))["agents"]
    assert egress["fabien"]["refused"].get("private", 0) >= 1  # test_isolation's refusal, named by the proxy's note
    assert "no report to show" not in text  # the audit's report is readable by the page's account
    assert shot.stat().st_size > 10_000
