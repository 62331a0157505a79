"""Ollama on the host (here the STAND-IN from files/ollama-standin, packed like the release:
the real release cannot be downloaded here): loopback only, a hardened unit, its models pulled,
and one route for agents, a socket mounted into the agents that opted in (monitor and olga)."""

from __future__ import annotations

import json
import re
import uuid
import shlex

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
SOCKET = "unix:///run/ollama/ollama.sock"
MODEL = "agentfleet-standin:tiny"
# What the unit must set, read back from systemd (not from the file we wrote).
HARDENING = {"User": "ollama", "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
             "PrivateTmp": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "", "RestrictSUIDSGID": "yes",
             "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
             "LockPersonality": "yes", "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
             "IPAddressDeny": "0.0.0.0/0 ::/0"}
# systemd prints these lists in no fixed order.
UNORDERED = ("RestrictAddressFamilies", "IPAddressDeny", "IPAddressAllow")
# Ask Ollama through the runtime's own client: the argv the ollama backend runs.
ASK = f"python3 -m agentfleet.ollama {SOCKET} {MODEL} hello"


def exposure(host: testinfra.host.Host, unit: str) -> float:
    output = host.check_output(f"systemd-analyze security --no-pager {unit}")
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", output)
    assert found, output[-500:]
    return float(found.group(1))


def unit_properties(host: testinfra.host.Host, unit: str, names: list[str]) -> dict[str, str]:
    shown = host.check_output(f"systemctl show {unit} -p {','.join(names)}")
    properties = dict(line.split("=", 1) for line in shown.splitlines())
    return {name: " ".join(sorted(value.split())) if name in UNORDERED else value
            for name, value in properties.items()}


def test_ollama_listens_on_loopback_only(host: testinfra.host.Host) -> None:
    listeners = host.check_output("ss -Hltnp").splitlines()
    ollama = [line.split()[3] for line in listeners if ":11434" in line.split()[3]]
    assert ollama == ["127.0.0.1:11434"], listeners


def test_the_unit_is_hardened(host: testinfra.host.Host) -> None:
    assert unit_properties(host, "ollama", list(HARDENING)) == HARDENING
    pid = host.check_output("systemctl show ollama -p MainPID --value")
    assert host.check_output(f"ps -o user= -p {pid}") == "ollama"


def test_systemd_rates_the_unit_far_safer_than_an_unhardened_one(host: testinfra.host.Host) -> None:
    """The control: the tests' own outside-world service sets no sandboxing and scores high."""
    assert exposure(host, "ollama.service") < 4.0 < 9.0 <= exposure(host, "agentfleet-test-outside.service")


def test_models_are_pulled_into_ollamas_own_directory(host: testinfra.host.Host) -> None:
    models = host.file("/var/lib/ollama/models")
    assert models.user == "ollama" and models.mode == 0o750
    manifest = host.file(f"/var/lib/ollama/models/manifests/{MODEL}")
    assert manifest.exists and manifest.user == "ollama"
    tags = json.loads(host.check_output(
        "python3 -c 'import urllib.request; print(urllib.request.urlopen(\"http://127.0.0.1:11434/api/tags\").read().decode())'"))
    assert MODEL in [model["name"] for model in tags["models"]]


def test_the_pull_left_its_progress_where_the_play_said(host: testinfra.host.Host) -> None:
    log = host.file("/var/log/agentfleet/ollama-pull.log")
    assert log.user == "root" and log.mode == 0o600
    lines = log.content_string.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("== ") and line.endswith(f"pull {MODEL}"))
    assert "success" in lines[start + 1:]  # what `ollama pull` printed (the stand-in's one line)


@pytest.mark.parametrize("agent", ["monitor", "olga"])
def test_agents_that_opted_in_reach_ollama_through_the_socket(host: testinfra.host.Host, agent: str) -> None:
    answer = host.run(f"docker exec agentfleet-{agent}-1 {ASK}")
    assert answer.rc == 0 and answer.stdout == "stand-in answer: hello", answer.stderr


@pytest.mark.parametrize("agent", ["orchestrator", "marie", "anga", "fabien", "lea"])
def test_other_agents_have_no_route_to_ollama(host: testinfra.host.Host, agent: str) -> None:
    assert host.run(f"docker exec agentfleet-{agent}-1 test -e /run/ollama").rc != 0
    answer = host.run(f"docker exec agentfleet-{agent}-1 {ASK}")
    assert answer.rc != 0 and "stand-in answer" not in answer.stdout
    # Not over the network either: loopback is the container's own, and the host's address is closed.
    address = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    for url in ("http://127.0.0.1:11434", f"http://{address}:11434"):
        tried = host.run(f"docker exec agentfleet-{agent}-1 python3 -m agentfleet.ollama {url} {MODEL} hello")
        assert tried.rc != 0 and "stand-in answer" not in tried.stdout


