"""The compose project derived from the default model, and the stack's input checks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_model import agent_model_stack
from agent_stack import (DIGEST_LABEL, agent_stack_compose, agent_stack_drift, agent_stack_input_errors, agent_stack_leaving,
                         agent_stack_networks, agent_stack_runtime_tree, agent_stack_status_url)

ROOT = Path(__file__).resolve().parents[1]
MODEL = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())
STACK = yaml.safe_load((ROOT / "roles" / "agent_stack" / "defaults" / "main.yml").read_text())
SETTINGS = {**{name.removeprefix("agent_stack_"): value for name, value in STACK.items()}, "docker_gid": 998}
IMAGES = {"agent": "agentfleet/agent:abc", "redis": "agentfleet/redis:abc", "gateway": "agentfleet/gateway:abc",
          "dockerproxy": "agentfleet/dockerproxy:abc", "egress": "agentfleet/egress:abc"}
READ_PATHS = yaml.safe_load((ROOT / "roles" / "agent_stack" / "vars" / "main.yml").read_text())[
    "__agent_stack_dockerproxy_read_paths"].strip("'")


def default_stack(redis: tuple[str, ...] = ()) -> dict[str, Any]:
    model = {name.removeprefix("agent_model_"): value for name, value in MODEL.items()}
    model["agents"] = [{**agent, "redis": True} if agent["name"] in redis else agent for agent in model["agents"]]
    return agent_model_stack(model)


@pytest.fixture(name="compose")
def fixture_compose() -> dict[str, Any]:
    """The seed stack with every agent but the monitor on redis."""
    return agent_stack_compose(default_stack(("orchestrator", "marie", "anga", "fabien")), IMAGES, SETTINGS)


def test_redis_is_off_unless_an_agent_asks_for_it() -> None:
    compose = agent_stack_compose(default_stack(), IMAGES, SETTINGS)
    assert "redis" not in compose["services"] and not any(name.startswith("redis") for name in compose["secrets"])
    assert all(not spec.get("secrets") and "AGENTFLEET_REDIS_USER" not in spec["environment"]
               for name, spec in compose["services"].items() if name in ("marie", "monitor"))
    assert agent_stack_input_errors(SETTINGS, "sk-ant-good", "", "https://api.anthropic.com", default_stack()) == []
    with_redis = default_stack(("marie",))
    compose = agent_stack_compose(with_redis, IMAGES, SETTINGS)
    assert sorted(compose["services"]["redis"]["networks"]) == ["agent_marie"]
    assert compose["services"]["marie"]["secrets"] == [{"source": "redis_marie", "target": "redis_password"}]
    assert not compose["services"]["anga"]["secrets"] and "redis_anga" not in compose["secrets"]
    # With redis on, an empty password is made on the host; a given one must be strong.
    assert agent_stack_input_errors(SETTINGS, "sk-ant-good", "", "https://api.anthropic.com", with_redis) == []
    errors = agent_stack_input_errors(SETTINGS, "sk-ant-good", "short", "https://api.anthropic.com", with_redis)
    assert errors == ["agent_stack_redis_password: at least 16 letters, digits, _ or - (or empty: made on the host)"]


def test_marie_mounts_only_her_own_paths(compose: dict[str, Any]) -> None:
    assert sorted(compose["services"]["marie"]["volumes"]) == sorted([
        "/srv/agentfleet/common:/agentfleet/common:rw",
        "/srv/agentfleet/inbox/marie:/agentfleet/inbox/marie:ro",
        "/srv/agentfleet/results/marie:/agentfleet/results/marie:rw",
        "/srv/agentfleet/triggers/marie:/agentfleet/triggers/marie:rw",
        "/srv/agentfleet/heartbeats/marie:/agentfleet/heartbeats/marie:rw",
        "/srv/agentfleet/logs/marie:/agentfleet/logs/marie:rw",
        "/srv/agentfleet/workspaces/marie:/agentfleet/workspaces/marie:rw",
        "/srv/agentfleet/credentials/marie:/agentfleet/credentials/marie:rw",
    ])


def test_the_orchestrator_writes_inboxes_and_reads_results(compose: dict[str, Any]) -> None:
    volumes = compose["services"]["orchestrator"]["volumes"]
    assert "/srv/agentfleet/inbox/anga:/agentfleet/inbox/anga:rw" in volumes
    assert "/srv/agentfleet/results/anga:/agentfleet/results/anga:ro" in volumes
    assert not any("workspaces/anga" in volume or "credentials/anga" in volume for volume in volumes)


@pytest.mark.parametrize("name", ["orchestrator", "marie", "anga", "fabien", "monitor", "gateway", "redis", "dockerproxy"])
def test_every_container_is_hardened(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["cap_drop"] == ["ALL"] and service["read_only"] is True
    assert service["security_opt"] == ["no-new-privileges:true"]
    assert not str(service["user"]).startswith("0:") and service["pids_limit"] >= 32
    assert any(entry.startswith("/tmp:") and "noexec" in entry for entry in service["tmpfs"])
    assert "healthcheck" in service


def test_only_the_docker_proxy_has_the_socket_and_only_the_monitor_reaches_it(compose: dict[str, Any]) -> None:
    holders = [name for name, service in compose["services"].items() if "docker.sock" in str(service)]
    assert holders == ["dockerproxy"]
    assert compose["services"]["dockerproxy"]["group_add"] == ["998"]
    on_network = sorted(name for name, service in compose["services"].items() if "dockerapi" in service["networks"])
    assert on_network == ["dockerproxy", "monitor"] and compose["networks"]["dockerapi"]["internal"] is True


ALLOWED = ["/_ping", "/v1.45/_ping", "/version", "/events", "/containers/json", "/v1.41/containers/abc123/json",
           "/containers/agentfleet-gateway-1/logs"]
DENIED = ["/containers/create", "/v1.45/containers/create", "/containers/abc/exec", "/exec/abc/start",
          "/containers/abc/archive", "/containers/abc/export", "/containers/../json", "/containers/abc/json/x",
          "/images/json", "/info", "/v1.45/containers/abc%2F..%2Fcreate/json", "/_ping/../containers/create"]


@pytest.mark.parametrize("path", ALLOWED)
def test_the_docker_proxy_lets_read_paths_through(path: str) -> None:
    assert re.search(READ_PATHS, path)


@pytest.mark.parametrize("path", DENIED)
def test_the_docker_proxy_denies_every_other_path(path: str) -> None:
    assert not re.search(READ_PATHS, path)


def test_agents_carry_a_placeholder_key_and_call_the_gateway(compose: dict[str, Any]) -> None:
    environment = compose["services"]["anga"]["environment"]
    assert environment["ANTHROPIC_BASE_URL"] == "http://gateway:8080"
    assert environment["ANTHROPIC_API_KEY"].startswith("sk-ant-placeholder")
    assert "egress" in compose["services"]["gateway"]["networks"] and "egress" not in compose["services"]["anga"]["networks"]


def test_each_agent_has_its_own_network_with_the_services_and_no_other_agent(compose: dict[str, Any]) -> None:
    agents = ["orchestrator", "marie", "anga", "fabien", "monitor"]
    for name in agents:
        network = f"agent_{name}"
        members = sorted(service for service, spec in compose["services"].items() if network in spec["networks"])
        assert members == sorted([name, "gateway", "egress"] + (["redis"] if name != "monitor" else [])), (name, members)
        assert compose["networks"][network]["internal"] is True
        assert compose["networks"][network]["driver_opts"] == {"com.docker.network.bridge.inhibit_ipv4": "true"}
    assert compose["services"]["anga"]["networks"]["agent_anga"] == {"ipv4_address": "10.213.113.66"}
    assert [name for name, spec in compose["networks"].items() if not spec.get("internal")] == ["egress"]
    outside = sorted(service for service, spec in compose["services"].items() if "egress" in spec["networks"])
    assert outside == ["egress", "gateway"]


def test_network_slots_follow_the_uid_and_collisions_are_refused() -> None:
    stack = default_stack()
    networks = agent_stack_networks(stack, "10.213.0.0/16")
    assert networks["anga"]["subnet"] == "10.213.113.64/28"  # 10002 % 4095 = 1812; 1812 * 16 = 113 * 256 + 64
    assert networks["dockerapi"]["subnet"] == "10.213.255.240/28"
    errors = agent_stack_input_errors({**SETTINGS, "subnet": "10.213.0.0/24"}, "k", "p" * 16, "https://a.test",
                                      stack)
    assert errors == [], errors
    moved = default_stack()
    next(u for u in moved["users"] if u["name"] == "agent-anga")["uid"] = 10001 + 15  # marie's slot in a /24 (15 slots)
    errors = agent_stack_input_errors({**SETTINGS, "subnet": "10.213.0.0/24"}, "k", "p" * 16, "https://a.test",
                                      moved)
    assert any("agent-marie and agent-anga get the same /28" in error for error in errors), errors


def test_uids_come_from_the_model(compose: dict[str, Any]) -> None:
    assert compose["services"]["marie"]["user"] == "10001:10001"
    assert compose["services"]["monitor"]["group_add"] == ["10901", "10900"]
    assert compose["services"]["monitor"]["command"] == ["monitor"]
    assert compose["services"]["orchestrator"]["command"] == ["worker"]  # goals come to its inbox


BAD = [
    ({"api_key": 'x" ; include /etc/passwd'}, "agent_stack_api_key: letters, digits"),
    ({"redis_password": "short"}, "agent_stack_redis_password: at least 16"),
    ({"upstream": "https://evil.test/path"}, "agent_stack_gateway_upstream: 'https://evil.test/path' is not"),
    ({"upstream": "http://api.anthropic.com"}, "agent_stack_gateway_upstream: 'http://api.anthropic.com' is not https"),
    ({"subnet": "8.8.8.0/24"}, "agent_stack_subnet: 8.8.8.0/24 must be a private IPv4"),
    ({"subnet": "10.0.0.0/25"}, "must be a private IPv4 network of /24 or larger"),
    ({"heartbeat_interval": 0}, "agent_stack_heartbeat_interval: 0 must be"),
    ({"health_interval": "30s"}, "agent_stack_health_interval: '30s' must be"),
    ({"project": "Agent Fleet"}, "agent_stack_project"),
    ({"redis_maxmemory": "1g"}, "agent_stack_redis_maxmemory: '1g' must be 1mb to 192mb"),
    ({"redis_maxmemory": "500mb"}, "agent_stack_redis_maxmemory: '500mb' must be 1mb to 192mb"),
    ({"redis_maxmemory_policy": "lru"}, "agent_stack_redis_maxmemory_policy: 'lru' is not one of"),
    ({"status_address": "0.0.0.0"}, "agent_stack_status_address: '0.0.0.0' is not a loopback address"),
    ({"status_address": "192.0.2.10"}, "agent_stack_status_address: '192.0.2.10' is not a loopback address"),
    ({"status_address": "localhost"}, "agent_stack_status_address: 'localhost' is not an IP address"),
    ({"status_port": 80}, "agent_stack_status_port: 80 must be 1024 to 65535"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[message.split(":")[0] + str(i) for i, (_, message) in enumerate(BAD)])
def test_bad_stack_input_is_named_and_secrets_never_echoed(change: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"api_key": "sk-ant-good", "redis_password": "p" * 16, "upstream": "https://api.anthropic.com"}
    settings = {**SETTINGS, **{k: v for k, v in change.items() if k in SETTINGS}}
    values.update({k: v for k, v in change.items() if k in values})
    errors = agent_stack_input_errors(settings, values["api_key"], values["redis_password"], values["upstream"])
    assert any(message in error for error in errors), errors
    assert not any("include /etc/passwd" in error or "short" in error for error in errors)


def test_good_stack_input_passes() -> None:
    assert agent_stack_input_errors(SETTINGS, "sk-ant-good", "p" * 16, "https://api.anthropic.com") == []


def test_the_status_page_is_on_loopback_and_only_with_a_dispatcher() -> None:
    stack = default_stack()
    assert agent_stack_status_url(stack, SETTINGS) == "http://127.0.0.1:8377/"
    assert agent_stack_status_url(stack, {**SETTINGS, "status_address": "::1", "status_port": 9000}) == "http://[::1]:9000/"
    assert agent_stack_status_url(stack, {**SETTINGS, "status_page": False}) == ""
    alone = {**stack, "agents": [agent for agent in stack["agents"] if not agent["capabilities"]["dispatches"]]}
    assert agent_stack_status_url(alone, SETTINGS) == ""  # no dispatcher's account to read the fleet as
    assert agent_stack_input_errors({**SETTINGS, "status_address": "127.0.0.2"}, "", "", "https://a.test") == []


def test_the_secrets_may_be_left_to_the_host() -> None:
    """No key (set later with agentctl secret set) and no redis password (made on the host) pass."""
    assert agent_stack_input_errors(SETTINGS, "", "", "https://api.anthropic.com", default_stack(("marie",))) == []


def test_ollama_socket_goes_only_to_agents_that_opted_in() -> None:
    compose = agent_stack_compose(default_stack(), IMAGES, {**SETTINGS, "ollama_socket_dir": "/run/agentfleet-ollama"})
    mounted = sorted(name for name, service in compose["services"].items()
                     if "/run/agentfleet-ollama:/run/ollama:ro" in service.get("volumes", []))
    assert mounted == ["monitor"]


def test_without_ollama_no_agent_gets_the_socket(compose: dict[str, Any]) -> None:
    assert not any("/run/ollama" in volume for service in compose["services"].values()
                   for volume in service.get("volumes", []))


def test_an_ollama_backend_without_the_socket_is_refused() -> None:
    model = {name.removeprefix("agent_model_"): value for name, value in MODEL.items()}
    model["agents"] = [*model["agents"], {"name": "olga", "kind": "worker", "uid": 10020, "ollama": True,
                                          "backend": {"type": "ollama", "model": "llama3.2:1b"}}]
    stack = agent_model_stack(model)
    errors = agent_stack_input_errors(SETTINGS, "sk-ant-good", "p" * 16, "https://api.anthropic.com", stack)
    assert any(error.startswith("agent_stack_ollama_socket_dir: olga uses the ollama backend") for error in errors)
    with_socket = {**SETTINGS, "ollama_socket_dir": "/run/agentfleet-ollama"}
    assert agent_stack_input_errors(with_socket, "sk-ant-good", "p" * 16, "https://api.anthropic.com", stack) == []
    backend = agent_stack_compose(stack, IMAGES, with_socket)["services"]["olga"]["environment"]["AGENTFLEET_BACKEND"]
    assert '"ollama_url": "unix:///run/ollama/ollama.sock"' in backend


def test_only_containers_of_services_that_left_the_model_are_leaving() -> None:
    def container(name: str, service: str) -> dict[str, Any]:
        return {"Names": [f"/{name}"], "Labels": {"com.docker.compose.service": service}}

    stack = default_stack()
    containers = [container("agentfleet-marie-1", "marie"), container("agentfleet-redis-1", "redis"),
                  container("agentfleet-gone-1", "gone"), {"Names": ["/agentfleet-odd-1"]}]
    assert agent_stack_leaving(containers, stack) == ["agentfleet-gone-1", "agentfleet-odd-1"]


def test_health_checks_are_sparse_once_healthy_and_quick_while_starting(compose: dict[str, Any]) -> None:
    """Every container: checked each agent_stack_health_interval seconds, each second while starting."""
    checks = {name: service["healthcheck"] for name, service in compose["services"].items()}
    assert set(checks) >= {"marie", "orchestrator", "monitor", "redis", "gateway", "egress", "dockerproxy"}
    for name, check in checks.items():
        assert (check["interval"], check["start_interval"]) == (f"{SETTINGS['health_interval']}s", "1s"), name
        assert int(check["start_period"].removesuffix("s")) > 0, name
    assert checks["marie"]["start_period"] == f"{3 * SETTINGS['heartbeat_interval']}s"


def test_the_host_runtime_tree_lists_its_directories_first_and_every_file() -> None:
    tree = agent_stack_runtime_tree({"agentfleet/worker.py": "w", "schemas/task.json": "{}"}, "/opt/agentfleet/runtime")
    assert [d["path"] for d in tree["directories"]] == ["/opt/agentfleet/runtime", "/opt/agentfleet/runtime/agentfleet",
                                                        "/opt/agentfleet/runtime/schemas"]
    assert {f["path"]: (f["text"], f["mode"], f["uid"]) for f in tree["files"]} == {
        "/opt/agentfleet/runtime/agentfleet/worker.py": ("w", "0644", 0),
        "/opt/agentfleet/runtime/schemas/task.json": ("{}", "0644", 0)}


def test_a_projects_mirror_is_mounted_read_only_into_its_readers_with_its_path_in_their_environment() -> None:
    model = {name.removeprefix("agent_model_"): value for name, value in MODEL.items()}
    shop = {"name": "shop", "source": "/srv/git/shop", "gid": 10950, "workers": ["marie"]}
    services = agent_stack_compose(agent_model_stack({**model, "projects": [shop]}), IMAGES, SETTINGS)["services"]
    for name in ("marie", "orchestrator"):
        assert "/srv/agentfleet/projects/shop:/agentfleet/projects/shop:ro" in services[name]["volumes"]
        assert services[name]["environment"]["AGENTFLEET_PROJECTS"] == '{"shop": "/agentfleet/projects/shop"}'
        assert "10950" in services[name]["group_add"]
    for name in ("anga", "fabien", "monitor"):
        assert not [volume for volume in services[name]["volumes"] if "projects" in volume]
        assert services[name]["environment"]["AGENTFLEET_PROJECTS"] == "{}"


def test_a_dollar_in_the_model_reaches_the_agent_as_written() -> None:
    """compose interpolates $NAME in a compose file: the model's text must not be read as a variable."""
    model = {name.removeprefix("agent_model_"): value for name, value in MODEL.items()}
    model["agents"] = [{**agent, "description": "Costs $HOME and ${PATH}"} if agent["name"] == "marie" else agent
                       for agent in model["agents"]]
    compose = agent_stack_compose(agent_model_stack(model), IMAGES, SETTINGS)
    team = compose["services"]["orchestrator"]["environment"]["AGENTFLEET_TEAM"]
    assert "Costs $$HOME and $${PATH}" in team


