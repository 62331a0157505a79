"""The engine on each test host: running, with the hardened settings really in effect."""

from __future__ import annotations

import ipaddress
import json

import pytest
import testinfra.host

MIN_COMPOSE = (2, 18)


def docker(host: testinfra.host.Host, command: str) -> str:
    result = host.run(f"docker {command}")
    assert result.rc == 0, f"docker {command}: {result.stderr}"
    return str(result.stdout).strip()


def role_var(host: testinfra.host.Host, name: str) -> object:
    return host.ansible.get_variables().get(name)


def test_service_is_running_and_enabled(host: testinfra.host.Host) -> None:
    service = host.service("docker")
    assert service.is_running
    assert service.is_enabled


def test_nested_container_runs(host: testinfra.host.Host, image: str) -> None:
    assert docker(host, f"run --rm {image} echo nested-ok") == "nested-ok"


def test_compose_v2_is_recent_enough(host: testinfra.host.Host) -> None:
    if role_var(host, "docker_engine_install_compose") is False:
        pytest.skip("engine-only host: Debian 12 packages no Compose v2, the inventory turns it off")
    version = docker(host, "compose version --short").lstrip("v")
    assert tuple(int(part) for part in version.split(".")[:2]) >= MIN_COMPOSE, version


def test_no_new_privileges_applies_to_every_container(host: testinfra.host.Host, image: str) -> None:
    status = docker(host, f"run --rm {image} grep ^NoNewPrivs: /proc/self/status")
    assert status.split() == ["NoNewPrivs:", "1"]


def test_default_nofile_ulimit_applies(host: testinfra.host.Host, image: str) -> None:
    wanted = host.ansible.get_variables()["docker_engine_default_ulimits"]["nofile"]
    limits = docker(host, f"run --rm {image} bash -c 'ulimit -Sn; ulimit -Hn'")
    assert limits.split() == [str(wanted["Soft"]), str(wanted["Hard"])]


def test_containers_log_with_rotation(host: testinfra.host.Host, image: str, cleanup: list[str]) -> None:
    cleanup.append("af-log")
    docker(host, f"run -d --name af-log {image} sleep 60")
    log_config = json.loads(docker(host, "inspect -f '{{json .HostConfig.LogConfig}}' af-log"))
    assert log_config["Type"] == "json-file"
    assert log_config["Config"]["max-size"] == "10m"
    assert log_config["Config"]["max-file"] == "3"


def test_foreign_daemon_keys_survive_and_work(host: testinfra.host.Host, image: str) -> None:
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-opts"]["labels"] == "agentfleet.probe"
    assert "agentfleet-probe" in json.loads(docker(host, "info -f '{{json .Runtimes}}'"))
    assert docker(host, f"run --rm --runtime agentfleet-probe {image} echo ok") == "ok"


def test_daemon_json_passes_dockerd_validation(host: testinfra.host.Host) -> None:
    if host.run("dockerd --validate --help").rc != 0:
        pytest.skip("dockerd < 23 has no --validate (Debian 12 ships 20.10)")
    docker_result = host.run("dockerd --validate --config-file /etc/docker/daemon.json")
    assert docker_result.rc == 0, docker_result.stderr


def test_networks_come_from_the_default_pool(host: testinfra.host.Host, cleanup: list[str]) -> None:
    cleanup.append("af-pool")
    docker(host, "network create af-pool")
    subnet = docker(host, "network inspect -f '{{(index .IPAM.Config 0).Subnet}}' af-pool")
    assert ipaddress.IPv4Network(subnet).subnet_of(ipaddress.IPv4Network("172.20.0.0/14")), subnet


LISTENER = (
    "perl -MIO::Socket::INET -e '$s=IO::Socket::INET->new(LocalPort=>8080,Listen=>5,ReuseAddr=>1)"
    " or die; while($c=$s->accept){print $c qq(hello\\n); close $c}'"
)


def connects(host: testinfra.host.Host, image: str, network: str, address: str) -> bool:
    probe = f"timeout 3 bash -c 'exec 3<>/dev/tcp/{address}/8080 && head -n1 <&3'"
    return str(host.run(f"docker run --rm --network {network} {image} {probe}").stdout).strip() == "hello"


def test_icc_is_off_on_the_default_bridge(host: testinfra.host.Host, image: str, cleanup: list[str]) -> None:
    cleanup.extend(["af-icc-control", "af-listen"])
    docker(host, f"run -d --name af-listen {image} {LISTENER}")
    docker(host, "network create af-icc-control")
    docker(host, "network connect af-icc-control af-listen")
    addresses = json.loads(docker(host, "inspect -f '{{json .NetworkSettings.Networks}}' af-listen"))
    # Control: the same probe does connect where icc is on, so a refusal below means icc.
    assert connects(host, image, "af-icc-control", addresses["af-icc-control"]["IPAddress"])
    assert not connects(host, image, "bridge", addresses["bridge"]["IPAddress"])


def test_published_ports_use_no_userland_proxy(host: testinfra.host.Host, image: str, cleanup: list[str]) -> None:
    cleanup.append("af-publish")
    docker(host, f"run -d --name af-publish -p 127.0.0.1:18080:8080 {image} {LISTENER}")
    assert host.run("pgrep -x docker-proxy").rc == 1, "a docker-proxy process serves the port"


def test_live_restore_keeps_containers_across_restart(host: testinfra.host.Host, image: str, cleanup: list[str]) -> None:
    cleanup.append("af-live")
    docker(host, f"run -d --name af-live {image} sleep 300")
    before = docker(host, "inspect -f '{{.State.Pid}}' af-live")
    assert host.run("systemctl restart docker").rc == 0
    assert host.run("timeout 60 sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done'").rc == 0
    assert docker(host, "inspect -f '{{.State.Running}} {{.State.Pid}}' af-live") == f"true {before}"


def test_dockerd_gets_the_drop_in_environment(host: testinfra.host.Host) -> None:
    environment = host.run("systemctl show docker -p Environment").stdout
    assert "DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1" in environment


def test_admins_are_in_the_docker_group_and_agents_are_not(host: testinfra.host.Host) -> None:
    assert "docker" in host.user("alice").groups
    agent = "agent-marie" if "agentfleet_hosts" in host.ansible.get_variables()["group_names"] else "agent-test"
    assert "docker" not in host.user(agent).groups
