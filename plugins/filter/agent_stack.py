"""The compose project, derived from agent_model_stack: mounts come from the access matrix."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import posixpath
import re
from typing import Any

from ansible_collections.agentfleet.fleet.plugins.module_utils.stack_ports import PORTS

INSIDE = "/agentfleet"
OLLAMA_INSIDE = "/run/ollama"
PLACEHOLDER_KEY = "sk-ant-placeholder-the-gateway-holds-the-real-key"
GATEWAY_PORT = PORTS["gateway"]
DOCKERPROXY_PORT = PORTS["dockerproxy"]
EGRESS_PORT = PORTS["egress"]
# Relative CPU weight under contention: busy agents never starve the gateway, redis or proxies.
AGENT_SHARES = 512
SERVICE_SHARES = 2048
# Offsets in an agent's /28 (.1 is the bridge's, which has no address: inhibit_ipv4).
ADDRESSES = {"agent": 2, "gateway": 3, "redis": 4, "egress": 5}
# An internal network whose bridge has no address: members reach each other and nothing else,
# not even the host (an internal network's bridge address is the host, INPUT chain included).
ISOLATED = {"internal": True, "driver_opts": {"com.docker.network.bridge.inhibit_ipv4": "true"}}
# Each container carries the digest of what compose made it from (its service, the networks it
# joins, the secrets it reads): equal digests, images and health mean `compose up` would change nothing.
DIGEST_LABEL = "agentfleet.service-digest"
# The services built from our images besides the agents'.
IMAGE_SERVICES = ("gateway", "egress", "redis", "dockerproxy")


def agent_stack_mounts(stack: dict[str, Any], name: str) -> list[str]:
    """Bind mounts for one agent: every per-name or shared path it may read (ro) or write (rw).

    Category directories (inbox/, results/, ...) are never mounted whole; a path an agent may
    neither read nor write is not mounted at all.
    """
    root, mounts = stack["root"], []
    for entry in stack["paths"]:
        relative = entry["path"][len(root):].lstrip("/")
        if relative.count("/") != 1 and relative not in ("archive", "common", "disk"):
            continue
        if name in entry["write"]:
            mounts.append(f"{entry['path']}:{INSIDE}/{relative}:rw")
        elif name in entry["read"]:
            mounts.append(f"{entry['path']}:{INSIDE}/{relative}:ro")
    return mounts


def agent_stack_networks(stack: dict[str, Any], pool: str) -> dict[str, dict[str, str]]:
    """Each agent's own internal network: a /28 of the pool chosen by its uid (stable as agents come
    and go), with fixed addresses for the agent and the services it needs. The gateway and the
    egress proxy know the caller by its address. The pool's last /28 is the monitor's Docker API
    network. Call only on input agent_stack_input_errors accepts."""
    slots = list(ipaddress.ip_network(pool).subnets(new_prefix=28))
    networks = {}
    for agent in stack["agents"]:
        user = next(u for u in stack["users"] if u["name"] == agent["account"])
        subnet = slots[user["uid"] % (len(slots) - 1)]
        base = int(subnet.network_address)
        networks[agent["name"]] = {"network": f"agent_{agent['name']}", "subnet": str(subnet),
                                   **{role: str(ipaddress.ip_address(base + offset)) for role, offset in ADDRESSES.items()}}
    networks["dockerapi"] = {"network": "dockerapi", "subnet": str(slots[-1])}
    return networks


def agent_stack_fleet_env(stack: dict[str, Any]) -> dict[str, str]:
    """What trusted readers (monitor, agentctl) need of the model to judge a file by where it lives
    and who owns it: every agent's uid, and which agent writes the usage report."""
    uids = {user["name"]: user["uid"] for user in stack["users"]}
    archivers = [agent["name"] for agent in stack["agents"] if agent["capabilities"]["archives"]]
    dispatchers = [agent["name"] for agent in stack["agents"] if agent["capabilities"]["dispatches"]]

    def compact(value: dict[str, Any]) -> str:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))

    return {"AGENTFLEET_AGENTS": compact({agent["name"]: uids[agent["account"]] for agent in stack["agents"]}),
            "AGENTFLEET_MONITOR": archivers[0] if archivers else "",
            "AGENTFLEET_DISPATCHER": dispatchers[0] if dispatchers else "",
            "AGENTFLEET_BRANCHES": compact({p["name"]: p["branch"] for p in stack.get("projects", [])})}


