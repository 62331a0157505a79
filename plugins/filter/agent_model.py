"""The agent model: validation, and everything derived from it (accounts, access matrix, tree).

Every later role and test reads what agent_model_stack returns; nothing re-derives ownership or
modes by hand, so the access matrix exists once.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any, Callable

NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
RUNTIME = re.compile(r"^[a-z][a-z0-9._-]{0,62}$")
MEMORY = re.compile(r"^[1-9][0-9]*[kmg]$")
# A DNS name (a leading dot also allows its subdomains); the last label has letters only, so a
# raw IPv4 or IPv6 address never matches.
DOMAIN = re.compile(r"^\.?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
CAPABILITIES = ("receives_tasks", "dispatches", "observes", "archives", "uses_ollama")
KIND_KEYS = frozenset(CAPABILITIES + ("min", "max"))
# A directory has one owner, so only one agent per stack may hold these.
SINGLE_HOLDER = ("dispatches", "archives")
BACKENDS = ("claude", "ollama", "command")
PER_RECEIVER = ("inbox", "results", "triggers")
PER_AGENT = ("workspaces", "credentials", "heartbeats", "logs")
PER_NAME = PER_RECEIVER + PER_AGENT + ("services",)
SERVICES = ("redis", "gateway", "dockerproxy", "egress")
SHARED = ("archive", "common")
RESERVED_ROOTS = frozenset(["/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/proc", "/root",
                            "/run", "/sbin", "/sys", "/tmp", "/usr", "/var"])
ROOT_UID = 0
Model = dict[str, Any]
PROJECT_KEYS = frozenset(("name", "source", "branch", "gid", "workers", "publish", "publish_branch"))
# approve: a person runs agentctl publish GOAL; on_completion: the host publishes each finished goal; never.
PUBLISH = ("approve", "on_completion", "never")
# A branch name git accepts that can never be read as an option or a path out of refs/heads/.
BRANCH = re.compile(r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9][A-Za-z0-9._/-]{0,99}(?<![./])$")
# A path on the host, or a URL git fetches from (https, ssh, git, or scp-like user@host:path).
# What the model gateway lets an agent do unless the model says otherwise (agent_model_defaults.gateway,
# then the agent's own gateway, override field by field): the Messages API only, no Anthropic-defined
# (server-side) tool, no MCP server, 32 MiB bodies, 120 requests a minute (burst 40), 8 connections,
# no daily budget (0).
GATEWAY = {"endpoints": ["POST /v1/messages", "POST /v1/messages/count_tokens"], "tools": [], "mcp_servers": [],
           "max_body_mb": 32, "rate_per_minute": 120, "burst": 40, "connections": 8,
           "budget_requests": 0, "budget_tokens": 0}
GATEWAY_LIMITS = {"max_body_mb": (1, 64), "rate_per_minute": (1, 60000), "burst": (0, 10000), "connections": (1, 1000),
                  "budget_requests": (0, 10**9), "budget_tokens": (0, 10**12)}
# What an agent may keep on the host's disk (files it owns anywhere in the tree): MiB and files.
DISK = {"mb": 10240, "files": 1_000_000}
ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/[A-Za-z0-9_-]+)+$")
TOOL_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MCP_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$")
SOURCE = re.compile(r"^(/[^\s]*|(https|ssh|git)://[^\s]+|[A-Za-z0-9][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:[^\s]+)$")


def _label(index: int, agent: Any) -> str:
    name = agent.get("name") if isinstance(agent, dict) else None
    return f"agent_model_agents[{index}]" + (f" ({name})" if name else "")


def _id_errors(field: str, value: Any, floor: int) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool):
        return [f"{field}: {value!r} is not an integer"]
    if value == ROOT_UID:
        return [f"{field}: 0 is root; agents never run as root"]
    if value < floor:
        return [f"{field}: {value} is below agent_model_uid_floor {floor}"]
    if value > 2**31 - 2:
        return [f"{field}: {value} is above the largest usable id"]
    return []


def _kind_errors(kinds: Any) -> list[str]:
    if not isinstance(kinds, dict) or not kinds:
        return ["agent_model_kinds: must map at least one kind name to its capabilities"]
    errors = []
    for kind, spec in kinds.items():
        # A kind is written into heartbeats, which readers check against this same pattern.
        if not isinstance(kind, str) or not NAME.match(kind):
            errors.append(f"agent_model_kinds.{kind}: the kind name does not match ^[a-z][a-z0-9-]{{0,30}}$")
        if not isinstance(spec, dict):
            errors.append(f"agent_model_kinds.{kind}: must be a mapping")
            continue
        unknown = sorted(set(spec) - KIND_KEYS)
        if unknown:
            errors.append(f"agent_model_kinds.{kind}: unknown keys {unknown}; known: {sorted(KIND_KEYS)}")
        low, high = spec.get("min", 0), spec.get("max")
        if not isinstance(low, int) or (high is not None and (not isinstance(high, int) or high < low)):
            errors.append(f"agent_model_kinds.{kind}: min/max must be integers with min <= max")
    return errors


def _agent_errors(index: int, agent: Any, model: Model) -> list[str]:
    label = _label(index, agent)
    if not isinstance(agent, dict):
        return [f"{label}: must be a mapping"]
    errors = []
    name = agent.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        errors.append(f"{label}.name: {name!r} does not match ^[a-z][a-z0-9-]{{0,30}}$")
    if agent.get("kind") not in model["kinds"]:
        errors.append(f"{label}.kind: {agent.get('kind')!r} is not one of {sorted(model['kinds'])}")
    floor = model["uid_floor"]
    errors += _id_errors(f"{label}.uid", agent.get("uid"), floor)
    errors += _id_errors(f"{label}.gid", agent.get("gid", agent.get("uid")), floor)
    merged = _with_defaults(agent, model["defaults"])
    for nested in ("resources", "backend"):
        for field, value in ((f"agent_model_defaults.{nested}", model["defaults"].get(nested, {})),
                             (f"{label}.{nested}", agent.get(nested, {}))):
            if not isinstance(value, dict):
                errors.append(f"{field}: must be a mapping")
    resources = merged["resources"]
    if not isinstance(resources.get("cpus"), (int, float)) or resources["cpus"] <= 0:
        errors.append(f"{label}.resources.cpus: {resources.get('cpus')!r} must be a number above 0")
    if not MEMORY.match(str(resources.get("memory"))):
        errors.append(f"{label}.resources.memory: {resources.get('memory')!r} must look like 512m or 2g")
    if not isinstance(resources.get("pids"), int) or resources["pids"] < 32:
        errors.append(f"{label}.resources.pids: {resources.get('pids')!r} must be an integer >= 32")
    for field in ("runtime", "image"):
        if field not in merged:
            errors.append(f"{label}.{field}: not set, here or in agent_model_defaults")
    if "runtime" in merged and not RUNTIME.match(str(merged["runtime"])):
        errors.append(f"{label}.runtime: {merged['runtime']!r} is not a runtime name")
    if "image" in merged and not str(merged["image"]).strip():
        errors.append(f"{label}.image: must not be empty")
    backend = merged["backend"]
    if backend.get("type") not in BACKENDS:
        errors.append(f"{label}.backend.type: {backend.get('type')!r} is not one of {list(BACKENDS)}")
    if backend.get("type") == "command" and not backend.get("argv"):
        errors.append(f"{label}.backend.argv: the command backend needs an argv list")
    if not isinstance(agent.get("redis", False), bool):
        errors.append(f"{label}.redis: {agent['redis']!r} must be true or false")
    if not isinstance(agent.get("ollama", False), bool):
        errors.append(f"{label}.ollama: {agent['ollama']!r} must be true or false")
    elif backend.get("type") == "ollama" and agent.get("kind") in model["kinds"] and not _uses_ollama(model, agent):
        errors.append(f"{label}.backend.type: ollama needs the agent's route to Ollama; set ollama: true")
    egress = merged.get("egress", [])
    if not isinstance(egress, list):
        errors.append(f"{label}.egress: must be a list of domain names")
    else:
        errors += [f"{label}.egress[{i}]: {domain!r} is not a domain name such as registry.npmjs.org or .npmjs.org "
                   "(raw IP addresses and wildcards are never allowed)"
                   for i, domain in enumerate(egress) if not isinstance(domain, str) or not DOMAIN.match(domain)]
    return errors + _gateway_errors(label, agent, model) + _disk_errors(label, agent, model)


def _disk_errors(label: str, agent: dict[str, Any], model: Model) -> list[str]:
    for field, value in (("agent_model_defaults.disk", model["defaults"].get("disk", {})), (f"{label}.disk", agent.get("disk", {}))):
        if not isinstance(value, dict):
            return [f"{field}: must be a mapping with mb and files"]
        if set(value) - set(DISK):
            return [f"{field}.{key}: unknown field (known: mb, files)" for key in sorted(set(value) - set(DISK))]
    disk = _with_defaults(agent, model["defaults"])["disk"]
    return [f"{label}.disk.{key}: {disk[key]!r} must be a whole number from 1 to 100000000"
            for key in DISK if not isinstance(disk[key], int) or isinstance(disk[key], bool) or not 1 <= disk[key] <= 10**8]


def _gateway_errors(label: str, agent: dict[str, Any], model: Model) -> list[str]:
    errors = []
    for field, value in (("agent_model_defaults.gateway", model["defaults"].get("gateway", {})),
                         (f"{label}.gateway", agent.get("gateway", {}))):
        if not isinstance(value, dict):
            return [f"{field}: must be a mapping"]
        errors += [f"{field}.{key}: unknown field (known: {', '.join(GATEWAY)})" for key in value if key not in GATEWAY]
    policy = _gateway(agent, model["defaults"])
    where = f"{label}.gateway"
    for key, (low, high) in GATEWAY_LIMITS.items():
        value = policy.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            errors.append(f"{where}.{key}: {value!r} must be a whole number from {low} to {high}")
    for key, pattern, example in (("endpoints", ENDPOINT, "POST /v1/messages"), ("tools", TOOL_TYPE, "web_search"),
                                  ("mcp_servers", MCP_URL, "https://mcp.example.com/sse")):
        value = policy.get(key)
        if not isinstance(value, list):
            errors.append(f"{where}.{key}: must be a list")
            continue
        errors += [f"{where}.{key}[{i}]: {item!r} does not look like {example!r}"
                   for i, item in enumerate(value) if not isinstance(item, str) or not pattern.match(item)]
    return errors


def _gateway(agent: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The agent's gateway policy: built-in defaults, then agent_model_defaults.gateway, then its own."""
    own, common = agent.get("gateway"), defaults.get("gateway")
    return {**GATEWAY, **(common if isinstance(common, dict) else {}), **(own if isinstance(own, dict) else {})}


