"""playbooks/remove.yml on the converged Debian 13 host, the last test of the scenario (it takes
the stack down): no container, network, image, account or unit of ours is left, the data and the
secrets the host keeps stay, and a second run changes nothing."""

from __future__ import annotations

import json
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
    first = remove()
    assert first.returncode == 0, first.stdout[-3000:]
    assert recap(first.stdout)["agentfleet-trixie"][0] > 0
    assert host.run("docker ps -aq --filter label=com.docker.compose.project=agentfleet").stdout.strip() == ""
    networks = host.run("docker network ls --format '{{.Name}}'").stdout.split()
    assert not [name for name in networks if name.startswith("agentfleet")], networks
    images = host.run("docker image ls --format '{{.Repository}}'").stdout.split()
    assert not [name for name in images if name.startswith("agentfleet/")], images
    assert all(host.run(f"getent passwd {name}").rc == 2 for name in ACCOUNTS)
    units = host.run("systemctl list-unit-files --no-legend 'agentfleet*' 'ollama*'").stdout.strip()
    assert units == "", units
    for path in ("/usr/local/bin/agentctl", "/opt/agentfleet", "/etc/agentfleet/stack/compose.yml",
                 "/var/lib/agentfleet/images", "/opt/ollama"):
        assert not host.file(path).exists, path
    # Kept: the tree with its results, the account registry, the secrets, the models.
    assert host.run("ls /srv/agentfleet/results/marie").stdout.split() == results_before
    registry = json.loads(host.file("/var/lib/agentfleet/accounts.json").content_string)
    assert registry is not None
    assert host.file("/etc/agentfleet/stack/secrets/redis.password").exists
    assert host.file("/var/lib/ollama/models").is_directory
    # The engine stays, for whatever else the host runs.
    assert host.service("docker").is_running
    second = remove()
    assert second.returncode == 0 and recap(second.stdout)["agentfleet-trixie"] == (0, 0), second.stdout[-3000:]
