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
AGENTS = ("orchestrator", "marie", "anga", "fabien", "monitor", "lea")
SEEN = 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8080/_seen").read().decode())'


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


@pytest.mark.parametrize("service", ("gateway", "redis", *AGENTS))
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


def test_the_command_backend_runs_its_argv(host: testinfra.host.Host) -> None:
    submitted = ctl(host, "submit --to lea --wait 60 'deploy it; rm -rf /'")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    assert json.loads(submitted.stdout.split("\n", 1)[1])["output"] == "command backend ran: deploy it; rm -rf /\n"


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
    assert mine and all(line["status"] == 200 and line["sent"] > 0 for line in mine)
