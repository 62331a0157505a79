"""The audit's expectations come from the model and the compose project; the probe catches what it claims."""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import agentfleet_probe as probe
import pytest
from agent_audit import (agent_audit_breaches, agent_audit_nonce, agent_audit_reports, agent_audit_specs, agent_audit_table,
                         expected_families, OLLAMA_REFUSED, agent_audit_disk_rows)
from test_agent_stack_compose import IMAGES, SETTINGS, default_stack
from agent_stack import agent_stack_compose

PROBE = Path(__file__).resolve().parents[1] / "roles" / "agent_audit" / "files" / "agentfleet_probe.py"
AUDIT = {"host_ports": [22], "outside_targets": ["192.0.2.10:80"], "outside_names": ["outside.agentfleet.test"],
         "metadata_target": "169.254.169.254:80", "outside_http": [], "connect_allowed": False}


@pytest.fixture(name="specs")
def fixture_specs() -> dict[str, dict[str, Any]]:
    stack = default_stack(("marie",))
    compose = agent_stack_compose(stack, IMAGES, SETTINGS)
    return {item["agent"]: item for item in agent_audit_specs(stack, compose, ["172.17.0.2"], AUDIT)}


def test_marie_must_not_reach_other_agents_or_the_host(specs: dict[str, dict[str, Any]]) -> None:
    marie = specs["marie"]
    assert marie["container"] == "agentfleet-marie-1"
    unreachable = marie["spec"]["unreachable"]
    assert "10.213.113.66:9" in unreachable["other_agents"]  # anga, hand-computed in the compose tests
    assert not any(target.startswith(specs["marie"]["spec"]["agent"]) for target in unreachable["other_agents"])
    assert "172.17.0.2:22" in unreachable["host"] and "10.213.113.65:22" in unreachable["host"]
    assert unreachable["metadata"] == ["169.254.169.254:80"] and unreachable["internet"] == ["192.0.2.10:80"]
    assert marie["spec"]["reachable"] == ["gateway:8080", "egress:3128", "redis:6379"] and unreachable["redis"] == []
    assert specs["anga"]["spec"]["reachable"] == ["gateway:8080", "egress:3128"]  # no redis login: not even its name
    assert specs["anga"]["spec"]["unreachable"]["redis"] == ["redis:6379"]
    assert "dockerproxy:2375" in specs["monitor"]["spec"]["reachable"]


def test_the_fleets_ports_are_tried_on_every_address_only_on_a_host_of_a_fleet() -> None:
    stack = default_stack(("marie",))
    compose = agent_stack_compose(stack, IMAGES, SETTINGS)
    fleet = agent_audit_specs(stack, compose, ["172.17.0.2"], {**AUDIT, "fleet_ports": [4222, 6222]})
    targets = {item["agent"]: item["spec"]["unreachable"]["fleet"] for item in fleet}
    assert {"172.17.0.2:4222", "172.17.0.2:6222", "10.213.113.65:4222"} <= set(targets["marie"])
    assert all(found == targets["marie"] for found in targets.values())  # every agent tries every address
    lone = agent_audit_specs(stack, compose, ["172.17.0.2"], AUDIT)
    assert all(item["spec"]["unreachable"]["fleet"] == [] for item in lone)


FLEET_PORTS_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: {file: %s, name: audit}
    - ansible.builtin.debug: {msg: "FLEET_PORTS={{ audit.agent_audit_fleet_ports | to_json }}"}
