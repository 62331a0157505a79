"""The gateway's per-agent usage, read by the monitor from the gateway container's log.

The log comes through the Docker API proxy (read endpoints only). Each gateway line is JSON with
the calling agent's name; the monitor keeps running totals in a report other observers read.
"""

from __future__ import annotations

import http.client
import json
import os
import struct
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from .fleet import table
from .untrusted import Refused, read_document

Stamp = tuple[int, int]  # (unix seconds, nanoseconds): Docker's log timestamps, exactly


def docker_get(api: str, path: str, query: dict[str, str]) -> bytes:
    """GET from the Docker API at api (http://host:port); raises OSError on any failure."""
    parts = urllib.parse.urlsplit(api)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
    try:
        connection.request("GET", f"{path}?{urllib.parse.urlencode(query)}")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise OSError(f"docker API {path}: HTTP {response.status} {body[:120]!r}")
    return body


def demultiplex(stream: bytes) -> list[str]:
    """Lines of a non-TTY container log: frames of an 8-byte header (stream, size) then the payload."""
    lines, offset = [], 0
    while offset + 8 <= len(stream):
        size = struct.unpack(">I", stream[offset + 4:offset + 8])[0]
        # split, not splitlines: U+0085 or U+2028 inside a logged path must not cut a line.
        text = stream[offset + 8:offset + 8 + size].decode("utf-8", "replace")
        lines += [line for line in text.split("\n") if line]
        offset += 8 + size
    return lines


def parse_stamp(text: str) -> Stamp:
    """Docker's RFC 3339 timestamp with nanoseconds, e.g. 2026-11-22T06:30:00.123456789Z."""
    seconds, _dot, fraction = text.rstrip("Z").partition(".")
    moment = datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return int(moment.timestamp()), int((fraction or "0").ljust(9, "0")[:9])


def service_log(api: str, project: str, service: str, since: Stamp) -> list[str]:
    """A compose service's stdout lines from `since` on, timestamped, through the Docker API proxy."""
    labels = {"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]}
    found = json.loads(docker_get(api, "/containers/json", {"filters": json.dumps(labels)}))
    if not found:
        return []
    query = {"stdout": "1", "timestamps": "1", "since": f"{since[0]}.{since[1]:09d}"}
    return demultiplex(docker_get(api, f"/containers/{found[0]['Id']}/logs", query))


class LogTotals:
    """Running totals per agent from a service's log, saved in a report only the monitor writes;
    `since` is the last line counted, so nothing counts twice, across restarts too."""

    kind = ""  # the report's schema

    def __init__(self, report: Path) -> None:
        self.report = report
        self.agents: dict[str, dict[str, Any]] = {}
        self.since: Stamp = (0, 0)
        self.lost = ""  # why a saved report could not be resumed (the totals then start again)
        if os.path.lexists(report):
            # The monitor's own file, in a directory only it writes; read like any other all the same.
            try:
                saved = read_document(report, self.kind, os.getuid())
            except Refused as problem:
                self.lost = f"{report}: {problem}"
                return
            self.agents, self.since = saved["agents"], (int(saved["since"][0]), int(saved["since"][1]))

    def new_entries(self, lines: list[str]) -> Iterator[tuple[str, dict[str, Any]]]:
        """(timestamp text, JSON object) of each line newer than `since`; other lines (notices) skipped."""
        for line in lines:
            stamp_text, _space, text = line.partition(" ")
            try:
                stamp, entry = parse_stamp(stamp_text), json.loads(text)
            except ValueError:
                continue
            if stamp <= self.since or not isinstance(entry, dict) or "status" not in entry:
                continue
            self.since = stamp
            yield stamp_text, entry

    def document(self) -> dict[str, Any]:
        return {"agents": self.agents, "since": list(self.since)}


class GatewayUsage(LogTotals):
    """The gateway's requests, bytes, tokens and refusals per agent."""

    kind = "gateway-usage"

    def __init__(self, report: Path) -> None:
        # (agent, rule, UTC day) of each budget the gateway reported spent, for the monitor to announce once.
        self.spent: list[tuple[str, str, str]] = []
        self.announced: set[tuple[str, str, str]] = set()
        super().__init__(report)

    def add(self, lines: list[str]) -> int:
        """Count timestamped gateway lines newer than `since`; returns how many requests were new."""
        counted = 0
        for _stamp, entry in self.new_entries(lines):
            name = str(entry.get("agent") or "(not an agent)")
            totals = self.agents.setdefault(name, {"requests": 0, "sent": 0, "received": 0, "status": {}, "last": ""})
            totals["requests"] += 1
            totals["sent"] += int(entry.get("sent", 0))
            totals["received"] += int(entry.get("received", 0))
            status = str(entry["status"])
            totals["status"][status] = totals["status"].get(status, 0) + 1
            tokens = entry.get("tokens", 0)
            totals["tokens"] = totals.get("tokens", 0) + (tokens if isinstance(tokens, int) and tokens > 0 else 0)
            rule = str(entry.get("rule") or "")[:40]
            if rule:
                refused = totals.setdefault("refused", {})
                refused[rule] = refused.get(rule, 0) + 1
                spent = (name, rule, str(entry.get("time", ""))[:10])
                if rule.startswith("budget-") and spent not in self.announced:
                    self.announced.add(spent)
                    self.spent.append(spent)
            totals["last"] = str(entry.get("time", ""))
            counted += 1
        return counted

    def poll(self, api: str, project: str) -> int:
        """Fetch the gateway's new log lines through the proxy and count them."""
        return self.add(service_log(api, project, "gateway", self.since))


def usage_table(report: dict[str, Any]) -> str:
    return table(usage_rows(report))


def usage_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("AGENT", "REQUESTS", "TOKENS", "STATUS", "REFUSED", "SENT", "RECEIVED", "LAST")]
    for name, totals in sorted(report["agents"].items()):
        statuses = ",".join(f"{code}:{count}" for code, count in sorted(totals["status"].items()))
        refused = ",".join(f"{rule}:{count}" for rule, count in sorted(totals.get("refused", {}).items()))
        rows.append((name, str(totals["requests"]), str(totals.get("tokens", 0)), statuses, refused or "-",
                     str(totals["sent"]), str(totals["received"]), totals["last"]))
    return rows
