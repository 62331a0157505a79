"""The compose project, derived from agent_model_stack: mounts come from the access matrix."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

INSIDE = "/agentfleet"
PLACEHOLDER_KEY = "sk-ant-placeholder-the-gateway-holds-the-real-key"
GATEWAY_PORT = 8080
DOCKERPROXY_PORT = 2375


def agent_stack_mounts(stack: dict[str, Any], name: str) -> list[str]:
    """Bind mounts for one agent: every per-name or shared path it may read (ro) or write (rw).

    Category directories (inbox/, results/, ...) are never mounted whole; a path an agent may
    neither read nor write is not mounted at all.
    """
    root, mounts = stack["root"], []
    for entry in stack["paths"]:
        relative = entry["path"][len(root):].lstrip("/")
        if relative.count("/") != 1 and relative not in ("archive", "common"):
            continue
        if name in entry["write"]:
            mounts.append(f"{entry['path']}:{INSIDE}/{relative}:rw")
        elif name in entry["read"]:
            mounts.append(f"{entry['path']}:{INSIDE}/{relative}:ro")
    return mounts


def agent_stack_addresses(stack: dict[str, Any], subnet: str) -> dict[str, str]:
    """A fixed address per agent on the agents' network, so the gateway knows who is calling."""
    network = ipaddress.ip_network(subnet)
    hosts = network.hosts()
    next(hosts)  # the bridge's own address
    names = ["gateway", "redis"] + [agent["name"] for agent in stack["agents"]]
    return {name: str(next(hosts)) for name in names}


def _command(agent: dict[str, Any]) -> str:
    caps = agent["capabilities"]
    if caps["receives_tasks"]:
        return "worker"
    return "monitor" if caps["archives"] else "idle"


def _agent_service(stack: dict[str, Any], agent: dict[str, Any], images: dict[str, str],
                   settings: dict[str, Any], address: str) -> dict[str, Any]:
    user = next(u for u in stack["users"] if u["name"] == agent["account"])
    gids = {group["name"]: group["gid"] for group in stack["groups"]}
    backend = {**agent["backend"], "extra_args": settings["claude_args"]}
    if backend["type"] == "ollama":
        backend["ollama_url"] = settings["ollama_url"]
    interval = settings["heartbeat_interval"]
    name, command = agent["name"], _command(agent)
    networks: dict[str, Any] = {"agents": {"ipv4_address": address}}
    depends_on = {"gateway": {"condition": "service_healthy"}}
    environment = {
        "AGENTFLEET_NAME": name, "AGENTFLEET_KIND": agent["kind"], "AGENTFLEET_ROOT": INSIDE,
        "AGENTFLEET_BACKEND": json.dumps(backend, sort_keys=True),
        "AGENTFLEET_HEARTBEAT_INTERVAL": str(interval),
        "AGENTFLEET_STOP_GRACE": str(max(1, settings["stop_grace"] - 5)),
        "AGENTFLEET_RETENTION": str(settings["retention"]),
        "ANTHROPIC_BASE_URL": f"http://gateway:{GATEWAY_PORT}", "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        "CLAUDE_CONFIG_DIR": f"{INSIDE}/credentials/{name}",
    }
    if command == "monitor":
        # Only the monitor reaches the Docker API, and only its read endpoints (the gateway's log).
        networks["dockerapi"] = {}
        depends_on["dockerproxy"] = {"condition": "service_healthy"}
        environment |= {"AGENTFLEET_DOCKER_API": f"http://dockerproxy:{DOCKERPROXY_PORT}",
                        "AGENTFLEET_PROJECT": settings["project"]}
    return {
        "image": images["agent"] if agent["image"] == "agentfleet/agent:local" else agent["image"],
        "command": [command],
        "user": f"{user['uid']}:{user['gid']}",
        "group_add": [str(gids[group]) for group in user["groups"]],
        "environment": environment,
        "volumes": agent_stack_mounts(stack, name),
        "working_dir": f"{INSIDE}/workspaces/{name}",
        "runtime": agent["runtime"],
        **_hardening(agent["resources"], settings, f"uid={user['uid']},gid={user['gid']},mode=0700"),
        "healthcheck": {"test": ["CMD", "python3", "-m", "agentfleet", "health"], "interval": f"{interval}s",
                        "timeout": "5s", "retries": 3, "start_period": f"{3 * interval}s"},
        "networks": networks,
        "depends_on": depends_on,
    }


def _hardening(resources: dict[str, Any], settings: dict[str, Any], home: str) -> dict[str, Any]:
    return {
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "read_only": True,
        "tmpfs": ["/tmp:rw,noexec,nosuid,nodev,size=256m", f"/home/agent:rw,nosuid,nodev,size=512m,{home}"],
        "pids_limit": resources["pids"], "mem_limit": resources["memory"], "cpus": resources["cpus"],
        "logging": {"driver": "json-file", "options": {"max-size": settings["log_max_size"],
                                                        "max-file": str(settings["log_max_file"])}},
        "restart": "unless-stopped", "stop_grace_period": f"{settings['stop_grace']}s",
    }