"""


@pytest.mark.parametrize(("extra", "ports"), [({"agentfleet_nats": True}, [4222, 6222]),
                                              ({"agentfleet_nats": True, "nats_client_port": "4333"}, [4333, 6222]),
                                              ({}, [])])
def test_the_fleets_ports_by_default_are_the_nats_roles_on_a_host_of_a_fleet(
        tmp_path: Path, extra: dict[str, Any], ports: list[int]) -> None:
    playbook = shutil.which("ansible-playbook")
    if playbook is None:
        pytest.skip("ansible-playbook is not on PATH (run inside the toolchain's venv)")
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "play.yml").write_text(FLEET_PORTS_PLAY % (root / "roles" / "agent_audit" / "defaults" / "main.yml"))
    run = subprocess.run([playbook, "-i", "localhost,", "-c", "local", str(tmp_path / "play.yml"), "-e", json.dumps(extra)],
                         capture_output=True, text=True, check=False, cwd=root,
                         env={**os.environ, "ANSIBLE_CONFIG": str(root / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"FLEET_PORTS={json.dumps(ports)}" in run.stdout, run.stdout[-2000:]


def test_paths_follow_the_matrix(specs: dict[str, dict[str, Any]]) -> None:
    paths = {entry["path"]: entry for entry in specs["marie"]["spec"]["paths"]}
    assert paths["/agentfleet/inbox/marie"] == {"path": "/agentfleet/inbox/marie", "read": True, "write": False}
    assert paths["/agentfleet/workspaces/anga"] == {"path": "/agentfleet/workspaces/anga", "read": False, "write": False}
    assert paths["/agentfleet/common"]["write"] is True
    assert specs["orchestrator"]["spec"]["paths"][0]["path"].startswith("/agentfleet/")


def test_proxy_cases_name_the_rule_each_must_hit(specs: dict[str, dict[str, Any]]) -> None:
    assert specs["fabien"]["spec"]["proxy_cases"] == [
        ["agentfleet-denied.invalid:443", "allowlist"], ["127.0.0.1:443", "raw-ipv4"], ["[::1]:443", "raw-ipv6"],
        ["agentfleet-denied.invalid:80", "port-443"], ["localhost:443", "private"]]


def run_probe(spec: dict[str, Any]) -> list[dict[str, Any]]:
    result = subprocess.run([sys.executable, "-", json.dumps(spec)], input=PROBE.read_text(), capture_output=True,
                            text=True, check=True, timeout=120)
    rows: list[dict[str, Any]] = json.loads(result.stdout)["rows"]
    return rows


@pytest.mark.skipif(os.geteuid() != 0, reason="the negative control needs root with capabilities, as on our CI")
def test_the_probe_reports_root_with_capabilities_as_a_breach() -> None:
    rows = {row["target"]: row for row in run_probe({"agent": "host", "checks": ["privileges"]})}
    assert not rows["uid"]["ok"] and not rows["CapEff"]["ok"]


def test_the_probe_reports_a_reachable_address_and_a_resolving_name() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        spec = {"agent": "host", "checks": ["network"], "unreachable": {"internet": [f"127.0.0.1:{port}"]},
                "reachable": [], "outside_names": ["localhost"]}
        rows = run_probe(spec)
    verdicts = {(row["check"], row["ok"]) for row in rows if row["check"] in ("internet", "external_dns")}
    assert verdicts == {("internet", False), ("external_dns", False)}


def test_connect_outcomes_are_classified() -> None:
    assert probe.connect("agentfleet-nothing.invalid:80") == (False, probe.connect("agentfleet-nothing.invalid:80")[1])
    assert probe.connect("agentfleet-nothing.invalid:80")[1].startswith("no such name")


NONCE = "0123456789abcdef"


def honest_report(item: dict[str, Any], **changes: Any) -> str:
    rows = [{"check": family, "target": "t", "ok": True, "observed": "blocked"} for family in expected_families(item["spec"])]
    return json.dumps({"agent": item["agent"], "nonce": agent_audit_nonce(NONCE, item["agent"]), "rows": rows, **changes})


def judged(output: str, item: dict[str, Any], rc: int = 0) -> list[dict[str, Any]]:
    return agent_audit_reports([{"stdout": output, "rc": rc}], [item], NONCE)


def integrity(reports: list[dict[str, Any]]) -> list[str]:
    return [row["observed"] for report in reports for row in report["rows"] if row["check"] == "audit_integrity"]


def test_a_report_is_judged_by_the_controller_not_believed(specs: dict[str, dict[str, Any]]) -> None:
    marie = specs["marie"]
    assert integrity(judged(honest_report(marie), marie)) == []
    forged = {"no rows at all": honest_report(marie, rows=[]),
              "a family left out": json.dumps({**json.loads(honest_report(marie)),
                                               "rows": json.loads(honest_report(marie))["rows"][1:]}),
              "no nonce (not the probe this audit sent)": honest_report(marie, nonce=""),
              "the run's nonce, not marie's": honest_report(marie, nonce=NONCE),
              "anga's nonce": honest_report(marie, nonce=agent_audit_nonce(NONCE, "anga")),
              "another agent's report": honest_report(marie, agent="anga"),
              "not JSON": "all good", "a list": "[]", "deep nesting": "[" * 100_000 + "]" * 100_000,
              "rows of the wrong shape": honest_report(marie, rows=[{"ok": 1}])}
    for label, output in forged.items():
        assert len(integrity(judged(output, marie))) == 1, label
        assert agent_audit_breaches(judged(output, marie)), label
    assert "no rows for" in integrity(judged(forged["no rows at all"], marie))[0]
    assert integrity(judged(honest_report(marie), marie, rc=137)) == ["the probe exited 137"]
    assert "agent_files" in expected_families(marie["spec"]) and "other_agents" in expected_families(marie["spec"])


def test_the_probe_echoes_the_nonce_and_hides_it_from_its_children() -> None:
    code = PROBE.read_text().replace("sys.exit(main(sys.argv[1:]))",
                                     "main(sys.argv[1:]); print(os.environ.get('AGENTFLEET_PROBE_NONCE', 'gone'))")
    result = subprocess.run([sys.executable, "-I", "-", json.dumps({"agent": "host", "checks": ["privileges"]})],
                            input=code, capture_output=True, text=True, check=True, timeout=60, cwd="/",
                            env={**os.environ, "AGENTFLEET_PROBE_NONCE": NONCE})
    report, after = result.stdout.splitlines()
    assert json.loads(report)["nonce"] == NONCE and after == "gone"


def test_the_table_escapes_what_a_probe_saw() -> None:
    reports = [{"agent": "marie", "rows": [{"check": "api_key_hunt", "target": "files", "ok": False,
                                            "observed": "/agentfleet/common/\x1b[2Jevil"}]}]
    assert "\x1b" not in agent_audit_table(reports) and "\\x1b[2J" in agent_audit_table(reports)
    assert agent_audit_breaches(reports) == ["marie api_key_hunt files: /agentfleet/common/\\x1b[2Jevil"]


def test_table_and_breaches() -> None:
    reports = [{"agent": "marie", "rows": [
        {"check": "capabilities", "target": "CapEff", "ok": True, "observed": "CapEff=0"},
        {"check": "internet", "target": "192.0.2.10:80", "ok": False, "observed": "connected"}]}]
    table = agent_audit_table(reports).splitlines()
    assert table[1].split() == ["marie", "capabilities", "ok", "(1)"]
    assert table[2].split()[:3] == ["marie", "internet", "BREACH"]
    assert agent_audit_breaches(reports) == ["marie internet 192.0.2.10:80: connected"]


class Version(BaseHTTPRequestHandler):
    """An Ollama-like /api/version on a unix socket."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"version": "test"}')

    def log_message(self, *_: object) -> None:
        pass


