"""The deployed stack: healthy, hardened, tasks done by the real Claude Code CLI through the
gateway, and the API key only ever in the gateway."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
PROJECT = "agentfleet"
AGENTS = ("orchestrator", "marie", "anga", "fabien", "monitor", "lea", "olga")
SEEN = ("import ssl, urllib.request\n"
        "context = ssl.create_default_context(cafile='/mock/ca.pem')\ncontext.check_hostname = False\n"
        "print(urllib.request.urlopen('https://127.0.0.1:8443/_seen', context=context).read().decode())")
# A model API call through the gateway, from inside an agent container; prints the HTTP status.
CALL = ("import urllib.request, urllib.error\n"
        "request = urllib.request.Request('http://gateway:8080/v1/messages', data=b'{\"messages\": []}',"
        " headers={'x-api-key': 'sk-ant-placeholder'})\n"
        "try:\n    print(urllib.request.urlopen(request, timeout=30).status)\n"
        "except urllib.error.HTTPError as error:\n    print(error.code)")
# The Docker API through the proxy, from the monitor: METHOD PATH -> HTTP status.
DOCKER_API = ("import http.client, sys\n"
              "connection = http.client.HTTPConnection('dockerproxy', 2375, timeout=10)\n"
              "connection.request(sys.argv[1], sys.argv[2], body=b'{}' if sys.argv[1] == 'POST' else None,"
              " headers={'Content-Type': 'application/json'})\n"
              "print(connection.getresponse().status)")


def container(service: str) -> str:
    return f"{PROJECT}-{service}-1"


def run(host: testinfra.host.Host, command: str) -> str:
    result = host.run(command)
    assert result.rc == 0, f"{command}: {result.stdout} {result.stderr}"
    return str(result.stdout)


def inspect(host: testinfra.host.Host, service: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(run(host, f"docker inspect {container(service)}"))[0]
    return document


def ctl(host: testinfra.host.Host, arguments: str) -> Any:
    return host.run(f"docker exec {container('orchestrator')} agentctl {arguments}")


def secret(host: testinfra.host.Host) -> str:
    return str(host.ansible.get_variables()["agent_stack_api_key"])


@pytest.mark.parametrize("service", ("gateway", "redis", "dockerproxy", *AGENTS))
def test_every_service_is_healthy(host: testinfra.host.Host, service: str) -> None:
    assert inspect(host, service)["State"]["Health"]["Status"] == "healthy"


@pytest.mark.parametrize("agent", AGENTS)
def test_agents_run_hardened_as_their_own_uid(host: testinfra.host.Host, agent: str) -> None:
    config = inspect(host, agent)
    uid = host.user(f"agent-{agent}").uid
    assert config["Config"]["User"] == f"{uid}:{uid}"
    assert config["HostConfig"]["CapDrop"] == ["ALL"] and config["HostConfig"]["ReadonlyRootfs"] is True
    assert "no-new-privileges:true" in config["HostConfig"]["SecurityOpt"]
    assert config["HostConfig"]["PidsLimit"] > 0 and config["HostConfig"]["Memory"] > 0
    assert config["HostConfig"]["LogConfig"]["Config"]["max-size"]
    assert not any("docker.sock" in mount["Source"] for mount in config["Mounts"])
    assert run(host, f"docker exec {container(agent)} id -u").strip() == str(uid)


@pytest.mark.parametrize("worker", ("marie", "anga", "fabien"))
def test_the_real_claude_cli_answers_through_the_gateway(host: testinfra.host.Host, worker: str) -> None:
    submitted = ctl(host, f"submit --to {worker} --wait 120 {shlex.quote(f'hello from {worker}')}")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    result = json.loads(submitted.stdout.split("\n", 1)[1])
    assert result["status"] == "ok" and result["output"] == f"mock answer: hello from {worker}"
    seen = json.loads(run(host, f"docker exec agentfleet-test-messages-api python3 -c {shlex.quote(SEEN)}"))
    mine = [request for request in seen if request["prompt"] == f"hello from {worker}"]
    assert mine and all(request["x-api-key"] == secret(host) for request in mine)


def test_the_command_backend_runs_its_argv_from_the_hosts_agentctl(host: testinfra.host.Host) -> None:
    submitted = host.run("agentctl submit --to lea --wait 60 'deploy it; rm -rf /'")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    ident = submitted.stdout.split()[1]
    assert json.loads(submitted.stdout.split("\n", 1)[1])["output"] == "command backend ran: deploy it; rm -rf /\n"
    assert host.file(f"/srv/agentfleet/inbox/lea/{ident}.json").user == "agent-orchestrator"


def test_the_gateway_refuses_an_upstream_it_cannot_verify(host: testinfra.host.Host) -> None:
    """The endpoint presents a self-signed certificate for the same name: no request, no key leaves."""
    before = len(json.loads(run(host, f"docker exec agentfleet-test-messages-api python3 -c {shlex.quote(SEEN)}")))
    run(host, "touch /opt/agentfleet-test/imposter-on")
    try:
        status = run(host, f"docker exec {container('marie')} python3 -c {shlex.quote(CALL)}").strip()
    finally:
        run(host, "rm -f /opt/agentfleet-test/imposter-on")
    after = len(json.loads(run(host, f"docker exec agentfleet-test-messages-api python3 -c {shlex.quote(SEEN)}")))
    assert (status, after) == ("502", before)
    assert run(host, f"docker exec {container('marie')} python3 -c {shlex.quote(CALL)}").strip() == "200"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/_ping", 200), ("GET", "/v1.41/containers/json", 200), ("GET", "/version", 200),
    ("POST", "/containers/create", 403), ("POST", "/v1.41/containers/agentfleet-marie-1/exec", 403),
    ("GET", "/containers/agentfleet-marie-1/archive?path=/", 403), ("GET", "/containers/agentfleet-marie-1/export", 403),
    ("POST", "/containers/agentfleet-marie-1/kill", 403), ("GET", "/images/json", 403),
])
def test_the_monitor_reads_the_docker_api_through_the_proxy_and_nothing_else(
        host: testinfra.host.Host, method: str, path: str, status: int) -> None:
    command = f"docker exec {container('monitor')} python3 -c {shlex.quote(DOCKER_API)} {method} {shlex.quote(path)}"
    assert run(host, command).strip() == str(status)


def test_workers_do_not_reach_the_docker_proxy(host: testinfra.host.Host) -> None:
    result = host.run(f"docker exec {container('marie')} python3 -c {shlex.quote(DOCKER_API)} GET /_ping")
    assert result.rc != 0 and ("Name or service not known" in result.stderr or "resolution" in result.stderr), result.stderr


def test_the_monitor_reports_the_gateways_requests_per_agent(host: testinfra.host.Host) -> None:
    ctl(host, "submit --to anga --wait 120 'count me'")
    rows: dict[str, list[str]] = {}
    for _ in range(30):
        listing = ctl(host, "usage")
        rows = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
        if "anga" in rows:
            break
        host.run("sleep 1")
    assert "anga" in rows and "200:" in rows["anga"][3], rows


@pytest.mark.parametrize("agent", AGENTS)
def test_no_agent_ever_holds_the_api_key(host: testinfra.host.Host, agent: str) -> None:
    key = secret(host)
    assert key not in json.dumps(inspect(host, agent)), "the key is in docker inspect"
    environment = run(host, f"docker exec {container(agent)} cat /proc/1/environ")
    assert key not in environment and "sk-ant-placeholder" in environment
    found = host.run(f"docker exec {container(agent)} grep -rlsF {shlex.quote(key)} /agentfleet /home /tmp /etc /run")
    assert found.rc != 0 and found.stdout == "", found.stdout  # 1: not found, 2: also unreadable paths


def test_only_the_gateway_can_read_the_key_file(host: testinfra.host.Host) -> None:
    key_file = host.file("/etc/agentfleet/stack/secrets/gateway_key.conf")
    assert (key_file.user, key_file.mode) == ("agentfleet-gateway", 0o400)
    assert secret(host) not in json.dumps(inspect(host, "gateway"))


def test_agentctl_status_lists_every_agent(host: testinfra.host.Host) -> None:
    table = ctl(host, "status").stdout.splitlines()
    assert sorted(line.split()[0] for line in table[1:]) == sorted(AGENTS)
    assert all("STALE" not in line for line in table)


def test_the_gateway_refuses_callers_that_are_not_agents(host: testinfra.host.Host) -> None:
    """The test endpoint shares the gateway's egress network but is no agent: 403."""
    probe = ("import urllib.request, urllib.error\n"
             "try:\n    urllib.request.urlopen(urllib.request.Request('http://gateway:8080/v1/messages', data=b'{}'))\n"
             "except urllib.error.HTTPError as error:\n    print(error.code)")
    assert run(host, f"docker exec agentfleet-test-messages-api python3 -c {shlex.quote(probe)}").strip() == "403"


def test_the_gateway_logs_each_request_with_the_agents_name(host: testinfra.host.Host) -> None:
    ctl(host, "submit --to marie --wait 120 'log me'")
    lines = [json.loads(line) for line in run(host, f"docker logs {container('gateway')} 2>/dev/null").splitlines()
             if line.startswith("{")]
    mine = [line for line in lines if line["agent"] == "marie" and line["path"].startswith("/v1/messages")]
    assert any(line["status"] == 200 and line["sent"] > 0 for line in mine), mine
