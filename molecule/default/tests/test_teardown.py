"""playbooks/remove.yml on the converged Debian 13 host, the last test of the scenario (it takes
the stack down): no container, network, image, account or unit of ours is left, the data and the
secrets the host keeps stay, someone else's container and the image it runs from are left alone,
and a run with nothing left to remove changes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import testinfra.host
from test_playbook import recap

testinfra_hosts = ["ansible://agentfleet-trixie"]
ROOT = Path(__file__).resolve().parents[3]
ACCOUNTS = ("agent-orchestrator", "agent-marie", "agent-anga", "agent-fabien", "agent-monitor", "agent-lea",
            "agentfleet-gateway", "agentfleet-redis", "agentfleet-egress", "agentfleet-dockerproxy", "ollama")


def remove() -> subprocess.CompletedProcess[str]:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")
    return subprocess.run(["ansible-playbook", "-i", inventory, "--limit", "agentfleet-trixie", str(ROOT / "playbooks" / "remove.yml")],
                          capture_output=True, text=True, check=False, timeout=600)


def test_remove_leaves_nothing_of_ours_but_the_data_and_a_second_run_changes_nothing(host: testinfra.host.Host) -> None:
    results_before = host.run("ls /srv/agentfleet/results/marie").stdout.split()
    assert results_before, "no result to keep: the scenario ran no task"
    # The scenario's own Messages-API endpoint is a container outside the stack that runs from the
    # agent image, on the stack's egress network: someone else's. It is left running, detached,
    # and the image it runs from stays.
    first = remove()
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)["agentfleet-trixie"][0] > 0
    assert "used by containers that are not agentfleet's" in first.stdout
    assert host.run("docker inspect -f '{{.State.Running}}' agentfleet-test-messages-api").stdout.strip() == "true"
    host.run_test("docker rm -f agentfleet-test-messages-api")
    again = remove()  # now the agent image goes too
    assert again.returncode == 0 and recap(again.stdout)["agentfleet-trixie"][0] > 0, again.stdout[-3000:]
    assert host.run("docker ps -aq --filter label=com.docker.compose.project=agentfleet").stdout.strip() == ""
    networks = host.run("docker network ls --format '{{.Name}}'").stdout.split()
    assert not [name for name in networks if name.startswith("agentfleet")], networks
    images = host.run("docker image ls --format '{{.Repository}}'").stdout.split()
    assert not [name for name in images if name.startswith("agentfleet")], images
    assert all(host.run(f"getent passwd {name}").rc == 2 for name in ACCOUNTS)
    units = host.run("systemctl list-unit-files --no-legend 'agentfleet*' 'ollama*'").stdout.split("\n")
    # agentfleet-test-*: the scenario's own outside world (prepare), not agentfleet's.
    ours = [line for line in units if line.strip() and not line.startswith("agentfleet-test-")]
    assert ours == [], ours
    for path in ("/usr/local/bin/agentctl", "/opt/agentfleet", "/etc/agentfleet/stack/compose.yml",
                 "/var/lib/agentfleet/images", "/opt/ollama"):
        assert not host.file(path).exists, path
    # Kept: the tree with its results, the account registry, the secrets, the models.
    assert host.run("ls /srv/agentfleet/results/marie").stdout.split() == results_before
    assert host.file("/var/lib/agentfleet/accounts.json").exists
    assert host.file("/etc/agentfleet/stack/secrets/redis.password").exists
    assert host.file("/var/lib/ollama/models").is_directory
    # The engine stays, for whatever else the host runs.
    assert host.service("docker").is_running
    last = remove()
    assert last.returncode == 0 and recap(last.stdout)["agentfleet-trixie"] == (0, 0), last.stdout[-3000:]