def _duplicates(field: str, values: list[tuple[str, Any]]) -> list[str]:
    seen: dict[Any, str] = {}
    errors = []
    for owner, value in values:
        if value in seen:
            errors.append(f"{field}: {value!r} is used by both {seen[value]} and {owner}")
        seen.setdefault(value, owner)
    return errors


def _root_errors(root: Any) -> list[str]:
    if not isinstance(root, str) or not root.startswith("/"):
        return [f"agent_model_root: {root!r} must be an absolute path"]
    if posixpath.normpath(root) != root or root in RESERVED_ROOTS:
        return [f"agent_model_root: {root!r} must be a normalised path below a system directory, not one itself"]
    return []


def agent_model_errors(model: Model) -> list[str]:
    """Everything wrong with the model itself, each naming its field; [] when valid."""
    errors = _kind_errors(model["kinds"]) + _root_errors(model["root"])
    if errors:
        return errors
    agents = model["agents"]
    for index, agent in enumerate(agents):
        errors += _agent_errors(index, agent, model)
    for index, service in enumerate(model["services"]):
        label = f"agent_model_services[{index}]"
        if not NAME.match(str(service.get("name"))):
            errors.append(f"{label}.name: {service.get('name')!r} does not match ^[a-z][a-z0-9-]{{0,30}}$")
        errors += _id_errors(f"{label}.uid", service.get("uid"), model["uid_floor"])
        errors += _id_errors(f"{label}.gid", service.get("gid", service.get("uid")), model["uid_floor"])
    missing = sorted(set(SERVICES) - {service.get("name") for service in model["services"]})
    if missing:
        errors.append(f"agent_model_services: the stack needs {', '.join(missing)} (set their uid, do not remove them)")
    for field in ("observers_gid", "common_gid"):
        errors += _id_errors(f"agent_model_{field}", model[field], model["uid_floor"])
    for index, project in enumerate(model.get("projects", [])):
        errors += _project_errors(index, project, model)
    if errors:
        return errors
    errors += _duplicates("agent_model_agents[].name", [(f"agents[{i}]", a["name"]) for i, a in enumerate(agents)])
    errors += _duplicates("agent_model_projects[].name", [(f"projects[{i}]", p["name"])
                                                          for i, p in enumerate(model.get("projects", []))])
    accounts = _accounts(model, agents)
    errors += _duplicates("user name", [(u["owner"], u["name"]) for u in accounts["users"]])
    errors += _duplicates("group name", [(g["owner"], g["name"]) for g in accounts["groups"]])
    errors += _duplicates("uid", [(u["owner"], u["uid"]) for u in accounts["users"]])
    errors += _duplicates("gid", [(g["owner"], g["gid"]) for g in accounts["groups"]])
    return errors or _selection_errors(model)


