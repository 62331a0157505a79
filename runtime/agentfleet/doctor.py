"""agentctl doctor (root, on the host): one line per check of what a fleet needs, each failure with
what to do about it; exit status 1 when anything failed.

Checks the engine, the sandbox runtimes the model uses, every service's health, that the gateway
reaches its upstream, the model key, the disk, and the last audit. Settings come from the
environment the host's agentctl wrapper sets from the model (AGENTFLEET_DOCTOR_*).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from .disk import read_report
from .model_key import key_missing
from .untrusted import Refused, parse, printable, read_bytes

Check = tuple[str, str, str]  # (OK|WARN|FAIL, what, what to do)
AUDIT_MAX_AGE = 7 * 86400
MIN_FREE = 0.10


def docker(*args: str, timeout: float = 20) -> tuple[int, str]:
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 1, str(error)
    return done.returncode, (done.stdout if done.returncode == 0 else done.stderr).strip()


def engine() -> list[Check]:
    rc, version = docker("version", "--format", "{{.Server.Version}}")
    if rc != 0:
        return [("FAIL", f"Docker engine: {printable(version[:200])}", "systemctl status docker; journalctl -u docker")]
    return [("OK", f"Docker engine {printable(version)}", "")]


def runtimes(needed: list[str]) -> list[Check]:
    rc, listing = docker("info", "--format", "{{json .Runtimes}}")
    if rc != 0:
        return [("FAIL", "runtimes: the engine does not answer", "see the engine above")]
    known = set(json.loads(listing or "{}"))
    missing = [name for name in needed if name not in known]
    if missing:
        return [("FAIL", f"runtimes: {', '.join(missing)} not registered with the engine",
                 "re-run the deploy (roles gvisor, sysbox register them in daemon.json)")]
    return [("OK", f"runtimes: {', '.join(needed)}", "")]


def services(project: str, expected: list[str]) -> list[Check]:
    rc, listing = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={project}", "--format", "{{json .}}")
    if rc != 0:
        return [("FAIL", "services: the engine does not answer", "see the engine above")]
    states = {}
    for line in listing.splitlines():
        entry = json.loads(line)
        labels = dict(item.split("=", 1) for item in entry.get("Labels", "").split(",") if "=" in item)
        states[labels.get("com.docker.compose.service", "")] = entry.get("Status", "")
    checks = []
    for name in expected:
        status = states.get(name)
        if status is None:
            checks.append(("FAIL", f"service {name}: no container", "re-run the deploy (scripts/deploy)"))
        elif not status.startswith("Up") or "(unhealthy)" in status or "(health: starting)" in status:
            checks.append(("FAIL", f"service {name}: {printable(status)}",
                           f"docker logs {project}-{name}-1; docker compose --project-directory /etc/agentfleet/stack up -d {name}"))
    return checks or [("OK", f"services: all {len(expected)} running and healthy", "")]


def upstream(project: str, url: str, with_ca: bool) -> list[Check]:
    """Any HTTP answer from the model API, through the gateway's own network and trust: reachable."""
    curl = ["exec", f"{project}-gateway-1", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
            *(["--cacert", "/etc/nginx/upstream-ca.pem"] if with_ca else []), f"{url.rstrip('/')}/v1/messages"]
    rc, answer = docker(*curl, timeout=30)
    if rc != 0 or not answer.isdigit() or answer == "000":
        return [("FAIL", f"gateway upstream {printable(url)}: {printable(answer[-200:])}",
                 "check the host's route and DNS to it, agent_stack_gateway_upstream and agent_stack_gateway_ca_bundle")]
    return [("OK", f"gateway reaches {printable(url)} (HTTP {answer})", "")]


def model_key(state: Path, needing: list[str]) -> list[Check]:
    if needing and key_missing(state):
        return [("FAIL", f"model key: not set; {', '.join(needing)} cannot reach the model",
                 "agentctl secret set model-key < key-file")]
    return [("OK", "model key: set" if needing else "model key: no agent needs one", "")]


def disk(root: Path) -> list[Check]:
    checks: list[Check] = []
    usage = os.statvfs(root)
    free = usage.f_bavail / usage.f_blocks if usage.f_blocks else 1.0
    if free < MIN_FREE:
        checks.append(("WARN", f"disk: {free:.0%} free on the tree's filesystem", f"free space under {root}"))
    try:
        report = read_report(root / "disk" / "usage.json")
    except Refused as problem:
        return checks + [("WARN", f"disk: no report to trust ({printable(str(problem))})",
                          "systemctl status agentfleet-disk.timer")]
    over = sorted(name for name, state in report["agents"].items() if state["over"] or state["stopped"])
    if over:
        checks.append(("WARN", f"disk: over their bound: {', '.join(over)}", "agentctl disk; free their workspaces"))
    return checks or [("OK", f"disk: {free:.0%} free, every agent within its bound", "")]


def audit(report: Path, now: float) -> list[Check]:
    try:
        reports = parse(read_bytes(report, 0, 67_108_864), max_items=5_000_000)
        age = now - os.lstat(report).st_mtime
    except Refused as problem:
        return [("WARN", f"audit: no report ({printable(str(problem))})", "ansible-playbook playbooks/audit.yml")]
    rows = [row for item in reports if isinstance(item, dict) for row in item.get("rows", []) if isinstance(row, dict)]
    breaches = [row for row in rows if row.get("ok") is not True]
    if breaches:
        return [("FAIL", f"audit: {len(breaches)} of {len(rows)} checks breached in the last audit",
                 f"read {report}; fix, then ansible-playbook playbooks/audit.yml")]
    if age > AUDIT_MAX_AGE:
        return [("WARN", f"audit: the last one is {age / 86400:.0f} days old", "ansible-playbook playbooks/audit.yml")]
    return [("OK", f"audit: {len(rows)} checks passed {age / 3600:.1f} h ago", "")]


def run(env: Mapping[str, str], root: Path, out: Callable[[str], None] = print) -> int:
    def listed(name: str) -> list[str]:
        return [item for item in env.get(name, "").split(",") if item]

    project = env.get("AGENTFLEET_PROJECT", "agentfleet")
    checks = engine()
    if checks[0][0] == "OK":
        checks += runtimes(listed("AGENTFLEET_DOCTOR_RUNTIMES")) + services(project, listed("AGENTFLEET_DOCTOR_SERVICES"))
        checks += upstream(project, env.get("AGENTFLEET_DOCTOR_UPSTREAM", ""), env.get("AGENTFLEET_DOCTOR_UPSTREAM_CA") == "1")
    checks += model_key(Path(env.get("AGENTFLEET_MODEL_KEY_STATE", "/nonexistent")), listed("AGENTFLEET_KEY_AGENTS"))
    checks += disk(root) + audit(Path(env.get("AGENTFLEET_DOCTOR_AUDIT", "/var/lib/agentfleet/audit/report.json")), time.time())
    for state, what, fix in checks:
        out(f"{state:4}  {what}" + (f"\n      fix: {fix}" if fix else ""))
    return 1 if any(check[0] == "FAIL" for check in checks) else 0
