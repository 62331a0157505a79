"""The fleet's NATS server: its configuration and each host's permissions, derived from the fleet
(every host's node name, address, workers and roles), and the role's input checks.

The protocol the permissions allow, and nothing else:
  fleet.task.worker.<worker>, fleet.task.role.<role>   any host submits (stream AGENTFLEET_TASKS,
                                                       work-queue retention, de-duplicated by task id)
  consumer worker-<worker> / role-<role>               pulled and acknowledged only by the hosts that
                                                       run that worker / a worker of that role
  fleet.result.<node>.<origin>.<task>                  a host publishes only under its own node, to the
                                                       host that sent the task (stream AGENTFLEET_RESULTS,
                                                       de-duplicated); consumer results-<origin> pulled and
                                                       acknowledged by that host alone
  $KV.agentfleet_workers.<node>.<worker>               a host writes only its own workers' entries
  fleet.file.<node>.base.<project>.<task>.<part>       a task's base, published by the host that sends
                                                       the task; read (direct get) only by the hosts
                                                       whose workers take that project
  fleet.file.<node>.<manifest|bundle>.<origin>.<task>.<part>
                                                       a result's proposal, published by the host that ran
                                                       the task; read only by the task's origin
                                                       (stream AGENTFLEET_FILES, kept for the duplicate window)
  _INBOX_<node>.>                                      a host's replies, read by that host alone
Streams and consumers are made by the admin user, whose certificate only root on a fleet host holds.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from typing import Any

NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
SIZE = re.compile(r"^[1-9][0-9]*[KMGT]?$")
TASKS, RESULTS, WORKERS, FILES = "AGENTFLEET_TASKS", "AGENTFLEET_RESULTS", "agentfleet_workers", "AGENTFLEET_FILES"
# What no relay may ask of the JetStream API, whatever else it is allowed.
DENIED = ["$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>", "$JS.API.STREAM.PURGE.>",
          "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.CREATE." + TASKS + ".>",
          "$JS.API.CONSUMER.DURABLE.CREATE." + TASKS + ".>", "$SYS.>"]


def nats_node(name: str) -> str:
    """A host's node name: its inventory name with what a subject token cannot hold replaced."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)[:63]


def nats_fleet(names: list[str], hostvars: Any) -> dict[str, dict[str, Any]]:
    """The fleet by node name, from each host's nats_plan (set by the role's validation on that
    host); a host whose plan is missing is not in this play."""
    fleet = {}
    for name in names:
        plan = hostvars[name].get("nats_plan")
        if isinstance(plan, dict):
            fleet[str(plan["node"])] = {key: plan[key] for key in ("address", "workers", "roles")}
            fleet[str(plan["node"])]["dispatches"] = bool(plan.get("dispatches", True))
            fleet[str(plan["node"])]["projects"] = list(plan.get("projects", []))
        else:
            fleet[nats_node(name)] = {"address": "", "workers": [], "roles": [], "missing": True}
    return fleet


def nats_relay_permissions(node: str, workers: list[str], roles: list[str], projects: list[str] | None = None) -> dict[str, Any]:
    consumers = [f"worker-{name}" for name in sorted(workers)] + [f"role-{role}" for role in sorted(set(roles))]
    publish = ["fleet.task.>", f"fleet.result.{node}.>", "$JS.API.INFO", f"$JS.API.STREAM.INFO.{TASKS}",
               f"$JS.API.STREAM.INFO.{RESULTS}", f"$JS.API.STREAM.INFO.KV_{WORKERS}",
               f"$JS.API.CONSUMER.CREATE.{RESULTS}", f"$JS.API.CONSUMER.CREATE.{RESULTS}.>",
               f"$JS.API.CONSUMER.CREATE.KV_{WORKERS}", f"$JS.API.CONSUMER.CREATE.KV_{WORKERS}.>",
               f"$JS.API.DIRECT.GET.KV_{WORKERS}.>", f"$JS.API.STREAM.MSG.GET.KV_{WORKERS}",
               f"$KV.{WORKERS}.{node}.>", f"fleet.file.{node}.>"]
    direct = f"$JS.API.DIRECT.GET.{FILES}.fleet.file.*"
    publish += [f"{direct}.base.{project}.>" for project in sorted(set(projects or []))]
    publish += [f"{direct}.manifest.{node}.>", f"{direct}.bundle.{node}.>"]
    for stream, consumer in [(TASKS, name) for name in consumers] + [(RESULTS, f"results-{node}")]:
        publish += [f"$JS.API.CONSUMER.INFO.{stream}.{consumer}", f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}",
                    f"$JS.ACK.{stream}.{consumer}.>"]
    return {"publish": {"allow": publish, "deny": DENIED},
            "subscribe": {"allow": [f"_INBOX_{node}.>"], "deny": ["$SYS.>"]}}