def _project_errors(index: int, project: Any, model: Model) -> list[str]:
    label = f"agent_model_projects[{index}]"
    if not isinstance(project, dict):
        return [f"{label}: must be a mapping"]
    label = f"{label} ({project.get('name')})" if isinstance(project.get("name"), str) else label
    errors = [f"{label}: unknown keys {sorted(set(project) - PROJECT_KEYS)}; known: {sorted(PROJECT_KEYS)}"
              ] if set(project) - PROJECT_KEYS else []
    if not isinstance(project.get("name"), str) or not NAME.match(project["name"]):
        errors.append(f"{label}.name: {project.get('name')!r} does not match ^[a-z][a-z0-9-]{{0,30}}$")
    if not isinstance(project.get("source"), str) or not SOURCE.match(project["source"]):
        errors.append(f"{label}.source: {project.get('source')!r} is not an absolute path on the host or a git URL "
                      "(https://, ssh://, git://, user@host:path)")
    branch = project.get("branch", "main")
    if not isinstance(branch, str) or not BRANCH.match(branch):
        errors.append(f"{label}.branch: {branch!r} is not a branch name")
    errors += _id_errors(f"{label}.gid", project.get("gid"), model["uid_floor"])
    if project.get("publish", "approve") not in PUBLISH:
        errors.append(f"{label}.publish: {project.get('publish')!r} is not one of {list(PUBLISH)}")
    target = project.get("publish_branch", "agentfleet/{goal}")
    if not isinstance(target, str) or not BRANCH.match(target.replace("{goal}", "g")) or target.count("{") != target.count("{goal}"):
        errors.append(f"{label}.publish_branch: {target!r} is not a branch name ({{goal}} stands for the goal's id)")
    names = {agent.get("name") for agent in model["agents"] if isinstance(agent, dict)}
    workers = project.get("workers", [])
    if not isinstance(workers, list) or not all(isinstance(name, str) for name in workers):
        errors.append(f"{label}.workers: must be a list of agent names")
    elif set(workers) - names:
        errors.append(f"{label}.workers: {sorted(set(workers) - names)} are not in agent_model_agents")
    return errors


