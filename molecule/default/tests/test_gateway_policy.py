"""The model gateway's per-agent policy, from inside real agents (molecule.yml gives the policies).

Every refusal names its rule, and the test upstream never sees a refused request; each has a
control: the same request from an agent whose policy allows it, or a neighbour still served while
an agent's limit has tripped. The gateway is restarted before and after, so its counters start at
zero and no later test inherits a spent budget.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
GATEWAY = "agentfleet-gateway-1"
# Runs in an agent: sends each request of argv[1] ([method, path, body or null, count, parallel])
# to the gateway exactly as written (http.client: no path normalisation) and prints [status, body]s.
CLIENT = r"""
import http.client, json, sys, threading
results = []
def send(method, path, body):
    if isinstance(body, dict) and "_pad" in body:  # a large prompt, made here: argv has a size limit
        body = dict(body)
        body["messages"][0]["content"] += " " + "x" * body.pop("_pad")
    connection = http.client.HTTPConnection("gateway", 8080, timeout=30)
    data = None if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
    connection.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                         "x-api-key": "sk-ant-placeholder"})
    response = connection.getresponse()
    results.append([response.status, response.read().decode(errors="replace")[:300]])
for method, path, body, count, parallel in json.loads(sys.argv[1]):
    threads = [threading.Thread(target=send, args=(method, path, body)) for _ in range(count)]
    for thread in threads:
        thread.start()
        if not parallel:
            thread.join()
    for thread in threads:
        thread.join()
