"""What each agent must not be able to do, from the agent model and the deployed compose project.

The probe (files/agentfleet_probe.py) runs inside each agent container with one of these specs;
its rows come back here to be judged and tabulated.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from typing import Any

from ansible_collections.agentfleet.fleet.plugins.module_utils.stack_ports import PORTS

INSIDE = "/agentfleet"
OLLAMA_SOCKET = "/run/ollama/ollama.sock"
SERVICE_PORTS = {service: PORTS[service] for service in ("gateway", "egress", "redis")}
DISCARD_PORT = 9  # any port: a refused connect proves the address answers as well as an open one


def _inside_paths(stack: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """Every mountable path of the matrix as the agent sees it, with what the model allows."""
    root, paths = stack["root"], []
    for entry in stack["paths"]:
        relative = entry["path"][len(root):].lstrip("/")
        if relative.count("/") != 1 and relative not in ("archive", "common"):
            continue
        paths.append({"path": f"{INSIDE}/{relative}", "read": name in entry["read"], "write": name in entry["write"]})
    return paths


def _addresses(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    """service -> {network: fixed address} in the deployed project."""
    return {service: {net: (spec or {}).get("ipv4_address", "") for net, spec in definition["networks"].items()}
            for service, definition in compose["services"].items()}


def _proxy_cases(agent: dict[str, Any], connect_allowed: bool) -> list[list[str]]:
    domain = agent["egress"][0].lstrip(".") if agent["egress"] else "agentfleet-denied.invalid"
    # localhost: a name (not a raw address) that resolves to loopback in the proxy itself.
    cases = [["agentfleet-denied.invalid:443", "allowlist"], ["127.0.0.1:443", "raw-ipv4"], ["[::1]:443", "raw-ipv6"],
             [f"{domain}:80", "port-443"], ["localhost:443", "private"]]
    if connect_allowed:
        cases += [[f"{allowed.lstrip('.')}:443", "allowed"] for allowed in agent["egress"]]
    return cases


def agent_audit_specs(stack: dict[str, Any], compose: dict[str, Any], host_addresses: list[str],
                      settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One probe spec per agent; settings are the agent_audit_* variables without the prefix."""
    addresses = _addresses(compose)
    project = compose["name"]
    specs = []
    for agent in stack["agents"]:
        name = agent["name"]
        own_networks = set(addresses[name])
        others = sorted(f"{address}:{DISCARD_PORT}" for service, nets in addresses.items() if service != name
                        for net, address in nets.items() if address and net not in own_networks)
        bridges = sorted({str(ipaddress.ip_network(spec["ipam"]["config"][0]["subnet"]).network_address + 1)
                          for spec in compose["networks"].values() if spec.get("ipam")})
        every_address = sorted(set(host_addresses) | set(bridges))
        host = [f"{address}:{port}" for address in every_address for port in settings["host_ports"]]
        fleet = [f"{address}:{port}" for address in every_address for port in settings.get("fleet_ports", [])]
        # redis only for an agent whose model gives it a login; for the others it must not even resolve.
        needed = [f"{service}:{port}" for service, port in SERVICE_PORTS.items() if service != "redis" or agent["redis"]]
        no_redis = [] if agent["redis"] else [f"redis:{SERVICE_PORTS['redis']}"]
        docker_api = [f"dockerproxy:{PORTS['dockerproxy']}"]
        if "dockerapi" in addresses[name]:
            needed.extend(docker_api)
        specs.append({"container": f"{project}-{name}-1", "agent": name, "spec": {
            "agent": name, "runtime": compose["services"][name].get("runtime", "runc"), "inside_root": INSIDE,
            "paths": _inside_paths(stack, name),
            "unreachable": {"other_agents": others, "host": host, "fleet": fleet, "internet": settings["outside_targets"],
                            "metadata": [settings["metadata_target"]], "redis": no_redis},
            "reachable": needed, "outside_names": settings["outside_names"], "docker_api": docker_api,
            "proxy": f"egress:{SERVICE_PORTS['egress']}", "proxy_cases": _proxy_cases(agent, settings["connect_allowed"]),
            "gateway": f"gateway:{SERVICE_PORTS['gateway']}", "outside_http": settings["outside_http"],
            # From the model, not the compose file: a wrong mount must show up as a breach.
            "ollama": {"socket": OLLAMA_SOCKET, "reachable": bool(settings.get("ollama")) and bool(agent.get("ollama")),
                       "refused": OLLAMA_REFUSED},
            "gateway_refusals": _gateway_refusals(agent["gateway"]), "gateway_rate": agent["gateway"]["rate_per_minute"],
            "redis": {"host": "redis", "port": SERVICE_PORTS["redis"], "user": agent["account"],
                      "refused": REDIS_REFUSED} if agent["redis"] else None,
        }})
    return specs