def _project_readers(model: Model, project: dict[str, Any], agents: list[dict[str, Any]]) -> list[str]:
    """Who may read a project's mirror: its workers (default: every agent that receives tasks)
    and the agent that dispatches (it plans on the code)."""
    workers = project.get("workers") or [a["name"] for a in agents if _can(model, a, "receives_tasks")]
    return sorted({a["name"] for a in agents if a["name"] in workers or _can(model, a, "dispatches")})


def _selection_errors(model: Model) -> list[str]:
    names = [agent["name"] for agent in model["agents"]]
    chosen = model["host_agents"]
    if chosen is not None:
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            return [f"agent_model_host_agents: {unknown} are not in agent_model_agents"]
    selected = _selected(model)
    errors = []
    for kind, spec in model["kinds"].items():
        count = sum(1 for agent in selected if agent["kind"] == kind)
        low, high = spec.get("min", 0), spec.get("max")
        if count < low or (high is not None and count > high):
            wanted = f"exactly {low}" if low == high else f"between {low} and {high if high is not None else 'any'}"
            errors.append(f"agent_model_host_agents: this host runs {count} agent(s) of kind {kind}, needs {wanted}")
    for capability in SINGLE_HOLDER:
        holders = [a["name"] for a in selected if _can(model, a, capability)]
        if len(holders) > 1:
            errors.append(f"agent_model_kinds: only one agent per host may hold {capability}, found {holders}")
    receivers = [a for a in selected if _can(model, a, "receives_tasks")]
    if receivers and not any(_can(model, a, "dispatches") for a in selected):
        errors.append("agent_model_host_agents: agents that receive tasks need an agent whose kind dispatches")
    return errors