def agent_stack_compose(stack: dict[str, Any], images: dict[str, str], settings: dict[str, Any]) -> dict[str, Any]:
    """The whole compose project; settings are the agent_stack_* variables without the prefix."""
    addresses = agent_stack_addresses(stack, settings["subnet"])
    services = {user["name"].removeprefix("agentfleet-"): user for user in stack["users"]
                if user["name"] in ("agentfleet-gateway", "agentfleet-redis", "agentfleet-dockerproxy")}
    small = {"cpus": 0.5, "memory": "256m", "pids": 64}
    gateway, redis, proxy = services["gateway"], services["redis"], services["dockerproxy"]
    compose: dict[str, Any] = {"name": settings["project"], "services": {
        "gateway": {
            "image": images["gateway"], "user": f"{gateway['uid']}:{gateway['gid']}",
            "volumes": [f"{settings['dir']}/nginx.conf:/etc/nginx/nginx.conf:ro"]
            + ([f"{settings['dir']}/upstream-ca.pem:/etc/nginx/upstream-ca.pem:ro"] if settings.get("gateway_ca") else []),
            "secrets": ["gateway_key"],
            **_hardening(small, settings, f"uid={gateway['uid']},gid={gateway['gid']},mode=0700"),
            "healthcheck": {"test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{GATEWAY_PORT}/_agentfleet/health"],
                            "interval": "5s", "timeout": "3s", "retries": 3},
            "networks": {"agents": {"ipv4_address": addresses["gateway"]}, "egress": {}},
        },
        "redis": {
            "image": images["redis"], "command": ["/run/secrets/redis_conf"],
            "user": f"{redis['uid']}:{redis['gid']}", "secrets": ["redis_conf"],
            "volumes": [f"{stack['root']}/services/redis:/data:rw"],
            **_hardening(small, settings, f"uid={redis['uid']},gid={redis['gid']},mode=0700"),
            "healthcheck": {"test": ["CMD-SHELL", "REDISCLI_AUTH=$$(sed -n 's/^requirepass //p' /run/secrets/redis_conf) "
                                     "redis-cli ping | grep -q PONG"], "interval": "5s", "timeout": "3s", "retries": 3},
            "networks": {"agents": {"ipv4_address": addresses["redis"]}},
        },
        "dockerproxy": {
            "image": images["dockerproxy"], "user": f"{proxy['uid']}:{proxy['gid']}",
            "group_add": [str(settings["docker_gid"])],
            "volumes": [f"{settings['dir']}/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro",
                        "/var/run/docker.sock:/var/run/docker.sock:rw"],
            **_hardening(small, settings, f"uid={proxy['uid']},gid={proxy['gid']},mode=0700"),
            "healthcheck": {"test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{DOCKERPROXY_PORT}/_ping"],
                            "interval": "5s", "timeout": "3s", "retries": 3},
            "networks": {"dockerapi": {}},
        },
    }, "networks": {
        "agents": {"internal": True, "ipam": {"config": [{"subnet": settings["subnet"]}]}},
        "dockerapi": {"internal": True},
        "egress": {},
    }, "secrets": {
        "gateway_key": {"file": f"{settings['dir']}/secrets/gateway_key.conf"},
        "redis_conf": {"file": f"{settings['dir']}/secrets/redis.conf"},
    }}
    for agent in stack["agents"]:
        compose["services"][agent["name"]] = _agent_service(stack, agent, images, settings, addresses[agent["name"]])
    return compose


KEY = re.compile(r"^[A-Za-z0-9_-]+$")
PASSWORD = re.compile(r"^[A-Za-z0-9_-]{16,}$")
UPSTREAM = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def agent_stack_input_errors(settings: dict[str, Any], api_key: str, redis_password: str, upstream: str,
                             needs_key: bool) -> list[str]:
    """What is wrong with the stack's inputs, each naming its variable and never a secret's value."""
    errors = []
    if needs_key and not KEY.match(api_key or ""):
        errors.append("agent_stack_api_key: required when an agent uses the claude backend "
                      "(letters, digits, _ and - only)")
    if not PASSWORD.match(redis_password or ""):
        errors.append("agent_stack_redis_password: required, at least 16 letters, digits, _ or -")
    if not UPSTREAM.match(upstream):
        errors.append(f"agent_stack_gateway_upstream: {upstream!r} is not https://host[:port] (the key only travels over TLS)")
    try:
        network = ipaddress.ip_network(settings["subnet"])
        if network.version != 4 or not network.is_private or network.num_addresses < 16:
            errors.append(f"agent_stack_subnet: {settings['subnet']} must be a private IPv4 network of 16+ addresses")
    except ValueError as error:
        errors.append(f"agent_stack_subnet: {error}")
    for field in ("heartbeat_interval", "stop_grace", "retention", "wait_timeout"):
        value = settings.get(field)
        if value is not None and (not isinstance(value, int) or value < 1):
            errors.append(f"agent_stack_{field}: {value!r} must be a whole number of seconds >= 1")
    if not re.match(r"^[a-z0-9][a-z0-9_-]*$", str(settings["project"])):
        errors.append(f"agent_stack_project: {settings['project']!r} is not a compose project name")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"agent_stack_compose": agent_stack_compose, "agent_stack_mounts": agent_stack_mounts,
                "agent_stack_input_errors": agent_stack_input_errors,
                "agent_stack_addresses": agent_stack_addresses}