def nats_admin_permissions(node: str) -> dict[str, Any]:
    return {"publish": {"allow": ["$JS.API.>"], "deny": ["$SYS.>"]},
            "subscribe": {"allow": [f"_INBOX_{node}_admin.>"]}}


def nats_server_config(fleet: dict[str, dict[str, Any]], node: str, settings: dict[str, Any]) -> str:
    """nats-server's configuration for node (NATS's JSON-compatible syntax): TLS everywhere, users
    mapped from their certificates' subjects, routes to every other node, JetStream bounded."""
    tls_dir = settings["tls_dir"]
    tls = {"cert_file": f"{tls_dir}/server.pem", "key_file": f"{tls_dir}/server.key", "ca_file": f"{tls_dir}/ca.pem",
           "timeout": 5}
    users = []
    for name in sorted(fleet):
        host = fleet[name]
        users.append({"user": f"CN=agentfleet-relay-{name}",
                      "permissions": nats_relay_permissions(name, host["workers"], host["roles"], host.get("projects"))})
        users.append({"user": f"CN=agentfleet-admin-{name}", "permissions": nats_admin_permissions(name)})
    me = fleet[node]
    config: dict[str, Any] = {
        "server_name": node, "host": me["address"], "port": int(settings["client_port"]),
        "max_payload": int(settings["max_payload"]), "max_connections": int(settings["max_connections"]),
        "tls": {**tls, "verify_and_map": True},
        "jetstream": {"store_dir": settings["store_dir"], "max_file_store": settings["store_max"],
                      "max_memory_store": settings["memory_max"]},
        "accounts": {"FLEET": {"jetstream": "enabled", "users": users}},
    }
    others = [name for name in sorted(fleet) if name != node]
    if others:
        config["cluster"] = {
            "name": settings["cluster_name"], "host": me["address"], "port": int(settings["cluster_port"]),
            "tls": {**tls, "verify": True},
            "routes": [f"nats-route://{url_host(fleet[name]['address'])}:{settings['cluster_port']}" for name in others]}
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def size_bytes(size: str) -> int:
    """A NATS size (2G, 512M, 4096) in bytes."""
    power = "KMGT".index(size[-1]) + 1 if size[-1] in "KMGT" else 0
    return int(size.rstrip("KMGT")) * int(1024**power)