def _can(model: Model, agent: dict[str, Any], capability: str) -> bool:
    return bool(model["kinds"][agent["kind"]].get(capability, False))


def _uses_ollama(model: Model, agent: dict[str, Any]) -> bool:
    """Whether the agent gets the route to the host's Ollama: its own ollama, else its kind's uses_ollama."""
    return bool(agent.get("ollama", _can(model, agent, "uses_ollama")))


def _with_defaults(agent: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **agent}
    for nested in ("resources", "backend"):
        common, own = defaults.get(nested), agent.get(nested)
        merged[nested] = {**(common if isinstance(common, dict) else {}), **(own if isinstance(own, dict) else {})}
    merged.setdefault("gid", agent.get("uid"))
    merged.setdefault("description", "")
    merged.setdefault("role", "")
    merged.setdefault("egress", [])
    merged["redis"] = agent.get("redis") is True
    common, own = defaults.get("disk"), agent.get("disk")
    merged["disk"] = {**DISK, **(common if isinstance(common, dict) else {}), **(own if isinstance(own, dict) else {})}
    merged["gateway"] = _gateway(agent, defaults)
    return merged


def _selected(model: Model) -> list[dict[str, Any]]:
    chosen = model["host_agents"]
    return [{**_with_defaults(a, model["defaults"]), "ollama": _uses_ollama(model, a)}
            for a in model["agents"] if chosen is None or a["name"] in chosen]


