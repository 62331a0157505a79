"""The status page: a read-only view of the fleet, served on the host's loopback only.

Everything on it is read the way agentctl reads it (the same checks on every agent file) and
every cell is escaped as HTML text; the page carries no script and its policy allows none, so
whatever an agent wrote is shown, never run. GET is the only method: nothing on the page acts.
"""

from __future__ import annotations

import hashlib
import base64
import html
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from . import goals
from .disk import disk_note, disk_rows, read_report
from .egress_usage import egress_rows
from .fleet import Fleet
from .gateway_usage import usage_rows
from .model_key import key_missing
from .untrusted import Refused, parse, printable, read_bytes

Rows = list[tuple[str, ...]]
RECENT = 20  # results and goals shown, newest first
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # the Host header's name, the port aside
CELL = 200  # characters of a cell; the rest is cut, marked with an ellipsis
STYLE = ("body{font:14px/1.4 sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin-bottom:1em}"
         "th,td{border:1px solid #ccc;padding:2px 8px;text-align:left;white-space:pre-wrap}th{background:#eee}"
         ".bad{color:#a00;font-weight:bold}.note{color:#555}")
# No script may run, nothing may be loaded, no form sent: the one style above is allowed by its hash.
POLICY = ("default-src 'none'; style-src 'sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
          + "'; img-src 'none'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")


@dataclass
class Section:
    title: str
    rows: Rows = field(default_factory=list)
    note: str = ""


def cell(text: str) -> str:
    shown = printable(text)
    return html.escape(shown if len(shown) <= CELL else shown[:CELL] + "…", quote=True)


def agent_rows(fleet: Fleet, now: float) -> Rows:
    rows: Rows = [("AGENT", "KIND", "HEALTH", "TASK", "DONE", "QUEUED", "HEARTBEAT")]
    inboxes, beats = set(fleet.workers()), fleet.heartbeats()
    for name in sorted(fleet.agents):
        beat = beats.get(name)
        if beat is None:
            rows.append((name, "-", "NO HEARTBEAT", "-", "-", "-", "-"))
            continue
        health = "STALE" if fleet.is_stale(beat, now) else str(beat["status"])
        queued = str(len(fleet.pending(name))) if name in inboxes else "-"
        rows.append((name, str(beat["kind"]), health, str(beat["task"] or "-"), str(beat["completed"]), queued,
                     f"{now - float(beat['updated']):.0f} s ago"))
    return rows


def result_rows(fleet: Fleet) -> Rows:
    found = sorted(fleet.results(), key=lambda item: float(item.get("finished") or 0), reverse=True)[:RECENT]
    rows: Rows = [("FINISHED", "WORKER", "TASK", "STATUS", "REASON")]
    for item in found:
        finished = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(float(item.get("finished") or 0)))
        rows.append((finished, str(item["worker"]), str(item["id"]), str(item["status"]), str(item["reason"])))
    return rows


def audit_section(path: Path, now: float) -> Section:
    """The last audit, summarised per agent and check, as root wrote it (group observers)."""
    try:
        reports = parse(read_bytes(path, 0, 67_108_864), max_items=5_000_000)
        age = now - os.lstat(path).st_mtime
    except Refused as problem:
        return Section("Last audit", note=f"no report to show ({problem}); run ansible-playbook playbooks/audit.yml")
    rows: Rows = [("AGENT", "CHECK", "ATTEMPTS", "RESULT")]
    for report in reports if isinstance(reports, list) else []:
        checks: dict[str, list[dict[str, Any]]] = {}
        for row in report.get("rows", []) if isinstance(report, dict) else []:
            if isinstance(row, dict):
                checks.setdefault(str(row.get("check")), []).append(row)
        for check, found in checks.items():
            bad = [row for row in found if row.get("ok") is not True]
            verdict = "ok" if not bad else "BREACH: " + "; ".join(
                f"{row.get('target')}: {row.get('observed')}" for row in bad[:3])
            rows.append((str(report.get("agent")), check, str(len(found)), verdict))
    return Section("Last audit", rows, f"written {age / 3600:.1f} h ago")