# Requests the gateway refuses unless the agent's policy allows them (then they are not sent: they
# would reach the real model API).
WEB_FETCH = json.dumps({"model": "audit", "max_tokens": 1, "messages": [{"role": "user", "content": "audit"}],
                        "tools": [{"type": "web_fetch_20250910", "name": "web_fetch"}]})
MCP = json.dumps({"model": "audit", "max_tokens": 1, "messages": [{"role": "user", "content": "audit"}],
                  "mcp_servers": [{"type": "url", "url": "https://mcp.agentfleet.invalid/sse", "name": "audit"}]})
REDIS_REFUSED = [["KEYS", "*"], ["SCAN", "0"], ["FLUSHALL"], ["CONFIG", "GET", "maxmemory"], ["EVAL", "return 1", "0"],
                 ["PUBSUB", "CHANNELS"], ["CLIENT", "LIST"]]
OLLAMA_REFUSED = [["POST", "/api/pull"], ["POST", "/api/create"], ["DELETE", "/api/delete"], ["POST", "/api/copy"]]


def _gateway_refusals(policy: dict[str, Any]) -> list[list[str]]:
    cases = [["GET", "/v1/files", "", "endpoints"], ["GET", "/v1/models", "", "endpoints"],
             ["POST", "/v1/messages/batches", "{}", "endpoints"]]
    cases = [case for case in cases if f"{case[0]} {case[1]}" not in policy["endpoints"]]
    if "POST /v1/messages" in policy["endpoints"]:
        if "web_fetch" not in policy["tools"] and "web_fetch_20250910" not in policy["tools"]:
            cases.append(["POST", "/v1/messages", WEB_FETCH, "tools"])
        if "https://mcp.agentfleet.invalid/sse" not in policy["mcp_servers"]:
            cases.append(["POST", "/v1/messages", MCP, "tools"])
    return cases


# Families every probe reports, whatever its spec; the rest depend on what the spec asks.
ALWAYS = ("capabilities", "no_new_privs", "seccomp", "non_root", "no_setuid", "read_only_root", "noexec_tmp",
          "proc_sys", "raw_sockets", "host_filesystem", "processes", "docker_api", "egress_proxy", "api_key_hunt",
          "ollama")
MAX_REPORT = 4_000_000


def expected_families(spec: dict[str, Any]) -> set[str]:
    """Every check family the probe must report for spec: a missing one is a breach, not a pass."""
    families = set(ALWAYS) | {family for family, targets in spec["unreachable"].items() if targets}
    optional = {"agent_files": spec["paths"], "needed_services": spec["reachable"],
                "external_dns": spec["outside_names"], "gateway_other_host": spec["gateway"] and spec["outside_http"],
                "gateway_policy": spec.get("gateway_refusals"), "redis_commands": spec.get("redis"),
                "ollama_filter": (spec.get("ollama") or {}).get("reachable")}
    return families | {family for family, wanted in optional.items() if wanted}


def _integrity(agent: str, problem: str) -> dict[str, Any]:
    return {"check": "audit_integrity", "target": agent, "ok": False, "observed": problem[:300]}


def agent_audit_nonce(nonce: str, agent: str) -> str:
    """Each agent's own nonce from the run's: one agent that learns its own learns no other's."""
    return hashlib.sha256(f"{nonce}:{agent}".encode()).hexdigest()