print(json.dumps(results))
"""
SEEN = ("import ssl, urllib.request\n"
        "context = ssl.create_default_context(cafile='/mock/ca.pem')\ncontext.check_hostname = False\n"
        "print(urllib.request.urlopen('https://127.0.0.1:8443/_seen', context=context).read().decode())")


def run(host: testinfra.host.Host, command: str) -> str:
    result = host.run(command)
    assert result.rc == 0, f"{command}: {result.stdout} {result.stderr}"
    return str(result.stdout)


def restart_gateway(host: testinfra.host.Host) -> None:
    run(host, f"docker restart {GATEWAY}")
    for _ in range(60):
        if host.run(f"docker inspect -f '{{{{.State.Health.Status}}}}' {GATEWAY}").stdout.strip() == "healthy":
            return
        time.sleep(1)
    raise AssertionError("the gateway did not come back healthy")


@pytest.fixture(name="fresh_gateway", scope="module", autouse=True)
def fixture_fresh_gateway(host: testinfra.host.Host) -> Iterator[None]:
    restart_gateway(host)
    yield
    restart_gateway(host)


def send(host: testinfra.host.Host, agent: str, *requests: tuple[str, str, Any, int, bool]) -> list[list[Any]]:
    spec = shlex.quote(json.dumps(requests))
    found: list[list[Any]] = json.loads(run(host, f"docker exec agentfleet-{agent}-1 python3 -c {shlex.quote(CLIENT)} {spec}"))
    return found


def message(marker: str, **extra: Any) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": marker}], **extra}


def upstream_saw(host: testinfra.host.Host, marker: str) -> bool:
    seen = json.loads(run(host, f"docker exec agentfleet-test-messages-api python3 -c {shlex.quote(SEEN)}"))
    return any(marker in (entry.get("prompt") or "") or marker in entry["path"] for entry in seen)


def rules(results: list[list[Any]]) -> list[str]:
    return [body.split("denied by rule ")[1].split(":")[0] if "denied by rule " in body else str(status)
            for status, body in results]


def test_other_endpoints_are_refused_by_the_gateway_itself(host: testinfra.host.Host) -> None:
    marker = f"endpoint-{uuid.uuid4().hex}"
    refused = send(host, "marie", ("GET", f"/v1/models?{marker}", None, 1, False),
                   ("POST", f"/v1/files?{marker}", {}, 1, False),
                   ("POST", f"/v1/messages/batches?{marker}", message(marker), 1, False),
                   ("POST", f"/v1/messages/../files?{marker}", message(marker), 1, False),
                   ("POST", f"//v1/messages?{marker}", message(marker), 1, False))
    assert [status for status, _ in refused] == [403] * 5, refused
    assert rules(refused) == ["endpoints"] * 5
    assert not upstream_saw(host, marker)
    # Control: fabien's policy allows GET /v1/models; the same call reaches the upstream.
    assert send(host, "fabien", ("GET", f"/v1/models?{marker}", None, 1, False))[0][0] == 200
    assert upstream_saw(host, marker)


@pytest.mark.parametrize("extra", [
    {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}]},
    {"tools": [{"name": "Bash", "input_schema": {"type": "object"}}, {"type": "web_fetch_20250910", "name": "web_fetch"}]},
    {"tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
    {"mcp_servers": [{"type": "url", "url": "https://mcp.agentfleet.test/sse", "name": "mine"}]},
])
def test_server_side_tools_and_mcp_servers_are_refused_unless_allowed(host: testinfra.host.Host,
                                                                      extra: dict[str, Any]) -> None:
    marker = f"tools-{uuid.uuid4().hex}"
    refused = send(host, "marie", ("POST", "/v1/messages", message(marker, **extra), 1, False))
    assert refused[0][0] == 403 and rules(refused) == ["tools"], refused
    assert not upstream_saw(host, marker)
    allowed = send(host, "fabien", ("POST", "/v1/messages", message(marker, **extra), 1, False))
    if "web_search" in json.dumps(extra) or "mcp_servers" in extra:  # what fabien's policy names
        assert allowed[0][0] == 200, allowed
        assert upstream_saw(host, marker)
    else:
        assert allowed[0][0] == 403 and rules(allowed) == ["tools"], allowed


def test_custom_tools_pass(host: testinfra.host.Host) -> None:
    marker = f"custom-{uuid.uuid4().hex}"
    tools = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]
    assert send(host, "marie", ("POST", "/v1/messages", message(marker, tools=tools), 1, False))[0][0] == 200
    assert upstream_saw(host, marker)


def test_a_body_over_the_agents_bound_is_refused(host: testinfra.host.Host) -> None:
    marker = f"body-{uuid.uuid4().hex}"
    big = {**message(marker), "_pad": 1536 * 1024}  # 1.5 MiB: lea's bound is 1 MiB, marie's 32
    refused = send(host, "lea", ("POST", "/v1/messages", big, 1, False))
    assert refused[0][0] == 413 and rules(refused) == ["max-body"], refused
    assert not upstream_saw(host, marker)
    assert send(host, "marie", ("POST", "/v1/messages", big, 1, False))[0][0] == 200
    assert upstream_saw(host, marker)


def test_the_rate_limit_trips_at_its_value_while_a_neighbour_is_served(host: testinfra.host.Host) -> None:
    """olga: 30 a minute with a burst of 2, so 3 at once pass and the rest get 429 rule rate."""
    results = send(host, "olga", ("POST", "/v1/messages", message("rate"), 6, False))
    assert [status for status, _ in results] == [200, 200, 200, 429, 429, 429], results
    assert rules(results)[3:] == ["rate"] * 3
    assert [s for s, _ in send(host, "anga", ("POST", "/v1/messages", message("neighbour"), 4, False))] == [200] * 4


def test_the_connection_limit_trips_at_its_value(host: testinfra.host.Host) -> None:
    """The monitor may hold one request open; a second at the same time gets 429 rule connections."""
    results = send(host, "monitor", ("POST", "/v1/messages", message("agentfleet-slow-reply"), 2, True))
    assert sorted(status for status, _ in results) == [200, 429], results
    assert "connections" in rules(results)
    assert sorted(s for s, _ in send(host, "anga", ("POST", "/v1/messages", message("agentfleet-slow-reply"), 2, True))) \
        == [200, 200]


def test_the_request_budget_trips_and_the_monitor_reports_it(host: testinfra.host.Host) -> None:
    """lea: 3 requests a day, then 429 rule budget-requests; marie is still served."""
    results = send(host, "lea", ("POST", "/v1/messages", message("budget"), 5, False))
    assert [status for status, _ in results] == [200, 200, 200, 429, 429], results
    assert rules(results)[3:] == ["budget-requests"] * 2
    assert send(host, "marie", ("POST", "/v1/messages", message("neighbour"), 1, False))[0][0] == 200
    for _ in range(30):
        if '"of": "lea", "rule": "budget-requests"' in host.run("docker logs agentfleet-monitor-1 2>&1").stdout:
            break
        time.sleep(1)
    else:
        raise AssertionError("the monitor did not report lea's spent budget")
    usage = run(host, "docker exec agentfleet-orchestrator-1 agentctl usage")
    assert any(line.split()[0] == "lea" and "budget-requests:2" in line for line in usage.splitlines()), usage


def test_the_token_budget_counts_the_responses_usage(host: testinfra.host.Host) -> None:
    """The monitor: 30 tokens a day; each answer of the test upstream uses 13 (5 in, 8 out), streamed
    or not, so the third request is admitted (26 < 30) and the fourth refused."""
    restart_gateway(host)  # the connection test's answer counted too
    streamed = message("tokens", stream=True)
    results = send(host, "monitor", ("POST", "/v1/messages", message("tokens"), 1, False),
                   ("POST", "/v1/messages", streamed, 1, False), ("POST", "/v1/messages", streamed, 1, False),
                   ("POST", "/v1/messages", message("tokens"), 1, False))
    assert [status for status, _ in results] == [200, 200, 200, 429], results
    assert rules(results)[3] == "budget-tokens"
    logged = [json.loads(line) for line in run(host, f"docker logs {GATEWAY} 2>/dev/null").splitlines()
              if line.startswith("{") and '"agent":"monitor"' in line]
    assert [entry["tokens"] for entry in logged if entry["status"] == 200][-3:] == [13, 13, 13]