def running(compose: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The engine's lists for a project running exactly as declared."""
    images = [{"Id": f"sha256:{index}", "RepoTags": [tag]} for index, tag in enumerate(sorted(set(IMAGES.values())))]
    ids = {image["RepoTags"][0]: image["Id"] for image in images}
    containers = [{"Names": [f"/agentfleet-{name}-1"], "State": "running", "Status": "Up 2 minutes (healthy)",
                   "ImageID": ids[service["image"]],
                   "Labels": {"com.docker.compose.service": name, DIGEST_LABEL: service["labels"][DIGEST_LABEL]}}
                  for name, service in compose["services"].items()]
    return containers, images


def test_a_project_running_as_declared_needs_no_compose_up(compose: dict[str, Any]) -> None:
    containers, images = running(compose)
    assert agent_stack_drift(containers, compose, images) == []


@pytest.mark.parametrize(("change", "reason"), [
    (lambda containers: containers.pop(), "0 containers"),
    (lambda containers: containers.append(dict(containers[0])), "gateway: 2 containers"),
    (lambda containers: containers[0].update(State="exited", Status="Exited (1) 3 seconds ago"), "Exited (1)"),
    (lambda containers: containers[0].update(Status="Up 3 minutes (unhealthy)"), "(unhealthy)"),
    (lambda containers: containers[0].update(Status="Up 3 seconds (health: starting)"), "(health: starting)"),
    (lambda containers: containers[0].update(ImageID="sha256:other"), "gateway: its image changed"),
    (lambda containers: containers[0]["Labels"].update({DIGEST_LABEL: "0" * 16}), "gateway: its definition changed"),
    (lambda containers: containers.append({"Labels": {"com.docker.compose.service": "gone"}, "State": "running"}),
     "gone: not in the project"),
], ids=["missing", "twice", "stopped", "unhealthy", "starting", "image", "definition", "orphan"])
def test_each_difference_from_the_declared_project_is_named(compose: dict[str, Any], change: Any, reason: str) -> None:
    containers, images = running(compose)
    containers.sort(key=lambda container: container["Labels"]["com.docker.compose.service"] != "gateway")
    change(containers)
    drift = agent_stack_drift(containers, compose, images)
    assert len(drift) == 1 and reason in drift[0], drift


def test_a_service_definition_change_changes_its_digest_alone() -> None:
    """A new limit on marie changes her digest only; a network she joins changing changes hers and the
    services' on it; an image tag is part of the definition."""
    stack = default_stack()
    before = agent_stack_compose(stack, IMAGES, SETTINGS)["services"]
    stack["agents"] = [{**agent, "resources": {**agent["resources"], "pids": 99}} if agent["name"] == "marie" else agent
                       for agent in stack["agents"]]
    after = agent_stack_compose(stack, IMAGES, SETTINGS)["services"]
    changed = sorted(name for name in before if before[name]["labels"] != after[name]["labels"])
    assert changed == ["marie"]
    retagged = agent_stack_compose(default_stack(), {**IMAGES, "egress": "agentfleet/egress:def"}, SETTINGS)["services"]
    assert sorted(name for name in before if before[name]["labels"] != retagged[name]["labels"]) == ["egress"]
    moved = agent_stack_compose(default_stack(), IMAGES, {**SETTINGS, "subnet": "10.99.0.0/16"})["services"]
    assert all(before[name]["labels"] != moved[name]["labels"] for name in before if name != "dockerproxy")


def test_an_image_the_host_does_not_have_is_drift(compose: dict[str, Any]) -> None:
    containers, images = running(compose)
    assert agent_stack_drift(containers, compose, images[1:]) != []