def url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def nats_input_errors(fleet: dict[str, dict[str, Any]], settings: dict[str, Any]) -> list[str]:
    """Every bad input, each naming its variable (fleet: node -> address, workers, roles)."""
    errors = []
    missing = sorted(node for node, host in fleet.items() if host.get("missing"))
    if missing:
        errors.append(f"nats_fleet_group: {', '.join(missing)} not in this play: every host of the fleet must be"
                      " (each one's permissions name the others' workers)")
    for node, host in sorted(fleet.items()):
        if host.get("missing"):
            continue
        if not NODE.match(node):
            errors.append(f"nats_node_name: {node!r} must be letters, digits, - or _ (a subject token)")
        try:
            address = ipaddress.ip_address(str(host.get("address", "")))
            if address.is_loopback or address.is_unspecified or address.is_multicast:
                errors.append(f"nats_address: {address} on {node} must be the host's own fleet address, not loopback or any")
        except ValueError:
            errors.append(f"nats_address: {host.get('address')!r} on {node} is not an IP address")
    seen: dict[str, list[str]] = {}
    for node, host in sorted(fleet.items()):
        for worker in host.get("workers", []):
            seen.setdefault(worker, []).append(node)
    errors += [f"agent_model_agents: worker {worker} runs on {' and '.join(nodes)}: a worker's name must be unique in the"
               " fleet (tasks are addressed to it by name)" for worker, nodes in sorted(seen.items()) if len(nodes) > 1]
    errors += [f"agent_model_agents: {node} runs workers but no agent that dispatches: its relay writes their"
               " inboxes as the dispatcher" for node, host in sorted(fleet.items())
               if host.get("workers") and not host.get("dispatches", True)]
    addresses = [str(host.get("address")) for host in fleet.values()]
    if len(set(addresses)) != len(addresses):
        errors.append("nats_address: two hosts of the fleet have the same address")
    for key in ("client_port", "cluster_port", "max_payload", "max_connections"):
        # A message carries a task or result (up to 8 MiB of output is cut to fit) or a file's chunk.
        low, high = {"max_payload": (65536, 67108864), "max_connections": (4, 65536)}.get(key, (1024, 65535))
        if not str(settings.get(key, "")).isdigit() or not low <= int(settings[key]) <= high:
            errors.append(f"nats_{key}: {settings.get(key)!r} must be a whole number from {low} to {high}")
    if settings.get("client_port") == settings.get("cluster_port"):
        errors.append("nats_cluster_port: must differ from nats_client_port")
    for key in ("store_max", "memory_max"):
        if not SIZE.match(str(settings.get(key, ""))):
            errors.append(f"nats_{key}: {settings.get(key)!r} must be a size such as 2G or 512M")
    if "py_sha256" in settings and not re.match(r"^[0-9a-f]{64}$", str(settings["py_sha256"])):
        errors.append(f"nats_py_sha256: {settings['py_sha256']!r} must be 64 lowercase hex digits")
    for key, low in (("lease", 5), ("duplicate_window", 60), ("stream_max_bytes", 1048576)):
        if key in settings and (not str(settings[key]).isdigit() or int(settings[key]) < low):
            errors.append(f"nats_{key}: {settings[key]!r} must be a whole number of at least {low}")
    if SIZE.match(str(settings.get("store_max", ""))) and str(settings.get("stream_max_bytes", "")).isdigit():
        if 3 * int(settings["stream_max_bytes"]) + 16 * 2**20 > size_bytes(str(settings["store_max"])):
            errors.append(f"nats_stream_max_bytes: three streams of {settings['stream_max_bytes']} bytes (tasks, results, files)"
                          f" and the workers' bucket do not fit in nats_store_max {settings['store_max']}")
    if not str(settings.get("store_dir", "")).startswith("/"):
        errors.append(f"nats_store_dir: {settings.get('store_dir')!r} must be an absolute path")
    if not NODE.match(str(settings.get("cluster_name", ""))):
        errors.append(f"nats_cluster_name: {settings.get('cluster_name')!r} must be letters, digits, - or _")
    return errors


def nats_relay_settings(stack: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The relay's settings file, from this host's agent model (agent_model_stack): its workers and
    their roles, every agent's uid (the owners it checks), and the dispatcher it acts as in the tree."""
    agents = stack["agents"]
    dispatcher = next((agent for agent in agents if agent["capabilities"]["dispatches"]), None)
    users: dict[str, dict[str, Any]] = {user["name"]: user for user in stack["users"]}
    gids = {group["name"]: int(group["gid"]) for group in stack["groups"]}
    account: dict[str, Any] = users[dispatcher["account"]] if dispatcher else {"uid": 0, "gid": 0, "groups": []}
    given = {key: value for key, value in settings.items() if key not in ("address", "client_port")}
    return {**given, "url": f"tls://{url_host(str(settings['address']))}:{settings['client_port']}", "root": stack["root"],
            "roles": {agent["name"]: agent.get("role", "") for agent in agents if agent["kind"] == "worker"},
            "projects": {agent["name"]: sorted(p["name"] for p in stack.get("projects", []) if agent["name"] in p["readers"])
                         for agent in agents if agent["kind"] == "worker"},
            "agents": {agent["name"]: int(users[agent["account"]]["uid"]) for agent in agents},
            "dispatcher_uid": int(account["uid"]), "dispatcher_gid": int(account["gid"]),
            "dispatcher_groups": sorted({int(account["gid"])} | {gids[name] for name in account["groups"]})}


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"nats_node": nats_node, "nats_server_config": nats_server_config, "nats_fleet": nats_fleet,
                "nats_input_errors": nats_input_errors, "nats_relay_permissions": nats_relay_permissions,
                "nats_relay_settings": nats_relay_settings}