class UnixServer(socketserver.UnixStreamServer):
    def get_request(self) -> tuple[Any, Any]:
        request, _ = super().get_request()
        return request, ("local", 0)


def test_only_agents_that_opted_in_must_reach_ollama(specs: dict[str, dict[str, Any]]) -> None:
    assert not any(spec["spec"]["ollama"]["reachable"] for spec in specs.values())  # Ollama off on this host
    stack = default_stack(("marie",))
    compose = agent_stack_compose(stack, IMAGES, {**SETTINGS, "ollama_socket_dir": "/run/agentfleet-ollama"})
    on = {item["agent"]: item["spec"]["ollama"] for item in
          agent_audit_specs(stack, compose, ["172.17.0.2"], {**AUDIT, "ollama": True})}
    assert [name for name, ollama in on.items() if ollama["reachable"]] == ["monitor"]
    assert on["marie"] == {"socket": "/run/ollama/ollama.sock", "reachable": False, "refused": OLLAMA_REFUSED}


def test_the_gateway_policy_and_redis_families_follow_the_model(specs: dict[str, dict[str, Any]]) -> None:
    marie, anga = specs["marie"]["spec"], specs["anga"]["spec"]
    assert [case[:2] + case[3:] for case in marie["gateway_refusals"]] == [
        ["GET", "/v1/files", "endpoints"], ["GET", "/v1/models", "endpoints"], ["POST", "/v1/messages/batches", "endpoints"],
        ["POST", "/v1/messages", "tools"], ["POST", "/v1/messages", "tools"]]
    assert marie["redis"]["user"] == "agent-marie" and ["FLUSHALL"] in marie["redis"]["refused"]
    assert anga["redis"] is None
    assert {"gateway_policy", "redis_commands"} <= expected_families(marie)
    assert "redis_commands" not in expected_families(anga) and "ollama_filter" not in expected_families(anga)
    stack = default_stack()
    for agent in stack["agents"]:
        if agent["name"] == "marie":
            agent["gateway"] = {**agent["gateway"], "endpoints": [*agent["gateway"]["endpoints"], "GET /v1/models"],
                                "tools": ["web_fetch"]}
    allowed = {item["agent"]: item["spec"] for item in
               agent_audit_specs(stack, agent_stack_compose(stack, IMAGES, SETTINGS), ["172.17.0.2"], AUDIT)}
    assert [case[1] for case in allowed["marie"]["gateway_refusals"]] == ["/v1/files", "/v1/messages/batches",
                                                                          "/v1/messages"]