def _accounts(model: Model, agents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    root, prefix = model["root"], model["account_prefix"]
    observers, common = "agentfleet-observers", "agentfleet-common"
    users, groups = [], [
        {"name": observers, "gid": model["observers_gid"], "owner": "agent_model_observers_gid"},
        {"name": common, "gid": model["common_gid"], "owner": "agent_model_common_gid"},
    ]
    projects = model.get("projects", [])
    for project in projects:
        groups.append({"name": f"agentfleet-project-{project['name']}", "gid": project.get("gid"),
                       "owner": f"project {project['name']}"})
    for agent in agents:
        name, kind = prefix + agent["name"], agent.get("kind")
        extra = [common] + ([observers] if kind in model["kinds"] and _can(model, agent, "observes") else [])
        if kind in model["kinds"]:
            extra += [f"agentfleet-project-{p['name']}" for p in projects
                      if agent["name"] in _project_readers(model, p, agents)]
        gid = agent.get("gid", agent.get("uid"))
        users.append({"name": name, "uid": agent.get("uid"), "gid": gid, "group": name, "groups": extra,
                      "home": f"{root}/workspaces/{agent['name']}", "comment": f"agentfleet {kind} {agent['name']}",
                      "owner": f"agent {agent['name']}"})
        groups.append({"name": name, "gid": gid, "owner": f"agent {agent['name']}"})
    for service in model["services"]:
        name = f"agentfleet-{service['name']}"
        gid = service.get("gid", service.get("uid"))
        users.append({"name": name, "uid": service["uid"], "gid": gid, "group": name, "groups": [],
                      "home": f"{root}/services/{service['name']}", "comment": f"agentfleet service {service['name']}",
                      "owner": f"service {service['name']}"})
        groups.append({"name": name, "gid": gid, "owner": f"service {service['name']}"})
    return {"users": users, "groups": groups}


def _entry(path: str, owner: tuple[str, int], group: tuple[str, int], mode: str, purpose: str,
           read: list[str], write: list[str]) -> dict[str, Any]:
    return {"path": path, "owner_name": owner[0], "owner": owner[1], "group_name": group[0], "group": group[1],
            "mode": mode, "purpose": purpose, "read": sorted(set(read)), "write": sorted(set(write))}


def _paths(model: Model, agents: list[dict[str, Any]], accounts: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The access matrix: who reads and who writes each path, and the owner/group/mode that enforce it."""
    root = model["root"]
    user = {u["name"]: (u["name"], u["uid"]) for u in accounts["users"]}
    group = {g["name"]: (g["name"], g["gid"]) for g in accounts["groups"]}
    account = {a["name"]: model["account_prefix"] + a["name"] for a in agents}
    names = sorted(account)

    def holders(capability: str) -> list[str]:
        return [a["name"] for a in agents if _can(model, a, capability)]

    observers = holders("observes")
    dispatcher: str | None = next(iter(holders("dispatches")), None)
    archiver: str | None = next(iter(holders("archives")), None)
    root_id, observers_group = ("root", ROOT_UID), group["agentfleet-observers"]
    paths = [_entry(root, root_id, ("root", ROOT_UID), "0755", "base", names, [])]
    paths += [_entry(f"{root}/{c}", root_id, ("root", ROOT_UID), "0755", c, names, []) for c in PER_NAME]
    paths.append(_entry(f"{root}/archive", user[account[archiver]] if archiver else root_id, observers_group,
                        "0750", "archive", observers + ([archiver] if archiver else []), [archiver] if archiver else []))
    paths.append(_entry(f"{root}/common", root_id, group["agentfleet-common"], "3770", "common", names, names))
    paths.append(_entry(f"{root}/retired", root_id, ("root", ROOT_UID), "0700", "retired", [], []))
    # The host's disk watcher (root) reports each agent's usage against its bound here.
    paths.append(_entry(f"{root}/disk", root_id, observers_group, "0750", "disk", observers, []))
    dispatch_owner = user[account[dispatcher]] if dispatcher else root_id
    dispatchers = [dispatcher] if dispatcher else []
    for agent in agents:
        name, own = agent["name"], user[account[agent["name"]]]
        if _can(model, agent, "receives_tasks"):
            paths += [
                _entry(f"{root}/inbox/{name}", dispatch_owner, group[account[name]], "0750", "inbox",
                       dispatchers + [name], dispatchers),
                _entry(f"{root}/results/{name}", own, observers_group, "0750", "results", [name] + observers, [name]),
                _entry(f"{root}/triggers/{name}", dispatch_owner, group[account[name]], "0770", "triggers",
                       dispatchers + [name], dispatchers + [name]),
            ]
        for category in ("heartbeats", "logs"):
            paths.append(_entry(f"{root}/{category}/{name}", own, observers_group, "0750", category,
                                [name] + observers, [name]))
        for category in ("workspaces", "credentials"):
            paths.append(_entry(f"{root}/{category}/{name}", own, group[account[name]], "0700", category, [name], [name]))
    if model.get("projects"):
        paths.append(_entry(f"{root}/projects", root_id, ("root", ROOT_UID), "0755", "projects", names, []))
    # True only as the role passes it (agent_model_fleet | bool; its argument spec checks the type).
    if model.get("fleet") is True and dispatcher:
        # The dispatcher's tasks for the fleet; the host's relay (acting as the dispatcher) sends them.
        paths.append(_entry(f"{root}/outbox", dispatch_owner, group[account[dispatcher]], "0700", "outbox",
                            dispatchers, dispatchers))
        # The results of the tasks it sent, as the relay brought them back (acting as the dispatcher).
        paths.append(_entry(f"{root}/fleet", dispatch_owner, observers_group, "0750", "fleet",
                            dispatchers + observers, dispatchers))
    if model.get("projects") and dispatcher:
        paths.append(_entry(f"{root}/integration", root_id, ("root", ROOT_UID), "0755", "integration", names, []))
    for project in model.get("projects", []):
        readers, project_group = _project_readers(model, project, agents), group[f"agentfleet-project-{project['name']}"]
        # The host's mirror, written by root only (role agent_projects); its readers clone from it.
        paths.append(_entry(f"{root}/projects/{project['name']}", root_id, project_group, "0750", "project", readers, []))
        if dispatcher:
            # The dispatcher's shared integration repository: the bases of follow-up tasks.
            paths.append(_entry(f"{root}/integration/{project['name']}", dispatch_owner, project_group, "0750",
                                "integration", readers, dispatchers))
    for service in model["services"]:
        account_name = f"agentfleet-{service['name']}"
        paths.append(_entry(f"{root}/services/{service['name']}", user[account_name], group[account_name], "0700",
                            "services", [], []))
    return paths


def agent_model_stack(model: Model) -> dict[str, Any]:
    """What this host runs, its accounts and its tree; call only on a model without errors."""
    agents = _selected(model)
    accounts = _accounts(model, agents)
    for agent in agents:
        agent["account"] = model["account_prefix"] + agent["name"]
        agent["capabilities"] = {c: _can(model, agent, c) for c in CAPABILITIES}
    for item in accounts["users"] + accounts["groups"]:
        item.pop("owner", None)
    root = model["root"]
    projects = [{"name": p["name"], "source": p["source"], "branch": p.get("branch", "main"),
                 "publish": p.get("publish", "approve"), "publish_branch": p.get("publish_branch", "agentfleet/{goal}"),
                 "mirror": f"{root}/projects/{p['name']}", "integration": f"{root}/integration/{p['name']}",
                 "readers": _project_readers(model, p, agents)}
                for p in model.get("projects", [])]
    return {"root": root, "agents": agents, "services": model["services"], "projects": projects, **accounts,
            "paths": _paths(model, agents, accounts), "per_name_dirs": [f"{root}/{c}" for c in PER_NAME],
            "retired_dir": f"{root}/retired", "registry": model["registry"]}


def agent_model_host_errors(stack: dict[str, Any], passwd: dict[str, list[str]], group: dict[str, list[str]],
                            owned: dict[str, Any]) -> list[str]:
    """Clashes with host accounts agentfleet did not create (owned = the registry it keeps)."""
    mine_users, mine_groups = set(owned.get("users", {})), set(owned.get("groups", {}))
    errors = []
    users_by_uid = {int(entry[1]): name for name, entry in passwd.items()}
    groups_by_gid = {int(entry[1]): name for name, entry in group.items()}
    desired_users = {u["name"] for u in stack["users"]}
    desired_groups = {g["name"] for g in stack["groups"]}
    for user in stack["users"]:
        errors += _clash("user", user["name"], user["uid"], passwd, users_by_uid, mine_users, desired_users)
    for entry in stack["groups"]:
        errors += _clash("group", entry["name"], entry["gid"], group, groups_by_gid, mine_groups, desired_groups)
    return errors


def _clash(what: str, name: str, number: int, table: dict[str, list[str]], by_number: dict[int, str],
           mine: set[str], desired: set[str]) -> list[str]:
    errors = []
    if name in table and name not in mine:
        errors.append(f"{what} {name}: exists on the host and agentfleet did not create it")
    holder = by_number.get(number)
    if holder is not None and holder != name:
        if holder not in mine:
            errors.append(f"{what} {name}: id {number} belongs to host {what} {holder}, which agentfleet did not create")
        elif holder in desired:
            errors.append(f"{what} {name}: id {number} is still held by {holder}; swap ids in two separate runs")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {
            "agent_model_errors": agent_model_errors,
            "agent_model_stack": agent_model_stack,
            "agent_model_host_errors": agent_model_host_errors,
        }
