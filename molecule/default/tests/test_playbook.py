"""Controller-side checks: check mode on converged hosts, and bad input refused before changes.

These run ansible-playbook against Molecule's own inventory, so they see the same hosts and
variables as converge.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

CONVERGE = Path(__file__).resolve().parents[1] / "converge.yml"
# The image and stack plays alone, for the tests that change nothing else.
STACK_PLAY = CONVERGE.with_name("stack.yml")
# The plays a change of the agent model touches: validation, accounts and tree, images and stack.
MODEL_PLAY = CONVERGE.with_name("model.yml")
RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=\d+\s+changed=(?P<changed>\d+).*failed=(?P<failed>\d+)", re.M)


def playbook(*args: str, play: Path = CONVERGE) -> subprocess.CompletedProcess[str]:
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE") or str(
        Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    )
    # The inventory already says distro; repeating it guarantees that a wrong inventory can
    # never send a test host to Docker's repository on the internet.
    safety = ["-e", '{"docker_engine_install_source": "distro"}']
    command = ["ansible-playbook", "-i", inventory, str(play), *safety, *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)


def recap(output: str) -> dict[str, tuple[int, int]]:
    return {m["host"]: (int(m["changed"]), int(m["failed"])) for m in RECAP.finditer(output)}


def test_check_mode_on_converged_hosts_changes_nothing() -> None:
    result = playbook("--check", "--diff")
    assert result.returncode == 0, result.stdout[-3000:]
    hosts = recap(result.stdout)
    assert set(hosts) == {"agentfleet-trixie", "agentfleet-bookworm"}, result.stdout[-2000:]
    assert all(changed == 0 for changed, _ in hosts.values()), result.stdout[-3000:]


def refused(*args: str) -> str:
    result = playbook("--limit", "agentfleet-bookworm", *args)
    assert result.returncode != 0, result.stdout[-3000:]
    assert recap(result.stdout)["agentfleet-bookworm"][0] == 0, "changed something before refusing"
    return result.stdout + result.stderr


def test_compose_from_debian12_packages_is_refused_naming_the_source() -> None:
    out = refused("-e", '{"docker_engine_install_compose": true}')
    assert "docker_engine_install_compose: Debian-12 packages no Docker Compose v2" in out
    assert "docker_engine_install_source: docker" in out


def test_a_denied_account_already_in_the_docker_group_is_refused() -> None:
    out = refused("-e", '{"docker_engine_admin_users": [], "docker_engine_denied_users": ["alice"]}')
    assert "docker_engine_denied_users: alice already in the" in out


def test_an_unreadable_daemon_json_is_refused_and_kept() -> None:
    path = "/etc/docker/daemon.json"
    exec_ = ["docker", "exec", "agentfleet-bookworm"]
    saved = subprocess.run([*exec_, "cat", path], capture_output=True, text=True, check=True).stdout
    subprocess.run([*exec_, "sh", "-c", f"echo '{{broken' > {path}"], check=True)
    try:
        out = refused()
        assert f"{path} is not valid JSON" in out
        kept = subprocess.run([*exec_, "cat", path], capture_output=True, text=True, check=True).stdout
        assert kept == "{broken\n"
    finally:
        restore = ["docker", "exec", "-i", "agentfleet-bookworm", "sh", "-c", f"cat > {path}"]
        subprocess.run(restore, input=saved, text=True, check=True)
    assert subprocess.run([*exec_, "cat", path], capture_output=True, text=True, check=True).stdout == saved


def test_a_bad_agent_model_is_refused_before_any_change() -> None:
    model = [{"name": "orchestrator", "kind": "orchestrator", "uid": 10000},
             {"name": "marie", "kind": "worker", "uid": 10001}, {"name": "anga", "kind": "worker", "uid": 10001}]
    # No projects: the scenario's project names workers this model does not have.
    result = playbook("--limit", "agentfleet-trixie", "-e", json.dumps({"agent_model_agents": model,
                                                                          "agent_model_projects": []}))
    assert result.returncode != 0
    assert recap(result.stdout)["agentfleet-trixie"][0] == 0, result.stdout[-3000:]
    assert "uid: 10001 is used by both agent marie and agent anga" in result.stdout + result.stderr


def test_a_host_account_agentfleet_did_not_create_is_never_taken_over() -> None:
    model = [{"name": "orchestrator", "kind": "orchestrator", "uid": 10000},
             {"name": "zoe", "kind": "worker", "uid": 10005}]
    result = playbook("--limit", "agentfleet-trixie", "-e", json.dumps({"agent_model_agents": model,
                                                                          "agent_model_projects": []}))
    assert result.returncode != 0
    assert recap(result.stdout)["agentfleet-trixie"][0] == 0, result.stdout[-3000:]
    assert "user agent-zoe: exists on the host and agentfleet did not create it" in result.stdout + result.stderr