def collect(fleet: Fleet, env: Mapping[str, str], now: float) -> list[Section]:
    dispatcher = env.get("AGENTFLEET_DISPATCHER", "")
    state = env.get("AGENTFLEET_PUBLISH_STATE")
    sections = [Section("Agents", agent_rows(fleet, now), "QUEUED: tasks in the worker's inbox without a result"),
                Section("Recent results", result_rows(fleet))]
    if dispatcher:
        goal_rows = goals.goal_rows(fleet, dispatcher, Path(state) if state else None)
        sections.append(Section("Goals", goal_rows[:1] + goal_rows[1:][-RECENT:]))
    for title, kind, rows_of in (("Model gateway: requests and refusals", "gateway-usage", usage_rows),
                                 ("Egress proxy: tunnels and refusals", "egress-usage", egress_rows)):
        report = fleet.usage_report(kind)
        sections.append(Section(title, rows_of(report)) if report else Section(title, note="no report from the monitor yet"))
    try:
        disk = read_report(fleet.root / "disk" / "usage.json")
        sections.append(Section("Disk use against each agent's bound", disk_rows(disk), disk_note(disk)))
    except Refused as problem:
        sections.append(Section("Disk use against each agent's bound", note=f"no report to trust ({problem})"))
    sections.append(audit_section(Path(env.get("AGENTFLEET_DOCTOR_AUDIT", "/var/lib/agentfleet/audit/report.json")), now))
    key_state = env.get("AGENTFLEET_MODEL_KEY_STATE")
    if key_state and key_missing(Path(key_state)):
        sections.insert(0, Section("Model key", note="NOT SET: root runs agentctl secret set model-key < key-file"))
    if fleet.problems:
        refused: Rows = [("FILE REFUSED",)]
        refused += [(problem,) for problem in list(dict.fromkeys(fleet.problems))[:RECENT]]
        sections.append(Section("Files refused while reading", refused))
    return sections


def table_html(rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{cell(name)}</th>" for name in rows[0])
    body = "".join("<tr>" + "".join(
        f"<td class=\"bad\">{cell(value)}</td>" if value.startswith(("STALE", "NO HEARTBEAT", "BREACH", "STOPPED", "OVER"))
        else f"<td>{cell(value)}</td>" for value in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(sections: Sequence[Section], host: str, now: float) -> str:
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<meta http-equiv=\"refresh\" content=\"15\"><title>agentfleet on {cell(host)}</title>"
             f"<style>{STYLE}</style></head><body><h1>agentfleet on {cell(host)}</h1>"
             f"<p class=\"note\">{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}; read-only, "
             "refreshed every 15 s</p>"]
    for section in sections:
        parts.append(f"<h2>{cell(section.title)}</h2>")
        if len(section.rows) > 1 or section.rows and not section.note:
            parts.append(table_html(section.rows))
        if section.note:
            parts.append(f"<p class=\"note\">{cell(section.note)}</p>")
    return "".join(parts) + "</body></html>\n"


class PageServer(HTTPServer):
    """One request at a time, each bounded in time; a page is rendered at most every `every` seconds."""

    timeout = 10

    def __init__(self, address: tuple[str, int], root: Path, env: Mapping[str, str], every: float = 2.0) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, PageHandler)
        self.root, self.env, self.every = root, env, every
        self.page, self.rendered = b"", 0.0

    def current(self) -> bytes:
        now = time.time()
        if now - self.rendered >= self.every:
            try:
                sections = collect(Fleet.from_env(self.root), self.env, now)
            except Exception as error:  # noqa: BLE001 (the page says what broke instead of failing every request)
                sections = [Section("The page could not be made", note=f"{type(error).__name__}: {error}")]
            self.page = render(sections, os.uname().nodename, now).encode()
            self.rendered = now
        return self.page


class PageHandler(BaseHTTPRequestHandler):
    server: PageServer
    server_version = "agentfleet-status"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(PageServer.timeout)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        # A page a browser loaded from another site may have its name point at 127.0.0.1 (DNS
        # rebinding): only a request that names a loopback host is answered.
        if (self.headers.get("Host") or "").rpartition(":")[0] not in LOOPBACK_NAMES:
            self.answer(421, b"only requests to a loopback name are answered\n", "text/plain; charset=utf-8")
            return
        if self.path not in ("/", "/index.html"):
            self.answer(404, b"not found\n", "text/plain; charset=utf-8")
            return
        self.answer(200, self.server.current(), "text/html; charset=utf-8")

    def answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass  # the journal needs no line per page view


def serve(root: Path, address: str, port: int) -> int:
    with PageServer((address, port), root, dict(os.environ)) as server:
        print(f"agentfleet status page on http://{address}:{port}/ (read-only)", flush=True)
        server.serve_forever()
    return 0