def test_control_a_worker_given_the_mount_reaches_ollama(host: testinfra.host.Host) -> None:
    """The mount is the control: marie's own network and hardening plus the socket reach Ollama."""
    image = host.check_output("docker inspect -f '{{.Config.Image}}' agentfleet-marie-1")
    command = (f"docker run --rm --network agentfleet_agent_marie --user 10001:10001 --cap-drop ALL --read-only "
               f"--security-opt no-new-privileges -v /run/agentfleet-ollama:/run/ollama:ro --entrypoint python3 "
               f"{image} -m agentfleet.ollama {SOCKET} {MODEL} control")
    answer = host.run(command)
    assert answer.rc == 0 and answer.stdout == "stand-in answer: control", answer.stderr


def test_olga_answers_a_task_through_the_ollama_backend(host: testinfra.host.Host) -> None:
    submitted = host.run(f"agentctl submit --to olga --wait 60 {shlex.quote('summarise the logs')}")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    result = json.loads(submitted.stdout.split("\n", 1)[1])
    assert result["status"] == "ok" and result["output"] == "stand-in answer: summarise the logs"


# Runs in an agent: each "METHOD PATH" of argv[1:] through the socket; prints status and body.
THROUGH_SOCKET = r"""
import http.client, socket, sys
class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect("/run/ollama/ollama.sock")
for call in sys.argv[1:]:
    method, path = call.split(" ", 1)
    connection = Unix("ollama")
    connection.request(method, path, body=b'{"model": "agentfleet-standin:tiny", "prompt": "hi"}' if method != "GET" else None)
    response = connection.getresponse()
    print(response.status, response.read().decode()[:120].replace("\n", " "))
"""
ADMIN = ["POST /api/pull", "POST /api/push", "POST /api/create", "POST /api/copy", "DELETE /api/delete",
         "POST /api/blobs/sha256:0000", "GET /api/ps", "POST /api/%70ull", "POST /api/../api/pull", "POST //api/pull"]


def stand_in_saw(host: testinfra.host.Host, marker: str) -> bool:
    return marker in host.check_output("cat /var/lib/ollama/stand-in-requests.log")


def test_agents_reach_only_the_inference_and_listing_endpoints(host: testinfra.host.Host) -> None:
    marker = f"agentfleet-{uuid.uuid4().hex}"
    calls = [f"{call}?{marker}" for call in ADMIN]
    answers = host.check_output(f"docker exec agentfleet-olga-1 python3 -c {shlex.quote(THROUGH_SOCKET)} "
                                + " ".join(shlex.quote(call) for call in calls)).splitlines()
    assert len(answers) == len(ADMIN) and all(a.startswith("403 agentfleet ollama: denied by rule endpoints") for a in answers), answers
    assert not stand_in_saw(host, marker)
    allowed = host.check_output(f"docker exec agentfleet-olga-1 python3 -c {shlex.quote(THROUGH_SOCKET)} "
                                f"'GET /api/tags' 'GET /api/version' 'POST /api/show' 'POST /api/generate?{marker}'")
    assert [line.split()[0] for line in allowed.splitlines()] == ["200"] * 4, allowed
    assert stand_in_saw(host, marker)


def test_control_the_same_admin_call_on_the_unfiltered_port_reaches_ollama(host: testinfra.host.Host) -> None:
    marker = f"agentfleet-{uuid.uuid4().hex}"
    call = ("import urllib.request\nrequest = urllib.request.Request("
            f"'http://127.0.0.1:11434/api/delete?{marker}', data=b'{{}}', method='DELETE')\n"
            "print(urllib.request.urlopen(request).status)")
    assert host.check_output(f"python3 -c {shlex.quote(call)}") == "200"
    assert stand_in_saw(host, marker)


CONNECT_OUTSIDE = "import socket; socket.create_connection(('203.0.113.10', 443), timeout=5).close(); print('connected')"


def test_ollama_reaches_nothing_beyond_loopback_once_its_models_are_pulled(host: testinfra.host.Host) -> None:
    """The stand-in's pull connects to its "registry", the tests' outside address: refused in the unit."""
    pull = host.run(f"OLLAMA_HOST=127.0.0.1:11434 /opt/ollama/bin/ollama pull agentfleet-{uuid.uuid4().hex[:8]}:x")
    assert pull.rc != 0 and "registry unreachable" in pull.stderr, (pull.stdout, pull.stderr)
    shown = unit_properties(host, "ollama", ["IPAddressDeny", "IPAddressAllow"])
    assert shown == {"IPAddressDeny": "0.0.0.0/0 ::/0", "IPAddressAllow": "127.0.0.0/8 ::1/128"}, shown
    # Control: the same connect from a unit without the address filter reaches the outside.
    control = host.run(f"systemd-run --wait --pipe --quiet -p DynamicUser=yes python3 -c {shlex.quote(CONNECT_OUTSIDE)}")
    assert control.rc == 0 and control.stdout.strip() == "connected", control.stderr