def agent_audit_disk_rows(report_text: str, stack: dict[str, Any], now: float, interval: int) -> dict[str, list[dict[str, Any]]]:
    """disk_bound rows per agent, judged on the host: the watcher's report is fresh (three of its
    intervals, at least a minute), lists the agent with its model's bound, and finds it under it."""
    try:
        report = json.loads(report_text) if report_text else None
        if not isinstance(report, dict) or not isinstance(report.get("agents"), dict):
            raise ValueError("no report from the disk watcher (is agentfleet-disk.timer running?)")
        age = now - float(report["updated"])
        if age > max(3 * interval, 60):
            raise ValueError(f"the disk watcher's report is {age:.0f} s old")
    except (ValueError, TypeError, KeyError) as problem:
        return {agent["name"]: [{"check": "disk_bound", "target": "report", "ok": False, "observed": str(problem)[:300]}]
                for agent in stack["agents"]}
    rows = {}
    for agent in stack["agents"]:
        state, bound = report["agents"].get(agent["name"]), agent["disk"]
        target = f"{bound['mb']} MiB, {bound['files']} files"
        if not isinstance(state, dict):
            rows[agent["name"]] = [{"check": "disk_bound", "target": target, "ok": False, "observed": "not counted"}]
            continue
        ok = (state.get("bound_bytes") == bound["mb"] * 1024 * 1024 and state.get("bound_files") == bound["files"]
              and state.get("over") is False)
        observed = f"{int(state.get('bytes', 0)) // (1024 * 1024)} MiB, {state.get('files')} files" + (
            ", OVER" if state.get("over") else "")
        rows[agent["name"]] = [{"check": "disk_bound", "target": target, "ok": ok, "observed": observed}]
    return rows


def agent_audit_reports(runs: list[dict[str, Any]], specs: list[dict[str, Any]], nonce: str,
                        host_rows: dict[str, list[dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Each agent's report as judged here: the probe must have exited 0 and printed the nonce this
    run chose for that agent, about that agent, with every family its spec asks for; otherwise a
    breach says why. runs are the exec results (stdout, rc), in the order of specs."""
    reports = []
    for run, item in zip(runs, specs):
        agent, rows, output = item["agent"], [], str(run.get("stdout", ""))
        try:
            if run.get("rc") != 0:
                raise ValueError(f"the probe exited {run.get('rc')}")
            if len(output) > MAX_REPORT:
                raise ValueError(f"report of {len(output)} bytes")
            document = json.loads(output)
            if not isinstance(document, dict) or not isinstance(document.get("rows"), list):
                raise ValueError("not a report object")
            rows = [row for row in document["rows"] if _is_row(row)]
            if len(rows) != len(document["rows"]):
                raise ValueError("rows that are not check rows")
            if document.get("nonce") != agent_audit_nonce(nonce, agent) or document.get("agent") != agent:
                raise ValueError("not produced by the probe this audit sent (nonce or agent differs)")
            missing = sorted(expected_families(item["spec"]) - {row["check"] for row in rows})
            if missing:
                raise ValueError(f"no rows for {', '.join(missing)}")
        except (ValueError, RecursionError) as problem:
            rows.append(_integrity(agent, str(problem)))
        reports.append({"agent": agent, "rows": rows + (host_rows or {}).get(agent, [])})
    return reports


def _is_row(row: Any) -> bool:
    return (isinstance(row, dict) and set(row) == {"check", "target", "ok", "observed"}
            and all(isinstance(row[key], str) for key in ("check", "target", "observed")) and isinstance(row["ok"], bool))


def agent_audit_table(reports: list[dict[str, Any]]) -> str:
    """One line per agent per check: how many attempts were blocked, and each breach."""
    lines = [f"{'AGENT':<14} {'CHECK':<20} RESULT"]
    for report in reports:
        checks: dict[str, list[dict[str, Any]]] = {}
        for row in report["rows"]:
            checks.setdefault(row["check"], []).append(row)
        for check, rows in checks.items():
            bad = [row for row in rows if not row["ok"]]
            verdict = f"ok ({len(rows)})" if not bad else "BREACH " + "; ".join(
                f"{row['target']}: {row['observed']}" for row in bad[:3])
            lines.append(_printable(f"{report['agent']:<14} {check:<20} {verdict}"))
    return "\n".join(lines)


def agent_audit_breaches(reports: list[dict[str, Any]]) -> list[str]:
    return [_printable(f"{report['agent']} {row['check']} {row['target']}: {row['observed']}")
            for report in reports for row in report["rows"] if not row["ok"]]


def _printable(text: str) -> str:
    """Control and format characters escaped: what a probe saw may come from an agent's files.
    The runtime's untrusted.printable, restated: a filter plugin does not import the agent image's code."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"agent_audit_specs": agent_audit_specs, "agent_audit_reports": agent_audit_reports,
                "agent_audit_nonce": agent_audit_nonce, "agent_audit_disk_rows": agent_audit_disk_rows,
                "agent_audit_table": agent_audit_table, "agent_audit_breaches": agent_audit_breaches}
