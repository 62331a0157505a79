"""The attack suite: playbooks/audit.yml attacks the live stack from inside every agent, and each
family of attacks has a negative control, a deliberately weakened container the same probe catches.

The outside world is the test host's own (prepare): a listener on its interface, a fake metadata
address on a dummy interface, a DNS that answers names under agentfleet.test.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
ROOT = Path(__file__).resolve().parents[3]
REPORT = "/var/lib/agentfleet/audit/report.json"
PROBE = "/opt/agentfleet-test/agentfleet_probe.py"
AGENTS = ("orchestrator", "marie", "anga", "fabien", "monitor", "lea", "olga")
# Every family the probe reports, and the agents that must have rows in it.
FAMILIES = ("capabilities", "no_new_privs", "seccomp", "non_root", "no_setuid", "read_only_root", "noexec_tmp",
            "proc_sys", "host_filesystem", "agent_files", "processes", "other_agents", "host", "fleet", "internet",
            "metadata", "needed_services", "external_dns", "raw_sockets", "docker_api", "egress_proxy",
            "gateway_other_host", "api_key_hunt", "ollama")


@cache
def audit() -> tuple[int, str]:
    """Run playbooks/audit.yml once against Molecule's inventory: (exit status, output)."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")
    command = ["ansible-playbook", "-i", inventory, str(ROOT / "playbooks" / "audit.yml")]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    return result.returncode, result.stdout + result.stderr


def report(host: testinfra.host.Host) -> list[dict[str, Any]]:
    status, output = audit()
    assert host.file(REPORT).exists, output[-3000:]
    rows: list[dict[str, Any]] = json.loads(host.file(REPORT).content_string)
    return rows


def test_the_audit_passes_and_prints_a_table_per_agent(host: testinfra.host.Host) -> None:
    status, output = audit()
    assert status == 0, output[-4000:]
    for agent in AGENTS:
        assert f"{agent:<14} capabilities" in output, output[-3000:]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_attack_is_blocked(host: testinfra.host.Host, family: str) -> None:
    """One test per attack family, over every agent; a family with no rows would prove nothing."""
    reports = report(host)
    rows = {item["agent"]: [row for row in item["rows"] if row["check"] == family] for item in reports}
    assert sorted(rows) == sorted(AGENTS)
    assert all(rows.values()), {agent: len(found) for agent, found in rows.items()}
    breaches = [(agent, row["target"], row["observed"]) for agent, found in rows.items() for row in found if not row["ok"]]
    assert not breaches


def test_the_allowlisted_domain_opens_for_fabien_only(host: testinfra.host.Host) -> None:
    """The control for the proxy: the tunnel that is refused to everyone opens for its agent."""
    rows = {item["agent"]: item["rows"] for item in report(host)}
    opened = [row for row in rows["fabien"] if row["target"] == "CONNECT registry.agentfleet.test:443"]
    assert opened and opened[0]["observed"] == "HTTP 200"
    assert not any("registry.agentfleet.test:443" in row["target"] for row in rows["marie"])


CONNECT_VIA_PROXY = """
import socket, sys
with socket.create_connection(("egress", 3128), timeout=10) as proxy:
    proxy.sendall(f"CONNECT {sys.argv[1]}:443 HTTP/1.1\\r\\nHost: {sys.argv[1]}:443\\r\\n\\r\\n".encode())
    reply = proxy.recv(65536)
    proxy.settimeout(2)
    try:  # the refusal's page may come in a second segment: read until the proxy goes quiet
        while chunk := proxy.recv(65536):
            reply += chunk
    except TimeoutError:
        pass
    print(reply.decode("utf-8", "replace"))
"""


