"""Disk bounds: the host's watcher counts what each agent's uid owns in the tree; olga (64 MiB in this
scenario) is stopped when she writes past hers, the others keep working, and the monitor and
agentctl report it. olga is given back her space and restarted at the end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
FILL = "/srv/agentfleet/workspaces/olga/agentfleet-disk-fill"


def report(host: testinfra.host.Host) -> dict[str, dict[str, object]]:
    agents: dict[str, dict[str, object]] = json.loads(host.check_output("cat /srv/agentfleet/disk/usage.json"))["agents"]
    return agents


def wait_for(condition: str, check: Callable[[], bool]) -> None:
    for _ in range(40):
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {condition}")


def running(host: testinfra.host.Host, container: str) -> bool:
    state: str = host.run(f"docker inspect -f '{{{{.State.Running}}}}' {container}").stdout.strip()
    return state == "true"


@pytest.fixture(name="olga_restored", scope="module")
def fixture_olga_restored(host: testinfra.host.Host) -> Iterator[None]:
    yield
    host.run(f"rm -f {FILL} /srv/agentfleet/workspaces/olga/agentfleet-host-link")
    wait_for("olga back under her bound", lambda: not report(host)["olga"]["over"])
    host.run("docker start agentfleet-olga-1")
    wait_for("olga healthy again", lambda: host.run(
        "docker inspect -f '{{.State.Health.Status}}' agentfleet-olga-1").stdout.strip() == "healthy")


def test_every_agent_is_counted_against_its_bound(host: testinfra.host.Host) -> None:
    agents = report(host)
    assert set(agents) == {"orchestrator", "marie", "anga", "fabien", "monitor", "lea", "olga"}
    assert agents["olga"]["bound_bytes"] == 64 * 1024 * 1024 and agents["marie"]["bound_bytes"] == 10240 * 1024 * 1024
    assert not any(state["over"] for state in agents.values()), agents
    table = host.check_output("agentctl disk")
    assert table.splitlines()[0].split() == ["AGENT", "MIB", "BOUND_MIB", "FILES", "BOUND_FILES", "STATE"]


def test_a_link_to_the_host_is_not_counted(host: testinfra.host.Host) -> None:
    host.check_output("docker exec agentfleet-olga-1 ln -sfn / /agentfleet/workspaces/olga/agentfleet-host-link")
    time.sleep(4)
    assert int(str(report(host)["olga"]["bytes"])) < 8 * 1024 * 1024  # not the host's gigabytes


def test_an_agent_filling_the_disk_is_stopped_at_its_bound_and_reported(host: testinfra.host.Host,
                                                                        olga_restored: None) -> None:
    written = host.run("docker exec agentfleet-olga-1 sh -c "
                       "'head -c 100000000 /dev/zero > /agentfleet/workspaces/olga/agentfleet-disk-fill; echo $?'")
    assert written.stdout.strip() == "0", written.stderr  # what it writes lands: the bound is not a quota
    wait_for("the watcher to stop olga", lambda: not running(host, "agentfleet-olga-1"))
    state = report(host)["olga"]
    assert state["over"] and state["stopped"], state
    assert "STOPPED: over its bound" in [line for line in host.check_output("agentctl disk").splitlines()
                                         if line.startswith("olga ")][0]
    wait_for("the monitor's report", lambda: '"event": "disk-over-bound", "of": "olga"' in host.run(
        "docker logs agentfleet-monitor-1 2>&1").stdout)
    # The others keep working: marie answers a task through the real CLI.
    done = host.run("agentctl submit --to marie --wait 120 'still working while olga is stopped'")
    assert done.rc == 0 and json.loads(done.stdout.split("\n", 1)[1])["status"] == "ok", done.stdout
    assert all(running(host, f"agentfleet-{name}-1") for name in ("orchestrator", "marie", "anga", "fabien", "monitor"))