def agent_stack_team(stack: dict[str, Any]) -> list[dict[str, Any]]:
    """What the dispatcher's role prompt says of each worker: name, role, description, projects."""
    return [{"name": agent["name"], "role": agent.get("role", ""), "description": agent.get("description", ""),
             "projects": [p["name"] for p in stack.get("projects", []) if agent["name"] in p["readers"]]}
            for agent in stack["agents"]
            if agent["capabilities"]["receives_tasks"] and not agent["capabilities"]["dispatches"]]


def _command(agent: dict[str, Any]) -> str:
    caps = agent["capabilities"]
    if caps["receives_tasks"]:
        return "worker"
    return "monitor" if caps["archives"] else "idle"


def _agent_service(stack: dict[str, Any], agent: dict[str, Any], images: dict[str, str],
                   settings: dict[str, Any], network: dict[str, str]) -> dict[str, Any]:
    user = next(u for u in stack["users"] if u["name"] == agent["account"])
    gids = {group["name"]: group["gid"] for group in stack["groups"]}
    backend = {**agent["backend"], "extra_args": settings["claude_args"]}
    ollama = bool(agent.get("ollama")) and bool(settings.get("ollama_socket_dir"))
    if backend["type"] == "ollama":
        backend["ollama_url"] = f"unix://{OLLAMA_INSIDE}/ollama.sock"
    interval = settings["heartbeat_interval"]
    name, command = agent["name"], _command(agent)
    networks: dict[str, Any] = {network["network"]: {"ipv4_address": network["agent"]}}
    depends_on = {"gateway": {"condition": "service_healthy"}}
    environment = {
        "AGENTFLEET_NAME": name, "AGENTFLEET_KIND": agent["kind"], "AGENTFLEET_ROOT": INSIDE,
        "AGENTFLEET_BACKEND": json.dumps(backend, sort_keys=True),
        "AGENTFLEET_HEARTBEAT_INTERVAL": str(interval),
        "AGENTFLEET_STOP_GRACE": str(max(1, settings["stop_grace"] - 5)),
        "AGENTFLEET_RETENTION": str(settings["retention"]),
        "ANTHROPIC_BASE_URL": f"http://gateway:{GATEWAY_PORT}", "ANTHROPIC_API_KEY": PLACEHOLDER_KEY,
        "CLAUDE_CONFIG_DIR": f"{INSIDE}/credentials/{name}",
        # The only way out besides the model API: the egress proxy, which allows this agent's list.
        "HTTPS_PROXY": f"http://egress:{EGRESS_PORT}", "https_proxy": f"http://egress:{EGRESS_PORT}",
        "NO_PROXY": "gateway,redis,localhost,127.0.0.1", "no_proxy": "gateway,redis,localhost,127.0.0.1",
        **agent_stack_fleet_env(stack),
        # The mirrors this agent may clone from (mounted read-only from the access matrix).
        "AGENTFLEET_PROJECTS": json.dumps({p["name"]: f"{INSIDE}/projects/{p['name']}" for p in stack.get("projects", [])
                                           if name in p["readers"]}, sort_keys=True),
    }
    if agent["redis"]:
        environment["AGENTFLEET_REDIS_USER"] = agent["account"]
    if agent["capabilities"]["dispatches"]:
        environment |= {"AGENTFLEET_DISPATCHES": "1",
                        "AGENTFLEET_TEAM": json.dumps(agent_stack_team(stack), sort_keys=True)}
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
        # $$: compose would otherwise interpolate a "$" in a description, a prompt or an argv.
        "environment": {key: value.replace("$", "$$") for key, value in environment.items()},
        # The host's Ollama only through its socket, and only for agents that opted in.
        "volumes": agent_stack_mounts(stack, name) + ([f"{settings['ollama_socket_dir']}:{OLLAMA_INSIDE}:ro"] if ollama else []),
        # A login to redis only for an agent whose model asks for one.
        "secrets": [{"source": f"redis_{name}", "target": "redis_password"}] if agent["redis"] else [],
        "working_dir": f"{INSIDE}/workspaces/{name}",
        "runtime": agent["runtime"],
        **_hardening(agent["resources"], settings, f"uid={user['uid']},gid={user['gid']},mode=0700", AGENT_SHARES),
        # -I: nothing the agent wrote (its workspace is the working directory) is importable.
        "healthcheck": {"test": ["CMD", "python3", "-I", "-m", "agentfleet", "health"], **_health_timing(settings),
                        "timeout": "5s", "retries": 3, "start_period": f"{3 * interval}s"},
        "networks": networks,
        "depends_on": depends_on,
    }


