"""Bad agent models fail before any change, with a message naming the field.

Runs the agent_model role (read-only: one agent_model_host call) against this machine in check mode;
the good-input control shows that each failure comes from its bad value alone.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "tests" / "playbooks" / "agent_model.yml"
SEED: list[dict[str, Any]] = [
    {"name": "orchestrator", "kind": "orchestrator", "uid": 10000},
    {"name": "marie", "kind": "worker", "uid": 10001},
    {"name": "anga", "kind": "worker", "uid": 10002},
    {"name": "monitor", "kind": "monitor", "uid": 10004},
]


def run(extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    command = ["ansible-playbook", "-i", "localhost,", str(PLAYBOOK), "--check", "-e", json.dumps(extra)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)


def agents(**changes: Any) -> list[dict[str, Any]]:
    """The seed agents with some fields changed, keyed by agent name."""
    return [{**agent, **changes.get(agent["name"], {})} for agent in SEED]


def test_the_default_model_and_a_custom_one_pass() -> None:
    for extra in ({}, {"agent_model_agents": SEED}):
        result = run(extra)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


SHOP = {"name": "shop", "source": "/srv/git/shop", "gid": 10950}
BAD_MODELS: list[tuple[str, dict[str, Any], str]] = [
    ("a project with an upper-case name", {"agent_model_projects": [{**SHOP, "name": "Shop"}]},
     "agent_model_projects[0] (Shop).name: 'Shop' does not match"),
    ("a project whose source is a relative path", {"agent_model_projects": [{**SHOP, "source": "git/shop"}]},
     "agent_model_projects[0] (shop).source: 'git/shop' is not an absolute path"),
    ("a project branch that reads as an option", {"agent_model_projects": [{**SHOP, "branch": "-delete"}]},
     ".branch: '-delete' is not a branch name"),
    ("a project branch with ..", {"agent_model_projects": [{**SHOP, "branch": "a/../b"}]}, "is not a branch name"),
    ("a project without a gid", {"agent_model_projects": [{"name": "shop", "source": "/srv/git/shop"}]},
     "agent_model_projects[0] (shop).gid: None is not an integer"),
    ("a project gid taken by a group", {"agent_model_projects": [{**SHOP, "gid": 10901}]},
     "gid: 10901 is used by both"),
    ("a project worker not in the model", {"agent_model_projects": [{**SHOP, "workers": ["zoe"]}]},
     ".workers: ['zoe'] are not in agent_model_agents"),
    ("a project publishing mode that does not exist", {"agent_model_projects": [{**SHOP, "publish": "always"}]},
     "agent_model_projects[0] (shop).publish: 'always' is not one of ['approve', 'on_completion', 'never']"),
    ("a publish branch with another placeholder", {"agent_model_projects": [{**SHOP, "publish_branch": "x/{task}"}]},
     ".publish_branch: 'x/{task}' is not a branch name"),
    ("a publish branch that reads as an option", {"agent_model_projects": [{**SHOP, "publish_branch": "-f{goal}"}]},
     ".publish_branch: '-f{goal}' is not a branch name"),
    ("an unknown project key", {"agent_model_projects": [{**SHOP, "deploy_key": "x"}]}, "unknown keys ['deploy_key']"),
    ("two projects of one name", {"agent_model_projects": [SHOP, {**SHOP, "gid": 10951}]},
     "agent_model_projects[].name: 'shop' is used by both projects[0] and projects[1]"),
    ("upper-case name", {"agent_model_agents": agents(marie={"name": "Marie"})},
     "agent_model_agents[1] (Marie).name: 'Marie' does not match"),
    ("name of 32 characters", {"agent_model_agents": agents(marie={"name": "m" * 32})}, ".name: 'mmmm"),
    ("name with a slash", {"agent_model_agents": agents(marie={"name": "../etc"})}, "does not match ^[a-z]"),
    ("duplicate names", {"agent_model_agents": agents(anga={"name": "marie"})},
     "agent_model_agents[].name: 'marie' is used by both agents[1] and agents[2]"),
    ("duplicate uids", {"agent_model_agents": agents(anga={"uid": 10001})},
     "uid: 10001 is used by both agent marie and agent anga"),
    ("duplicate gids", {"agent_model_agents": agents(anga={"gid": 10001})},
     "gid: 10001 is used by both agent marie and agent anga"),
    ("uid below the floor", {"agent_model_agents": agents(marie={"uid": 1001})},
     "agent_model_agents[1] (marie).uid: 1001 is below agent_model_uid_floor 10000"),
    ("uid 0 even with floor 0", {"agent_model_uid_floor": 0, "agent_model_agents": agents(marie={"uid": 0})},
     "agent_model_agents[1] (marie).uid: 0 is root"),
    ("floor raised above the agents", {"agent_model_uid_floor": 10002},
     "agent_model_agents[0] (orchestrator).uid: 10000 is below agent_model_uid_floor 10002"),
    ("unknown kind", {"agent_model_agents": agents(marie={"kind": "wizard"})},
     "agent_model_agents[1] (marie).kind: 'wizard' is not one of ['monitor', 'orchestrator', 'worker']"),
    ("two orchestrators", {"agent_model_agents": agents(anga={"kind": "orchestrator"})},
     "runs 2 agent(s) of kind orchestrator, needs exactly 1"),
    ("no orchestrator on this host", {"agent_model_agents": SEED, "agent_model_host_agents": ["marie", "monitor"]},
     "runs 0 agent(s) of kind orchestrator, needs exactly 1"),
    ("host runs an agent not in the model", {"agent_model_host_agents": ["orchestrator", "zoe"]},
     "agent_model_host_agents: ['zoe'] are not in agent_model_agents"),
    ("name of an existing host account", {"agent_model_account_prefix": "", "agent_model_agents": agents(
        marie={"name": "daemon"})}, "user daemon: exists on the host and agentfleet did not create it"),
    ("uid of an existing host account", {"agent_model_agents": agents(marie={"uid": 65534})},
     "user agent-marie: id 65534 belongs to host user nobody, which agentfleet did not create"),
    ("missing uid", {"agent_model_agents": [{"name": "x", "kind": "worker"}]}, "uid"),
    ("misspelt field", {"agent_model_agents": agents(marie={"uuid": 10001})}, "uuid"),
    ("uid not a number", {"agent_model_agents": agents(marie={"uid": "many"})}, "uid"),
    ("relative root", {"agent_model_root": "srv/agentfleet"}, "agent_model_root: 'srv/agentfleet' must be an absolute"),
    ("root is a system directory", {"agent_model_root": "/etc"}, "agent_model_root: '/etc' must be a normalised path"),
    ("memory without a unit", {"agent_model_agents": agents(marie={"resources": {"memory": "lots"}})},
     "agent_model_agents[1] (marie).resources.memory: 'lots' must look like 512m or 2g"),
    ("unknown backend", {"agent_model_agents": agents(marie={"backend": {"type": "gpt"}})},
     "agent_model_agents[1] (marie).backend.type: 'gpt' is not one of"),
    ("command backend without argv", {"agent_model_agents": agents(marie={"backend": {"type": "command"}})},
     "agent_model_agents[1] (marie).backend.argv: the command backend needs an argv list"),
    ("shared group below the floor", {"agent_model_common_gid": 100},
     "agent_model_common_gid: 100 is below agent_model_uid_floor"),
    ("shared group gid taken by an agent", {"agent_model_observers_gid": 10002},
     "gid: 10002 is used by both agent_model_observers_gid and agent anga"),
    ("a kind name with an escape sequence", {"agent_model_kinds": {"orchestrator": {"min": 1, "max": 1, "dispatches": True},
                                                                   "Work\x1b[2J": {}}},
     "agent_model_kinds.Work\x1b[2J: the kind name does not match"),
    ("unknown capability in a kind", {"agent_model_kinds": {"orchestrator": {"dispatch": True}}},
     "agent_model_kinds.orchestrator: unknown keys ['dispatch']"),
    ("two archivers", {"agent_model_kinds": {"orchestrator": {"min": 1, "max": 1, "dispatches": True, "archives": True},
                                             "worker": {"receives_tasks": True}, "monitor": {"archives": True}}},
     "only one agent per host may hold archives, found ['orchestrator', 'monitor']"),
    ("service uid clashes with an agent", {"agent_model_services": [{"name": "redis", "uid": 10003},
                                                                    {"name": "gateway", "uid": 10801},
                                                                    {"name": "dockerproxy", "uid": 10802},
                                                                    {"name": "egress", "uid": 10803}]},
     "uid: 10003 is used by both agent fabien and service redis"),
    ("raw IP in an egress allowlist", {"agent_model_agents": agents(anga={"egress": ["registry.npmjs.org", "10.1.2.3"]})},
     "agent_model_agents[2] (anga).egress[1]: '10.1.2.3' is not a domain name"),
    ("wildcard in an egress allowlist", {"agent_model_agents": agents(anga={"egress": ["*.npmjs.org"]})},
     "agent_model_agents[2] (anga).egress[0]: '*.npmjs.org' is not a domain name"),
    ("ollama backend on an agent without the route", {"agent_model_agents": agents(
        anga={"backend": {"type": "ollama", "model": "llama3.2:1b"}})},
     "agent_model_agents[2] (anga).backend.type: ollama needs the agent's route to Ollama; set ollama: true"),
    ("ollama not a boolean", {"agent_model_agents": agents(anga={"ollama": "sometimes"})}, "ollama"),
    ("a required service removed", {"agent_model_services": [{"name": "redis", "uid": 10800}]},
     "agent_model_services: the stack needs dockerproxy, egress, gateway (set their uid, do not remove them)"),
]


@pytest.mark.parametrize(("extra", "message"), [case[1:] for case in BAD_MODELS], ids=[case[0] for case in BAD_MODELS])
def test_bad_model_is_refused_naming_the_field(extra: dict[str, Any], message: str) -> None:
    result = run(extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in output, output[-3000:]
    assert "changed=0" in result.stdout, output[-3000:]


def test_the_validation_play_refuses_a_deploy_key_for_no_project(tmp_path: Path) -> None:
    """Before the engine, the accounts or anything else: the first play of site.yml."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[agentfleet_hosts]\nlocalhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n")
    extra = {"agent_model_agents": SEED, "agent_projects_deploy_keys": {"nope": "not a key"},
             "agent_stack_api_key": "sk-ant-test-key"}
    done = subprocess.run(["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / "validate.yml"), "--check",
                           "-e", json.dumps(extra)], cwd=ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode != 0
    assert "agent_projects_deploy_keys: nope not in agent_model_projects" in done.stdout
    assert "not a key" not in done.stdout + done.stderr
