"""A fresh Debian 13 host after `scripts/deploy` ran twice on it with the local inventory, unedited
(converge): the deploy completed without a container registry, the second run changed nothing, the
stack runs healthy, and agentctl status names the model key nobody set yet."""

from __future__ import annotations

import json
import re

import testinfra.host

testinfra_hosts = ["ansible://fresh"]
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)", re.M)
SEED = ("orchestrator", "marie", "anga", "fabien", "monitor")


def recap(host: testinfra.host.Host, run: int) -> tuple[int, int, int]:
    log = host.file(f"/root/deploy-{run}.log").content_string
    found = [(int(m["changed"]), int(m["unreachable"]), int(m["failed"])) for m in RECAP.finditer(log)]
    assert len(found) == 1, log[-3000:]
    return found[0]


def test_the_first_deploy_completed_and_changed_the_host(host: testinfra.host.Host) -> None:
    changed, unreachable, failed = recap(host, 1)
    assert (unreachable, failed) == (0, 0) and changed > 0


def test_the_second_deploy_changed_nothing(host: testinfra.host.Host) -> None:
    assert recap(host, 2) == (0, 0, 0), host.file("/root/deploy-2.log").content_string[-3000:]


def test_the_base_was_built_from_debians_archive_with_no_registry(host: testinfra.host.Host) -> None:
    label = host.check_output("docker image inspect -f '{{ index .Config.Labels \"org.agentfleet.base\" }}' agentfleet/base:trixie")
    assert re.fullmatch(r"debootstrap trixie https?://\S+/debian/?", label), label
    # Nothing came from a registry: no image has a registry digest.
    digests = host.check_output("docker image ls --digests --format '{{.Repository}} {{.Digest}}'")
    assert all(line.split()[1] == "<none>" for line in digests.splitlines()), digests


def test_every_service_and_agent_runs_healthy(host: testinfra.host.Host) -> None:
    listing = host.check_output("docker ps -a --filter label=com.docker.compose.project=agentfleet --format json")
    states = {entry["Labels"].split("com.docker.compose.service=")[1].split(",")[0]: entry["Status"]
              for entry in map(json.loads, listing.splitlines())}
    assert set(SEED) | {"gateway", "egress", "dockerproxy"} <= set(states), states
    assert all("(healthy)" in status for status in states.values()), states


def test_status_names_the_missing_model_key_and_the_agents_that_need_it(host: testinfra.host.Host) -> None:
    status = host.check_output("agentctl status")
    line = next((line for line in status.splitlines() if line.startswith("model key")), "")
    assert "NOT SET" in line and "agentctl secret set model-key" in line, status
    assert all(agent in line for agent in ("orchestrator", "marie", "anga", "fabien")), line


def test_containers_get_the_open_files_the_host_grants(host: testinfra.host.Host) -> None:
    """The role's nofile default (65536) lowered to what this host's init may hold, where that is less."""
    ceiling = int(next(line.split()[4] for line in host.file("/proc/1/limits").content_string.splitlines()
                       if line.startswith("Max open files")))
    got = host.check_output("docker run --rm --entrypoint sh agentfleet/base:trixie -c 'ulimit -Hn'")
    assert int(got) == min(65536, ceiling)
