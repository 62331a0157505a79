"""playbooks/remove.yml on one host of the fleet, the last test of the scenario (that host leaves
the cluster): its relay and NATS server, their units, configuration, certificates, client and the
relay's account are gone; the streams' storage (the fleet's data) stays; a second run changes
nothing; the two other hosts go on sending and running tasks."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import testinfra.host
from test_relay_service import agentctl, on, start_worker

testinfra_hosts = ["ansible://agentfleet-fleet-gamma"]
ROOT = Path(__file__).resolve().parents[3]
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+)", re.M)


def remove() -> tuple[int, str]:
    """The playbook's run on gamma: (tasks changed there, its output); it must succeed."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")
    run = subprocess.run(["ansible-playbook", "-i", inventory, "--limit", "agentfleet-fleet-gamma",
                          str(ROOT / "playbooks" / "remove.yml")], capture_output=True, text=True, check=False, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    found = {m["host"]: int(m["changed"]) for m in RECAP.finditer(run.stdout)}
    return found.get("agentfleet-fleet-gamma", -1), run.stdout


def test_remove_takes_the_relay_and_nats_off_a_host_keeping_the_fleets_data(host: testinfra.host.Host) -> None:
    assert host.service("agentfleet-relay").is_running and host.file("/var/lib/agentfleet/nats").is_directory
    changed, output = remove()
    assert changed > 0, output[-3000:]
    units = host.run("systemctl list-unit-files --no-legend 'agentfleet*'").stdout.split("\n")
    ours = [line for line in units if line.strip() and not line.startswith("agentfleet-test-")]
    assert ours == [], ours
    assert not host.process.filter(comm="nats-server") and "agentfleet_relay" not in host.check_output("ps -eo args")
    for path in ("/etc/agentfleet/nats", "/opt/agentfleet/nats"):
        assert not host.file(path).exists, path
    assert host.run("getent passwd agentfleet-relay").rc == 2 and host.run("getent group agentfleet-relay").rc == 2
    assert host.file("/var/lib/agentfleet/nats").is_directory  # the streams' storage: the fleet's data
    again, output = remove()
    assert again == 0, output[-3000:]


def test_the_other_hosts_go_on_without_it() -> None:
    """The streams had a replica on gamma: two of three are still a majority."""
    start_worker("agentfleet-fleet-beta", "lea", "after-teardown-lea", "echo done {task_id}")
    try:
        output = agentctl("submit", "--to", "lea", "--wait", "90", "after gamma left")
    finally:
        on("agentfleet-fleet-beta").run("systemctl stop agentfleet-test-after-teardown-lea")
    assert '"status": "ok"' in output, output