def test_an_allowlisted_name_that_resolves_to_a_private_address_is_refused(host: testinfra.host.Host) -> None:
    """fabien may reach .registry.agentfleet.test; host.registry.agentfleet.test resolves to the test
    host's own (private) address, where a listener waits, and must stay shut."""
    def connect(name: str) -> str:
        return str(host.check_output(f"docker exec agentfleet-fabien-1 python3 -I -c {shlex.quote(CONNECT_VIA_PROXY)} {name}"))
    refused = connect("host.registry.agentfleet.test")
    assert refused.startswith("HTTP/1.1 403") and "denied by rule private" in refused, refused[:300]
    # The controls: the listener behind the private address answers, and the public name opens.
    unit = "/etc/systemd/system/agentfleet-test-outside.service"  # outside.py ADDRESS: the host's own address
    address = host.check_output(f"grep -o 'outside.py [0-9.]*' {unit}").split()[1]
    assert host.run(f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/443'").rc == 0
    assert connect("registry.agentfleet.test").startswith("HTTP/1.1 200")


# The negative controls: the same probe, run in containers that each lack one control.

def image(host: testinfra.host.Host) -> str:
    return str(host.check_output("docker inspect -f '{{.Config.Image}}' agentfleet-marie-1"))


def weakened(host: testinfra.host.Host, options: str, spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run the probe in a throwaway container started with options; rows keyed by family + target."""
    command = (f"docker run --rm -i --user 10001:10001 --entrypoint '' {options} {image(host)} python3 - "
               f"{shlex.quote(json.dumps({'agent': 'weakened', **spec}))} < {PROBE}")
    result = host.run(command)
    assert result.rc == 0, result.stderr
    return {f"{row['check']} {row['target']}": row for row in json.loads(result.stdout)["rows"]}


def hardened() -> str:
    return "--cap-drop ALL --security-opt no-new-privileges:true --read-only --tmpfs /tmp:rw,noexec,nosuid,nodev"


def host_address(host: testinfra.host.Host) -> str:
    return str(host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"])


def test_control_read_only_socket_mount_is_full_api_control(host: testinfra.host.Host) -> None:
    rows = weakened(host, f"{hardened()} --group-add {host.file('/var/run/docker.sock').gid} "
                          "-v /var/run/docker.sock:/var/run/docker.sock:ro",
                    {"checks": ["docker_api", "host_filesystem"], "docker_api": ["/var/run/docker.sock"],
                     "inside_root": "/agentfleet"})
    assert not rows["docker_api POST /containers/create via /var/run/docker.sock"]["ok"]
    assert rows["docker_api POST /containers/create via /var/run/docker.sock"]["observed"] == "HTTP 404"
    assert not rows["host_filesystem runtime sockets"]["ok"]


def test_control_a_plain_bridge_reaches_outside_metadata_and_dns(host: testinfra.host.Host, cleanup: list[str]) -> None:
    cleanup.append("af-control-bridge")
    host.run_test("docker network create af-control-bridge")
    outside = f"{host_address(host)}:8000"
    rows = weakened(host, f"{hardened()} --network af-control-bridge", {
        "checks": ["network"], "unreachable": {"internet": [outside], "metadata": ["169.254.169.254:80"]},
        "reachable": [], "outside_names": ["outside.agentfleet.test"]})
    assert not rows[f"internet {outside}"]["ok"] and not rows["metadata 169.254.169.254:80"]["ok"]
    assert not rows["external_dns outside.agentfleet.test"]["ok"]


def test_control_an_internal_network_without_inhibit_exposes_the_host(host: testinfra.host.Host,
                                                                       cleanup: list[str]) -> None:
    cleanup.append("af-control-internal")
    host.run_test("docker network create --internal --subnet 10.254.7.0/28 af-control-internal")
    rows = weakened(host, f"{hardened()} --network af-control-internal", {
        "checks": ["network"], "unreachable": {"host": ["10.254.7.1:22", "10.254.7.1:9"]}, "reachable": [],
        "outside_names": []})
    assert not rows["host 10.254.7.1:9"]["ok"], rows  # refused: the host answered on the bridge address


def test_control_the_hosts_network_reaches_the_fleets_nats_ports(host: testinfra.host.Host) -> None:
    """The fleet family's control: the same probe in a container on the host's network reaches
    NATS's ports on the host's address (refused: the host answers; connected while a listener waits)."""
    address = host_address(host)
    host.run_test(f"systemd-run --unit=agentfleet-test-nats-port python3 -c "
                  f"{shlex.quote(LISTENER)} {address} 4222")
    try:
        time.sleep(1)
        rows = weakened(host, f"{hardened()} --network host", {
            "checks": ["network"], "unreachable": {"fleet": [f"{address}:4222", f"{address}:6222"]}, "reachable": [],
            "outside_names": []})
    finally:
        host.run("systemctl stop agentfleet-test-nats-port")
    assert (rows[f"fleet {address}:4222"]["ok"], rows[f"fleet {address}:4222"]["observed"]) == (False, "connected")
    assert not rows[f"fleet {address}:6222"]["ok"], rows


LISTENER = """
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
while True:
    server.accept()[0].close()
"""


def test_control_a_shared_network_reaches_the_other_agent(host: testinfra.host.Host) -> None:
    marie = json.loads(host.check_output("docker inspect agentfleet-marie-1"))[0]
    address = marie["NetworkSettings"]["Networks"]["agentfleet_agent_marie"]["IPAddress"]
    rows = weakened(host, f"{hardened()} --network agentfleet_agent_marie", {
        "checks": ["network"], "unreachable": {"other_agents": [f"{address}:9"]}, "reachable": [],
        "outside_names": []})
    assert not rows[f"other_agents {address}:9"]["ok"]


def test_control_capabilities_raw_sockets_privileges(host: testinfra.host.Host) -> None:
    # The engine sets no-new-privileges for every container (docker_engine), so the control turns it off.
    rows = weakened(host, "--user 0:0 --cap-add NET_RAW --security-opt seccomp=unconfined "
                          "--security-opt no-new-privileges=false", {
        "checks": ["privileges", "network"], "unreachable": {}, "reachable": [], "outside_names": []})
    assert not rows["capabilities CapEff"]["ok"] and not rows["raw_sockets AF_INET/SOCK_RAW"]["ok"]
    assert not rows["seccomp Seccomp"]["ok"] and not rows["no_new_privs NoNewPrivs"]["ok"]


def test_control_root_writable_root_and_exec_tmp(host: testinfra.host.Host) -> None:
    rows = weakened(host, "--user 0:0 --tmpfs /tmp:rw,exec", {"checks": ["privileges", "filesystem"]})
    assert not rows["non_root uid"]["ok"] and not rows["read_only_root /probe"]["ok"]
    assert not rows["noexec_tmp /tmp/.agentfleet-probe.sh"]["ok"]


def test_control_setuid_files_and_host_pids(host: testinfra.host.Host) -> None:
    host.run_test("mkdir -p /opt/agentfleet-test/setuid && cp /bin/true /opt/agentfleet-test/setuid/true "
                  "&& chmod 4755 /opt/agentfleet-test/setuid/true")
    rows = weakened(host, f"{hardened()} --pid host -v /opt/agentfleet-test/setuid:/opt/setuid:ro",
                    {"checks": ["setuid", "processes"]})
    assert not rows["no_setuid setuid/setgid files"]["ok"] and not rows["processes /proc"]["ok"]


def test_control_the_probe_finds_a_key_where_one_is_planted(host: testinfra.host.Host) -> None:
    rows = weakened(host, f"{hardened()} -e LEAKED=sk-ant-api03-planted-for-the-control",
                    {"checks": ["key_hunt"], "inside_root": "/agentfleet"})
    assert not rows["api_key_hunt environments and readable files"]["ok"]


FORK = """
import os, signal, sys, time
children = []
try:
    for _ in range(int(sys.argv[1])):
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    print("unbounded", len(children))
except OSError as error:
    print("stopped", len(children))
finally:
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
"""


def forks(host: testinfra.host.Host, where: str, count: int) -> tuple[str, int]:
    output = host.check_output(f"{where} python3 -c {shlex.quote(FORK)} {count}").split()
    return output[0], int(output[1])


# One agent per runtime. Under runc the kernel stops the offending process alone. Under gVisor
# (Debian's runsc 20240729, ptrace platform) the pids and memory limits bind the sandbox as a
# whole: the bomb or hog may end that agent's sandbox, and its restart policy brings it back
# (measured; docs/security.md, "Sandbox runtimes"). Either way no other agent and not the host is touched.
LIMITED = (("marie", 10001, "runsc"), ("olga", 10006, "runc"))


def limits(host: testinfra.host.Host, agent: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(host.check_output(f"docker inspect agentfleet-{agent}-1"))[0]
    return config


def healthy_again(host: testinfra.host.Host, agent: str, before: dict[str, Any]) -> dict[str, Any]:
    """The agent's state once it is healthy again (at most 120 s)."""
    for _ in range(60):
        after = limits(host, agent)
        if after["State"]["Running"] and after["State"].get("Health", {}).get("Status") == "healthy" \
                and after["State"]["StartedAt"] >= before["State"]["StartedAt"]:
            return after
        time.sleep(2)
    raise AssertionError(f"{agent} is not healthy again: {after['State']}")


def contained(host: testinfra.host.Host, agent: str, runtime: str, before: dict[str, Any]) -> None:
    after = healthy_again(host, agent, before)
    restarted = after["State"]["StartedAt"] != before["State"]["StartedAt"]
    # runc: the process alone died. gVisor: that, or the sandbox ended and its policy restarted it.
    assert runtime == "runsc" or not restarted, (before["State"], after["State"])
    others = [name for name in AGENTS if name != agent]
    assert all(limits(host, name)["State"]["Running"] for name in others)


@pytest.mark.parametrize(("agent", "uid", "runtime"), LIMITED)
def test_a_fork_bomb_stops_at_the_pids_limit(host: testinfra.host.Host, agent: str, uid: int, runtime: str) -> None:
    before = limits(host, agent)
    limit = before["HostConfig"]["PidsLimit"]
    bomb = host.run(f"docker exec agentfleet-{agent}-1 python3 -c {shlex.quote(FORK)} {4 * limit}")
    assert "unbounded" not in bomb.stdout
    if runtime == "runc":
        outcome, made = bomb.stdout.split()
        assert outcome == "stopped" and 0 < int(made) < limit
    contained(host, agent, runtime, before)


@pytest.mark.parametrize(("agent", "uid", "runtime"), LIMITED)
def test_control_without_the_limit_the_same_forks_all_succeed(host: testinfra.host.Host, agent: str, uid: int,
                                                                runtime: str) -> None:
    limit = limits(host, agent)["HostConfig"]["PidsLimit"]
    room = f"docker run --rm --runtime {runtime} --user {uid}:{uid} --pids-limit {8 * limit} --entrypoint '' {image(host)}"
    assert forks(host, room, 2 * limit) == ("unbounded", 2 * limit)


HOG = "python3 -c 'import sys; block = b\"x\" * (int(sys.argv[1]) * 1024 ** 2); print(len(block))' "


@pytest.mark.parametrize(("agent", "uid", "runtime"), LIMITED)
def test_a_memory_hog_is_stopped_and_contained(host: testinfra.host.Host, agent: str, uid: int, runtime: str) -> None:
    before = limits(host, agent)
    limit_mb = before["HostConfig"]["Memory"] // 1024 ** 2
    hog = host.run(f"docker exec agentfleet-{agent}-1 {HOG} {limit_mb + 512}")
    assert hog.rc != 0 and str((limit_mb + 512) * 1024 ** 2) not in hog.stdout, (hog.rc, hog.stdout, hog.stderr)
    if runtime == "runc":
        assert hog.rc == 137  # SIGKILL from the OOM killer, to the hog alone
    contained(host, agent, runtime, before)


@pytest.mark.parametrize(("agent", "uid", "runtime"), LIMITED)
def test_control_with_room_the_same_allocation_succeeds(host: testinfra.host.Host, agent: str, uid: int,
                                                        runtime: str) -> None:
    limit_mb = limits(host, agent)["HostConfig"]["Memory"] // 1024 ** 2
    result = host.run(f"docker run --rm --runtime {runtime} --user {uid}:{uid} --memory {2 * limit_mb + 1024}m "
                      f"--entrypoint '' {image(host)} {HOG} {limit_mb + 512}")
    assert result.rc == 0 and result.stdout.strip() == str((limit_mb + 512) * 1024 ** 2)


REDIS = """
import socket, sys
def command(stream, *words):
    stream.sendall(b"".join([b"*%d\\r\\n" % len(words)] + [b"$%d\\r\\n%s\\r\\n" % (len(w), w) for w in words]))
    return stream.recv(4096).decode().strip()
stream = socket.create_connection(("redis", 6379), timeout=5)
password = open("/run/secrets/redis_password", "rb").read().strip()
print(command(stream, b"AUTH", sys.argv[1].encode(), password))
for key in sys.argv[2:]:
    print(command(stream, b"SET", key.encode(), b"1"))
"""


def redis(host: testinfra.host.Host, agent: str, user: str, *keys: str) -> list[str]:
    script = f"docker exec agentfleet-{agent}-1 python3 -c {shlex.quote(REDIS)} {user} {' '.join(keys)}"
    return str(host.check_output(script)).splitlines()


def test_redis_gives_each_agent_its_own_keys_only(host: testinfra.host.Host) -> None:
    auth, own, other = redis(host, "marie", "agent-marie", "marie:state", "anga:state")
    assert (auth, own) == ("+OK", "+OK") and other.startswith("-NOPERM"), other
    assert redis(host, "anga", "agent-anga", "anga:state") == ["+OK", "+OK"]  # the control: anga's own key


def test_an_agent_cannot_log_in_as_another_or_as_default(host: testinfra.host.Host) -> None:
    assert redis(host, "marie", "agent-anga")[0].startswith("-WRONGPASS")
    assert redis(host, "marie", "default")[0].startswith("-WRONGPASS")


def test_nothing_is_published_on_the_hosts_interfaces(host: testinfra.host.Host) -> None:
    published = host.check_output("docker ps --filter label=com.docker.compose.project=agentfleet "
                                  "--format '{{.Names}} {{.Ports}}'")
    assert "->" not in published, published


GVISOR_KERNEL = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"  # gVisor's, whatever the host runs
GVISOR_WORKERS = ("marie", "anga", "fabien", "lea")  # hand-written: the scenario's model says the same
RUNC_AGENTS = ("orchestrator", "monitor", "olga")


@pytest.mark.parametrize("agent", GVISOR_WORKERS + RUNC_AGENTS)
def test_the_workers_run_under_gvisor_and_the_rest_under_runc(host: testinfra.host.Host, agent: str) -> None:
    """gVisor answers with its own kernel; a runc agent (the control) sees the host's, so the check can fail."""
    config = json.loads(host.check_output(f"docker inspect agentfleet-{agent}-1"))[0]
    model = {item["name"]: item.get("runtime", "runc") for item in host.ansible.get_variables()["agent_model_agents"]}
    expected = "runsc" if agent in GVISOR_WORKERS else "runc"
    assert config["HostConfig"]["Runtime"] == model[agent] == expected
    kernel = host.check_output(f"docker exec agentfleet-{agent}-1 cat /proc/version")
    assert (kernel == GVISOR_KERNEL) == (agent in GVISOR_WORKERS), kernel
    assert (kernel == host.check_output("cat /proc/version")) == (agent in RUNC_AGENTS)