def _hardening(resources: dict[str, Any], settings: dict[str, Any], home: str, shares: int) -> dict[str, Any]:
    return {
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "read_only": True,
        "tmpfs": ["/tmp:rw,noexec,nosuid,nodev,size=256m", f"/home/agent:rw,nosuid,nodev,size=512m,{home}"],
        "pids_limit": resources["pids"], "mem_limit": resources["memory"], "cpus": resources["cpus"],
        "memswap_limit": resources["memory"],  # no swap on top: a hog is killed, not slowed down
        "cpu_shares": shares,
        "logging": {"driver": "json-file",
                    "options": {"max-size": settings["log_max_size"], "max-file": str(settings["log_max_file"])}},
        "restart": "unless-stopped", "stop_grace_period": f"{settings['stop_grace']}s",
    }


def _health_timing(settings: dict[str, Any]) -> dict[str, str]:
    """Checked every health_interval once healthy, every second while starting: each check is an
    exec into the container, which a hundred agents checked every few seconds turn into the host's
    main load; a start interval keeps `compose up --wait` quick all the same."""
    return {"interval": f"{settings['health_interval']}s", "start_interval": "1s"}


def _service(image: str, user: dict[str, Any], settings: dict[str, Any], healthcheck: list[str],
             networks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    small = {"cpus": 0.5, "memory": "256m", "pids": 64}
    return {"image": image, "user": f"{user['uid']}:{user['gid']}", **extra,
            **_hardening(small, settings, f"uid={user['uid']},gid={user['gid']},mode=0700", SERVICE_SHARES),
            "healthcheck": {"test": healthcheck, **_health_timing(settings), "timeout": "3s", "retries": 3,
                            "start_period": "30s"},
            "networks": networks}


def _on_agent_networks(networks: dict[str, dict[str, str]], role: str, only: list[str] | None = None) -> dict[str, Any]:
    return {net["network"]: {"ipv4_address": net[role]} for name, net in networks.items()
            if name != "dockerapi" and (only is None or name in only)}


def agent_stack_compose(stack: dict[str, Any], images: dict[str, str], settings: dict[str, Any]) -> dict[str, Any]:
    """The whole compose project; settings are the agent_stack_* variables without the prefix."""
    networks = agent_stack_networks(stack, settings["subnet"])
    users = {user["name"].removeprefix("agentfleet-"): user for user in stack["users"]}
    directory = settings["dir"]
    redis_users = [agent["name"] for agent in stack["agents"] if agent["redis"]]
    redis_auth = "REDISCLI_AUTH=$$(sed -n 's/^requirepass //p' /run/secrets/redis_conf) redis-cli ping | grep -q PONG"
    services = {
        "gateway": _service(
            images["gateway"], users["gateway"], settings,
            ["CMD", "curl", "-fsS", f"http://127.0.0.1:{GATEWAY_PORT}/_agentfleet/health"],
            {**_on_agent_networks(networks, "gateway"), "egress": {}},
            volumes=[f"{directory}/nginx.conf:/etc/nginx/nginx.conf:ro",
                     f"{directory}/gateway:/etc/nginx/agentfleet:ro"]
            + ([f"{directory}/upstream-ca.pem:/etc/nginx/upstream-ca.pem:ro"] if settings.get("gateway_ca") else []),
            secrets=["gateway_key"]),
        "egress": _service(
            images["egress"], users["egress"], settings,
            ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{EGRESS_PORT}"],
            {**_on_agent_networks(networks, "egress"), "egress": {}},
            volumes=[f"{directory}/squid.conf:/etc/squid/squid.conf:ro"]),
        "redis": _service(
            images["redis"], users["redis"], settings, ["CMD-SHELL", redis_auth],
            _on_agent_networks(networks, "redis", redis_users),
            command=["/run/secrets/redis_conf"], secrets=["redis_conf"],
            volumes=[f"{stack['root']}/services/redis:/data:rw"]),
        "dockerproxy": _service(
            images["dockerproxy"], users["dockerproxy"], settings,
            ["CMD", "curl", "-fsS", f"http://127.0.0.1:{DOCKERPROXY_PORT}/_ping"], {"dockerapi": {}},
            group_add=[str(settings["docker_gid"])],
            volumes=[f"{directory}/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro", "/var/run/docker.sock:/var/run/docker.sock:rw"]),
    }
    if not redis_users:  # off unless an agent's model asks for it
        del services["redis"]
    compose_networks: dict[str, Any] = {
        net["network"]: {**ISOLATED, "ipam": {"config": [{"subnet": net["subnet"]}]}} for net in networks.values()}
    compose_networks["egress"] = {}
    secrets = {"gateway_key": {"file": f"{directory}/secrets/gateway_key.conf"}}
    if redis_users:
        secrets["redis_conf"] = {"file": f"{directory}/secrets/redis.conf"}
    for agent in stack["agents"]:
        services[agent["name"]] = _agent_service(stack, agent, images, settings, networks[agent["name"]])
        if agent["redis"]:
            secrets[f"redis_{agent['name']}"] = {"file": f"{directory}/secrets/redis-{agent['name']}.password"}
    for service in services.values():
        service["labels"] = {DIGEST_LABEL: _service_digest(service, compose_networks, secrets)}
    return {"name": settings["project"], "services": services, "networks": compose_networks, "secrets": secrets}


def _service_digest(service: dict[str, Any], networks: dict[str, Any], secrets: dict[str, Any]) -> str:
    sources = [entry["source"] if isinstance(entry, dict) else entry for entry in service.get("secrets", [])]
    made_from = {"service": service, "networks": {name: networks[name] for name in service.get("networks", {})},
                 "secrets": {name: secrets[name] for name in sources}}
    return hashlib.sha256(json.dumps(made_from, sort_keys=True).encode()).hexdigest()[:16]


def agent_stack_plan(stack: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The stack's part of a host's plan, from the compose project itself (image names stand in
    for the tags the images role works out later): each agent's network, addresses and mounts,
    the services, the secrets' paths (never their content) and the ports."""
    compose = agent_stack_compose(stack, {name: f"agentfleet/{name}" for name in ("agent", *IMAGE_SERVICES)},
                                  {**settings, "docker_gid": 0})
    return {"dir": settings["dir"], "project": settings["project"],
            "networks": agent_stack_networks(stack, settings["subnet"]),
            "mounts": {agent["name"]: compose["services"][agent["name"]]["volumes"] for agent in stack["agents"]},
            "services": sorted(set(compose["services"]) - {agent["name"] for agent in stack["agents"]}),
            "secrets": sorted(spec["file"] for spec in compose["secrets"].values()), "ports": dict(PORTS),
            "status_page": agent_stack_status_url(stack, settings) or None}


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "yes", "1", "on")


def agent_stack_status_url(stack: dict[str, Any], settings: dict[str, Any]) -> str:
    """Where the status page is served on the host, "" when it is not (turned off, or no dispatcher
    in the model, whose account it reads the fleet as)."""
    if not _truthy(settings.get("status_page", True)) or not agent_stack_fleet_env(stack)["AGENTFLEET_DISPATCHER"]:
        return ""
    address = str(settings.get("status_address", "127.0.0.1"))
    return f"http://{f'[{address}]' if ':' in address else address}:{settings.get('status_port', 8377)}/"


def agent_stack_port(service: str) -> int:
    """The port a service of the stack listens on (gateway, egress, redis, dockerproxy)."""
    return PORTS[service]


def agent_stack_drift(containers: list[dict[str, Any]], compose: dict[str, Any], images: list[dict[str, Any]]) -> list[str]:
    """Why `compose up` is needed: each service whose container is missing, stopped, not healthy,
    made from another definition or another image; each container of no service. Empty: the
    project runs as declared. containers: the engine's list of the project's containers (all
    states); images: docker_image_info's list for the images the services use."""
    image_ids = {tag: image["Id"] for image in images for tag in image.get("RepoTags") or []}
    found: dict[str, list[dict[str, Any]]] = {}
    for container in containers:
        found.setdefault(container.get("Labels", {}).get("com.docker.compose.service", ""), []).append(container)
    reasons = [f"{name}: not in the project" for name in sorted(set(found) - set(compose["services"]))]
    for name, service in sorted(compose["services"].items()):
        mine = found.get(name, [])
        if len(mine) != 1:
            reasons.append(f"{name}: {len(mine)} containers")
            continue
        container = mine[0]
        healthy = "(healthy)" in container.get("Status", "") or "healthcheck" not in service
        if container.get("State") != "running" or not healthy:
            reasons.append(f"{name}: {container.get('Status', 'no status')}")
        elif container.get("Labels", {}).get(DIGEST_LABEL) != service["labels"][DIGEST_LABEL]:
            reasons.append(f"{name}: its definition changed")
        elif container.get("ImageID") != image_ids.get(service["image"]):
            reasons.append(f"{name}: its image changed")
    return reasons


def agent_stack_disk_bounds(stack: dict[str, Any]) -> dict[str, dict[str, int]]:
    """What the host's disk watcher needs of each agent: its uid and its bound."""
    uids = {user["name"]: user["uid"] for user in stack["users"]}
    return {agent["name"]: {"uid": uids[agent["account"]], **agent["disk"]} for agent in stack["agents"]}


def agent_stack_gateway_policy(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the gateway's policy (files/gateway.js) checks of each agent; nginx.conf holds its rate
    and connection limits."""
    return {agent["name"]: {"endpoints": agent["gateway"]["endpoints"], "tools": agent["gateway"]["tools"],
                            "mcp_servers": agent["gateway"]["mcp_servers"],
                            "max_body": agent["gateway"]["max_body_mb"] * 1024 * 1024,
                            "budget_requests": agent["gateway"]["budget_requests"],
                            "budget_tokens": agent["gateway"]["budget_tokens"]}
            for agent in stack["agents"]}


REDIS_POLICIES = ("allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random",
                  "volatile-ttl", "noeviction")
KEY = re.compile(r"^[A-Za-z0-9_-]+$")
PASSWORD = re.compile(r"^[A-Za-z0-9_-]{16,}$")
UPSTREAM = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def agent_stack_redis_secret_files(stack: dict[str, Any], directory: str, password: str) -> list[dict[str, Any]]:
    """Each agent's redis password file (derived from the stack's password), owned by its numeric ids."""
    return [{"path": f"{directory}/secrets/redis-{agent['name']}.password", "uid": agent["uid"], "gid": agent["gid"],
             "content": hashlib.sha256(f"{password}:{agent['name']}".encode()).hexdigest(), "mode": "0400"}
            for agent in stack["agents"] if agent["redis"]]


def agent_stack_input_errors(settings: dict[str, Any], api_key: str, redis_password: str, upstream: str,
                             stack: dict[str, Any] | None = None) -> list[str]:
    """What is wrong with the stack's inputs, each naming its variable and never a secret's value."""
    errors = []
    # Both may be left out: the key is then set on the host (agentctl secret set model-key; agentctl
    # status names it while missing), the redis password made on the host and kept there.
    if api_key and not KEY.fullmatch(api_key):
        errors.append("agent_stack_api_key: letters, digits, _ and - only (or empty: set it on the host with "
                      "agentctl secret set model-key)")
    if redis_password and not PASSWORD.fullmatch(redis_password):
        errors.append("agent_stack_redis_password: at least 16 letters, digits, _ or - (or empty: made on the host)")
    maxmemory = str(settings.get("redis_maxmemory", "128mb"))
    size = re.match(r"^([1-9][0-9]{0,5})mb$", maxmemory)
    if not size or int(size.group(1)) > 192:
        errors.append(f"agent_stack_redis_maxmemory: {maxmemory!r} must be 1mb to 192mb (redis runs in 256m)")
    if settings.get("redis_maxmemory_policy", "allkeys-lru") not in REDIS_POLICIES:
        errors.append(f"agent_stack_redis_maxmemory_policy: {settings.get('redis_maxmemory_policy')!r} "
                      f"is not one of {list(REDIS_POLICIES)}")
    if not UPSTREAM.fullmatch(upstream):
        errors.append(f"agent_stack_gateway_upstream: {upstream!r} is not https://host[:port] (the key only travels over TLS)")
    errors += _pool_errors(settings["subnet"], stack)
    socket_dir = str(settings.get("ollama_socket_dir", ""))
    if socket_dir and not socket_dir.startswith("/"):
        errors.append(f"agent_stack_ollama_socket_dir: {socket_dir!r} is not an absolute path")
    if stack and not socket_dir:
        errors += [f"agent_stack_ollama_socket_dir: {agent['name']} uses the ollama backend, which needs the socket "
                   "(enable Ollama on this host)" for agent in stack["agents"] if agent["backend"]["type"] == "ollama"]
    for field in ("heartbeat_interval", "health_interval", "stop_grace", "retention", "wait_timeout", "disk_interval",
                  "disk_max_entries"):
        value = settings.get(field)
        if value is not None and (not isinstance(value, int) or value < 1):
            errors.append(f"agent_stack_{field}: {value!r} must be a whole number of seconds >= 1")
    errors += _status_page_errors(settings)
    if not re.match(r"^[a-z0-9][a-z0-9_-]*$", str(settings["project"])):
        errors.append(f"agent_stack_project: {settings['project']!r} is not a compose project name")
    return errors


def _status_page_errors(settings: dict[str, Any]) -> list[str]:
    """The page is for the host's own users and SSH tunnels: a loopback address only."""
    errors, address, port = [], str(settings.get("status_address", "127.0.0.1")), settings.get("status_port", 8377)
    try:
        if not ipaddress.ip_address(address).is_loopback:
            errors.append(f"agent_stack_status_address: {address!r} is not a loopback address (127.0.0.0/8 or ::1); "
                          "reach the page from elsewhere over an SSH tunnel")
    except ValueError:
        errors.append(f"agent_stack_status_address: {address!r} is not an IP address")
    if not isinstance(port, int) or not 1024 <= port <= 65535:
        errors.append(f"agent_stack_status_port: {port!r} must be 1024 to 65535")
    return errors


def _pool_errors(pool: str, stack: dict[str, Any] | None) -> list[str]:
    try:
        network = ipaddress.ip_network(pool)
    except ValueError as error:
        return [f"agent_stack_subnet: {error}"]
    if network.version != 4 or not network.is_private or network.prefixlen > 24:
        return [f"agent_stack_subnet: {pool} must be a private IPv4 network of /24 or larger (a /28 per agent)"]
    if stack is None:
        return []
    slots, errors = 2 ** (28 - network.prefixlen) - 1, []
    taken: dict[int, str] = {}
    for user in (u for u in stack["users"] if u["name"] in {a["account"] for a in stack["agents"]}):
        slot = user["uid"] % slots
        if slot in taken:
            errors.append(f"agent_stack_subnet: {taken[slot]} and {user['name']} get the same /28 of {pool} "
                          f"(uid modulo {slots}); use a larger pool or another uid")
        taken[slot] = user["name"]
    return errors


def agent_stack_runtime_tree(runtime: dict[str, str], root: str) -> dict[str, list[dict[str, Any]]]:
    """The host's copy of the agent runtime (relative path -> text) under root, for agentctl:
    root-owned, world-readable, its directories first."""
    subdirectories = sorted({posixpath.dirname(path) for path in runtime} - {""})
    return {"directories": [{"path": posixpath.join(root, sub).rstrip("/"), "uid": 0, "gid": 0, "mode": "0755"}
                            for sub in ["", *subdirectories]],
            "files": [{"path": posixpath.join(root, path), "text": text, "uid": 0, "gid": 0, "mode": "0644"}
                      for path, text in sorted(runtime.items())]}


def agent_stack_leaving(containers: list[dict[str, Any]], stack: dict[str, Any]) -> list[str]:
    """Names of the project's containers whose service is no longer in this host's model (a loop
    over every container, most of them skipped, costs time per agent on each run)."""
    keep = {entry["name"] for entry in stack["services"] + stack["agents"]}
    return [container["Names"][0].lstrip("/") for container in containers
            if container.get("Labels", {}).get("com.docker.compose.service") not in keep]


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"agent_stack_compose": agent_stack_compose, "agent_stack_mounts": agent_stack_mounts,
                "agent_stack_fleet_env": agent_stack_fleet_env, "agent_stack_status_url": agent_stack_status_url,
                "agent_stack_input_errors": agent_stack_input_errors,
                "agent_stack_redis_secret_files": agent_stack_redis_secret_files,
                "agent_stack_networks": agent_stack_networks, "agent_stack_leaving": agent_stack_leaving,
                "agent_stack_drift": agent_stack_drift, "agent_stack_port": agent_stack_port,
                "agent_stack_plan": agent_stack_plan,
                "agent_stack_runtime_tree": agent_stack_runtime_tree,
                "agent_stack_gateway_policy": agent_stack_gateway_policy,
                "agent_stack_disk_bounds": agent_stack_disk_bounds}