def test_the_probe_reports_a_socket_it_should_not_reach(tmp_path: Path) -> None:
    """Negative control: a reachable Ollama socket in a container that did not opt in is a breach."""
    path = str(tmp_path / "ollama.sock")
    server = UnixServer(path, Version)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        rows = run_probe({"agent": "host", "checks": ["ollama"], "ollama": {"socket": path, "reachable": False}})
    finally:
        server.server_close()
    assert [(row["check"], row["ok"]) for row in rows] == [("ollama", False)]
    assert rows[0]["observed"].startswith("HTTP 200")
    missing = run_probe({"agent": "host", "checks": ["ollama"], "ollama": {"socket": path + ".gone", "reachable": False}})
    assert missing[0]["ok"] and missing[0]["observed"] == "ENOENT"


def test_disk_rows_need_a_fresh_report_with_the_models_bounds_and_nobody_over() -> None:
    stack = default_stack()
    state = {"bytes": 4096, "files": 3, "bound_bytes": 10240 * 1024 * 1024, "bound_files": 1_000_000,
             "over": False, "stopped": False}
    agents: dict[str, dict[str, Any]] = {agent["name"]: dict(state) for agent in stack["agents"]}
    report = {"updated": 1000.0, "complete": True, "agents": agents}
    rows = agent_audit_disk_rows(json.dumps(report), stack, 1010.0, 30)
    assert all(found[0]["ok"] for found in rows.values()), rows
    agents["marie"]["over"] = True
    agents["anga"]["bound_bytes"] = 1
    del agents["fabien"]
    rows = agent_audit_disk_rows(json.dumps(report), stack, 1010.0, 30)
    assert [name for name, found in rows.items() if not found[0]["ok"]] == ["marie", "anga", "fabien"]
    stale = agent_audit_disk_rows(json.dumps(report), stack, 1000.0 + 91, 30)
    assert all("91 s old" in found[0]["observed"] for found in stale.values())
    assert all(not found[0]["ok"] for found in agent_audit_disk_rows("", stack, 0, 30).values())
