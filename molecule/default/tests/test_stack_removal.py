"""Removing a worker from the model removes its container and retires its data; putting it
back brings both back. Runs last: it deploys the
model's plays twice."""

from __future__ import annotations

import json

import testinfra.host
from test_playbook import MODEL_PLAY, playbook, recap

testinfra_hosts = ["ansible://agentfleet_hosts"]


def test_a_worker_removed_from_the_model_loses_its_container_and_keeps_its_data(host: testinfra.host.Host) -> None:
    variables = host.ansible.get_variables()
    model = [agent for agent in variables["agent_model_agents"] if agent["name"] != "lea"]
    # The model refuses a project that names an agent it no longer has: lea leaves her project too.
    projects = [{**project, "workers": [name for name in project.get("workers", []) if name != "lea"]}
                for project in variables["agent_model_projects"]]
    host.run("echo draft > /srv/agentfleet/workspaces/lea/draft.txt")
    removed = playbook("--limit", "agentfleet-trixie", "-e", json.dumps({"agent_model_agents": model,
                                                                           "agent_model_projects": projects}),
                       play=MODEL_PLAY)
    assert removed.returncode == 0, removed.stdout[-3000:]
    try:
        names = host.run("docker ps -a --format '{{.Names}}'").stdout.split()
        assert "agentfleet-lea-1" not in names and "agentfleet-marie-1" in names
        assert not host.user("agent-lea").exists
        assert host.run("cat /srv/agentfleet/retired/lea/*/workspaces/draft.txt").stdout == "draft\n"
    finally:
        restored = playbook("--limit", "agentfleet-trixie", play=MODEL_PLAY)
    assert restored.returncode == 0, restored.stdout[-3000:]
    assert recap(restored.stdout)["agentfleet-trixie"][1] == 0
    assert host.run("docker inspect -f '{{.State.Health.Status}}' agentfleet-lea-1").stdout.strip() == "healthy"
