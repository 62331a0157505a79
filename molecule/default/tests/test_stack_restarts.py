"""A re-run that rewrites one service's configuration restarts that service and nothing else
(the handlers pick services by the files written). Runs after the removal test: it converges
the host once."""

from __future__ import annotations

import time

import testinfra.host
from test_playbook import STACK_PLAY, playbook, recap

testinfra_hosts = ["ansible://agentfleet_hosts"]
STACK_DIR = "/etc/agentfleet/stack"
# Each file is read by exactly one service; gateway, redis and every agent read neither.
TAMPERED = {"squid.conf": "egress", "haproxy.cfg": "dockerproxy"}


def started(host: testinfra.host.Host) -> dict[str, str]:
    listing = host.run("docker ps -a --filter label=com.docker.compose.project=agentfleet "
                       "--format '{{.Label \"com.docker.compose.service\"}} {{.ID}}'").stdout.split("\n")
    services = dict(line.split() for line in listing if line.strip())
    return {service: host.run(f"docker inspect -f '{{{{.State.StartedAt}}}}' {ident}").stdout.strip()
            for service, ident in services.items()}


def healthy(host: testinfra.host.Host, service: str) -> bool:
    state: str = host.run(f"docker inspect -f '{{{{.State.Health.Status}}}}' agentfleet-{service}-1").stdout
    return state.strip() == "healthy"


def test_a_rewritten_configuration_restarts_only_its_service(host: testinfra.host.Host) -> None:
    before = started(host)
    assert set(TAMPERED.values()) | {"gateway", "redis", "marie"} <= set(before), before
    for name in TAMPERED:
        host.run_test(f"echo '# changed by hand' >> {STACK_DIR}/{name}")
    result = playbook("--limit", "agentfleet-trixie", play=STACK_PLAY)
    assert result.returncode == 0, result.stdout[-3000:]
    # The file task and one handler per tampered file; nothing else.
    assert recap(result.stdout)["agentfleet-trixie"] == (1 + len(TAMPERED), 0), result.stdout[-3000:]
    for name in TAMPERED:
        assert "changed by hand" not in host.file(f"{STACK_DIR}/{name}").content_string
    after = started(host)
    assert set(after) == set(before)
    restarted = {service for service in before if after[service] != before[service]}
    assert restarted == set(TAMPERED.values()), f"restarted: {restarted}"
    deadline = time.monotonic() + 90
    while not all(healthy(host, service) for service in TAMPERED.values()) and time.monotonic() < deadline:
        time.sleep(2)
    assert all(healthy(host, service) for service in TAMPERED.values())


def test_a_rerun_brings_back_a_container_stopped_or_removed_by_hand(host: testinfra.host.Host) -> None:
    """A re-run skips compose when the project runs as declared (agent_stack_drift); a stopped and
    a removed container are drift, and the re-run's compose up brings both back."""
    host.run_test("docker stop agentfleet-egress-1 && docker rm -f agentfleet-lea-1")
    result = playbook("--limit", "agentfleet-trixie", play=STACK_PLAY)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)["agentfleet-trixie"] == (1, 0), result.stdout[-3000:]
    assert all(healthy(host, service) for service in ("egress", "lea"))
    again = playbook("--limit", "agentfleet-trixie", play=STACK_PLAY)
    assert recap(again.stdout)["agentfleet-trixie"] == (0, 0), again.stdout[-3000:]
    assert "skipping: [agentfleet-trixie]" in again.stdout.split("Deploy the stack and wait")[1].split("TASK")[0]
