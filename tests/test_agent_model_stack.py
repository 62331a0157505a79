"""What agent_model_stack derives from the default model, written out by hand.

These cases do not come from the matrix code, so a bug in it cannot pass its own test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_model import agent_model_errors, agent_model_host_errors, agent_model_stack

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())


def model(**overrides: Any) -> dict[str, Any]:
    values = {name.removeprefix("agent_model_"): value for name, value in DEFAULTS.items()}
    return {**values, **overrides}


@pytest.fixture(name="paths")
def fixture_paths() -> dict[str, dict[str, Any]]:
    assert agent_model_errors(model()) == []
    return {entry["path"]: entry for entry in agent_model_stack(model())["paths"]}


# path: (owner, group, mode, readers, writers)
EXPECTED = {
    "/srv/agentfleet/inbox/marie": ("agent-orchestrator", "agent-marie", "0750", "marie orchestrator", "orchestrator"),
    "/srv/agentfleet/results/anga": ("agent-anga", "agentfleet-observers", "0750", "anga monitor orchestrator", "anga"),
    "/srv/agentfleet/triggers/fabien": ("agent-orchestrator", "agent-fabien", "0770", "fabien orchestrator",
                                        "fabien orchestrator"),
    "/srv/agentfleet/workspaces/marie": ("agent-marie", "agent-marie", "0700", "marie", "marie"),
    "/srv/agentfleet/credentials/monitor": ("agent-monitor", "agent-monitor", "0700", "monitor", "monitor"),
    "/srv/agentfleet/heartbeats/anga": ("agent-anga", "agentfleet-observers", "0750", "anga monitor orchestrator", "anga"),
    "/srv/agentfleet/archive": ("agent-monitor", "agentfleet-observers", "0750", "monitor orchestrator", "monitor"),
    "/srv/agentfleet/common": ("root", "agentfleet-common", "3770", "anga fabien marie monitor orchestrator",
                               "anga fabien marie monitor orchestrator"),
    "/srv/agentfleet/services/redis": ("agentfleet-redis", "agentfleet-redis", "0700", "", ""),
    "/srv/agentfleet/retired": ("root", "root", "0700", "", ""),
}


@pytest.mark.parametrize("path", sorted(EXPECTED))
def test_paths_of_the_seed_stack(paths: dict[str, dict[str, Any]], path: str) -> None:
    entry = paths[path]
    owner, group, mode, readers, writers = EXPECTED[path]
    assert (entry["owner_name"], entry["group_name"], entry["mode"]) == (owner, group, mode)
    assert (entry["read"], entry["write"]) == (readers.split(), writers.split())


def test_the_monitor_gets_no_inbox_and_only_the_orchestrator_writes_its_own(paths: dict[str, dict[str, Any]]) -> None:
    inboxes = sorted(path for path in paths if path.startswith("/srv/agentfleet/inbox/"))
    assert inboxes == ["/srv/agentfleet/inbox/anga", "/srv/agentfleet/inbox/fabien", "/srv/agentfleet/inbox/marie",
                       "/srv/agentfleet/inbox/orchestrator"]
    goals = paths["/srv/agentfleet/inbox/orchestrator"]  # goals: from people, through the host's agentctl
    assert (goals["owner_name"], goals["group_name"], goals["mode"], goals["write"]) == (
        "agent-orchestrator", "agent-orchestrator", "0750", ["orchestrator"])


def test_the_integration_repository_is_written_by_the_orchestrator_and_read_by_the_project() -> None:
    stack = agent_model_stack(model(projects=[{"name": "shop", "source": "/srv/git/shop.git", "gid": 10950,
                                               "workers": ["marie"]}]))
    entry = next(p for p in stack["paths"] if p["path"] == "/srv/agentfleet/integration/shop")
    assert (entry["owner_name"], entry["group_name"], entry["mode"]) == ("agent-orchestrator", "agentfleet-project-shop", "0750")
    assert (entry["read"], entry["write"]) == (["marie", "orchestrator"], ["orchestrator"])
    assert stack["projects"][0]["publish"] == "approve"
    assert stack["projects"][0]["publish_branch"] == "agentfleet/{goal}"


def test_accounts_have_no_login_and_only_observers_read_results() -> None:
    users = {user["name"]: user for user in agent_model_stack(model())["users"]}
    assert users["agent-marie"]["groups"] == ["agentfleet-common"]
    assert users["agent-monitor"]["groups"] == ["agentfleet-common", "agentfleet-observers"]
    assert users["agent-marie"]["home"] == "/srv/agentfleet/workspaces/marie"
    assert (users["agent-marie"]["uid"], users["agent-marie"]["gid"]) == (10001, 10001)


def test_a_host_runs_only_its_selected_agents() -> None:
    stack = agent_model_stack(model(host_agents=["orchestrator", "anga"]))
    assert [agent["name"] for agent in stack["agents"]] == ["orchestrator", "anga"]
    assert not any("marie" in entry["path"] for entry in stack["paths"])


def test_defaults_fill_fields_an_agent_leaves_out() -> None:
    agents = [*DEFAULTS["agent_model_agents"][:4], {"name": "monitor", "kind": "monitor", "uid": 10004,
                                                     "resources": {"memory": "512m"}}]
    monitor = agent_model_stack(model(agents=agents))["agents"][-1]
    assert monitor["resources"] == {"cpus": 1.0, "memory": "512m", "pids": 256}
    assert monitor["backend"]["type"] == "claude" and monitor["runtime"] == "runc"


def test_accounts_agentfleet_created_may_be_reused_and_moved() -> None:
    stack = agent_model_stack(model())
    passwd = {"agent-marie": ["x", "10011", "10011", "", "", ""], "agent-old": ["x", "10001", "10001", "", "", ""]}
    owned = {"users": {"agent-marie": 10011, "agent-old": 10001}, "groups": {}}
    assert agent_model_host_errors(stack, passwd, {}, owned) == []
    assert agent_model_host_errors(stack, passwd, {}, {"users": {}, "groups": {}}) == [
        "user agent-marie: exists on the host and agentfleet did not create it",
        "user agent-marie: id 10001 belongs to host user agent-old, which agentfleet did not create",
    ]


def test_the_ollama_route_follows_the_kind_unless_the_agent_says() -> None:
    agents = [{**agent, "ollama": True} if agent["name"] == "anga" else
              {**agent, "ollama": False} if agent["name"] == "monitor" else agent
              for agent in DEFAULTS["agent_model_agents"]]
    assert agent_model_errors(model(agents=agents)) == []
    chosen = {agent["name"]: agent["ollama"] for agent in agent_model_stack(model(agents=agents))["agents"]}
    assert chosen == {"orchestrator": False, "marie": False, "anga": True, "fabien": False, "monitor": False}
    default = {agent["name"]: agent["ollama"] for agent in agent_model_stack(model())["agents"]}
    assert [name for name, uses in default.items() if uses] == ["monitor"]


def test_a_project_mirror_is_readable_by_its_workers_and_the_dispatcher_only() -> None:
    project = {"name": "shop", "source": "https://git.example.invalid/shop.git", "gid": 10950, "workers": ["marie"]}
    stack = agent_model_stack(model(projects=[project]))
    assert agent_model_errors(model(projects=[project])) == []
    paths = {entry["path"]: entry for entry in stack["paths"]}
    mirror = paths["/srv/agentfleet/projects/shop"]
    assert (mirror["owner_name"], mirror["group_name"], mirror["group"], mirror["mode"]) == (
        "root", "agentfleet-project-shop", 10950, "0750")
    assert (mirror["read"], mirror["write"]) == (["marie", "orchestrator"], [])
    members = sorted(user["name"] for user in stack["users"] if "agentfleet-project-shop" in user["groups"])
    assert members == ["agent-marie", "agent-orchestrator"]
    assert stack["projects"] == [{"name": "shop", "source": "https://git.example.invalid/shop.git", "branch": "main",
                                  "publish": "approve", "publish_branch": "agentfleet/{goal}",
                                  "mirror": "/srv/agentfleet/projects/shop", "integration": "/srv/agentfleet/integration/shop",
                                  "readers": ["marie", "orchestrator"]}]
    everyone = agent_model_stack(model(projects=[{**project, "workers": []}]))["projects"][0]["readers"]
    assert everyone == ["anga", "fabien", "marie", "orchestrator"]  # default: every agent that receives tasks


def test_project_sources_are_paths_or_git_urls_never_options() -> None:
    for source in ("/srv/git/shop.git", "https://git.example.invalid/shop.git", "git@git.example.invalid:acme/shop.git",
                   "ssh://git@git.example.invalid/shop.git"):
        assert agent_model_errors(model(projects=[{"name": "shop", "source": source, "gid": 10950}])) == [], source
    for source in ("-oProxyCommand@evil:x", "ext::sh -c touch% /tmp/x", "shop.git", "file:///srv/git/shop.git "):
        errors = agent_model_errors(model(projects=[{"name": "shop", "source": source, "gid": 10950}]))
        assert errors and ".source:" in errors[0], source


def test_a_fleet_host_gives_its_dispatcher_alone_an_outbox_and_a_single_host_none() -> None:
    fleet = {entry["path"]: entry for entry in agent_model_stack(model(fleet=True))["paths"]}
    outbox = fleet["/srv/agentfleet/outbox"]
    assert (outbox["owner_name"], outbox["group_name"], outbox["mode"]) == ("agent-orchestrator", "agent-orchestrator", "0700")
    assert (outbox["read"], outbox["write"]) == (["orchestrator"], ["orchestrator"])
    back = fleet["/srv/agentfleet/fleet"]
    assert (back["owner_name"], back["group_name"], back["mode"]) == ("agent-orchestrator", "agentfleet-observers", "0750")
    assert (back["read"], back["write"]) == (["monitor", "orchestrator"], ["orchestrator"])
    # Only a real true turns it on (the role passes agent_model_fleet | bool).
    for fleet_value in (False, "true", "{{ agentfleet_nats | default(false) }}"):
        paths = {entry["path"] for entry in agent_model_stack(model(fleet=fleet_value))["paths"]}
        assert not paths & {"/srv/agentfleet/outbox", "/srv/agentfleet/fleet"}


def test_no_projects_means_no_projects_directory() -> None:
    assert not [entry for entry in agent_model_stack(model())["paths"] if "/projects" in entry["path"]]


def test_the_gateway_policy_defaults_to_the_messages_api_and_merges_field_by_field() -> None:
    defaults = {**DEFAULTS["agent_model_defaults"], "gateway": {"rate_per_minute": 30}}
    agents = [*DEFAULTS["agent_model_agents"][:1],
              {"name": "marie", "kind": "worker", "uid": 10001, "gateway": {"tools": ["web_search"], "burst": 0}}]
    stack = agent_model_stack(model(agents=agents, defaults=defaults))
    marie = next(agent for agent in stack["agents"] if agent["name"] == "marie")
    assert marie["gateway"] == {"endpoints": ["POST /v1/messages", "POST /v1/messages/count_tokens"],
                                "tools": ["web_search"], "mcp_servers": [], "max_body_mb": 32, "rate_per_minute": 30,
                                "burst": 0, "connections": 8, "budget_requests": 0, "budget_tokens": 0}
    assert stack["agents"][0]["gateway"]["tools"] == []


@pytest.mark.parametrize(("gateway", "message"), [
    ({"endpoint": []}, "agent_model_agents[1] (marie).gateway.endpoint: unknown field"),
    ({"endpoints": ["GET /v1/../files"]}, "gateway.endpoints[0]: 'GET /v1/../files' does not look like"),
    ({"endpoints": "POST /v1/messages"}, "gateway.endpoints: must be a list"),
    ({"tools": ["Web Search"]}, "gateway.tools[0]"),
    ({"mcp_servers": ["http://mcp.example.com/"]}, "gateway.mcp_servers[0]"),
    ({"max_body_mb": 100}, "gateway.max_body_mb: 100 must be a whole number from 1 to 64"),
    ({"connections": True}, "gateway.connections: True must be"),
    ({"budget_tokens": -1}, "gateway.budget_tokens"),
    ("none", "agent_model_agents[1] (marie).gateway: must be a mapping"),
])
def test_a_bad_gateway_policy_is_refused_naming_the_field(gateway: Any, message: str) -> None:
    agents = [*DEFAULTS["agent_model_agents"][:1], {"name": "marie", "kind": "worker", "uid": 10001, "gateway": gateway}]
    errors = agent_model_errors(model(agents=agents))
    assert any(message in error for error in errors), errors


@pytest.mark.parametrize(("disk", "message"), [
    ({"gb": 1}, "agent_model_agents[1] (marie).disk.gb: unknown field (known: mb, files)"),
    ({"mb": 0}, "agent_model_agents[1] (marie).disk.mb: 0 must be a whole number from 1 to 100000000"),
    ({"files": "many"}, "disk.files: 'many' must be"),
    ([], "agent_model_agents[1] (marie).disk: must be a mapping with mb and files"),
])
def test_a_bad_disk_bound_is_refused_naming_the_field(disk: Any, message: str) -> None:
    agents = [*DEFAULTS["agent_model_agents"][:1], {"name": "marie", "kind": "worker", "uid": 10001, "disk": disk}]
    errors = agent_model_errors(model(agents=agents))
    assert any(message in error for error in errors), errors


def test_the_disk_bound_merges_field_by_field() -> None:
    defaults = {**DEFAULTS["agent_model_defaults"], "disk": {"files": 5000}}
    agents = [*DEFAULTS["agent_model_agents"][:1], {"name": "marie", "kind": "worker", "uid": 10001, "disk": {"mb": 64}}]
    stack = agent_model_stack(model(agents=agents, defaults=defaults))
    assert [agent["disk"] for agent in stack["agents"]] == [{"mb": 10240, "files": 5000}, {"mb": 64, "files": 5000}]


@pytest.mark.parametrize(("defaults", "message"), [
    ({"backend": {"type": "command", "argv": ["true"]}}, "agent_model_agents[0] (orchestrator).runtime: not set, here or in agent_model_defaults"),
    ({"backend": {"type": "command", "argv": ["true"]}}, "agent_model_agents[0] (orchestrator).image: not set"),
    ({**DEFAULTS["agent_model_defaults"], "resources": "big"}, "agent_model_defaults.resources: must be a mapping"),
])
def test_a_partial_defaults_dict_names_the_missing_field_instead_of_crashing(defaults: dict[str, Any], message: str) -> None:
    errors = agent_model_errors(model(defaults=defaults))
    assert any(message in error for error in errors), errors
