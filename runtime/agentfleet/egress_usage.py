"""The egress proxy's per-agent tunnels and refusals, read by the monitor from Squid's log.

Squid writes one JSON line per request in a format of ours (squid.conf): the agent comes from
Squid's own note for the agent's fixed address, never from anything the agent sent, and the
refusal from the error page Squid chose. The requested name is not logged at all: it is the
agent's text, and no reader needs it.
"""

from __future__ import annotations

import re
from typing import Any

from .fleet import table
from .gateway_usage import LogTotals, service_log
from .untrusted import NAME

RULE = re.compile(r"ERR_(?:AGENTFLEET_)?([A-Z0-9_]{1,40})")


def rule_of(code: str) -> str | None:
    """Our rule's name from Squid's error page (ERR_AGENTFLEET_PRIVATE: private), Squid's own
    in lower case (ERR_DNS_FAIL: dns_fail); None when Squid served no error page."""
    found = RULE.fullmatch(code)
    return found.group(1).lower() if found else None


class EgressUsage(LogTotals):
    """Running totals per agent of tunnels opened and requests refused, by rule."""

    kind = "egress-usage"

    def add(self, lines: list[str]) -> int:
        """Count timestamped Squid lines newer than `since`; returns how many were new."""
        counted = 0
        for stamp_text, entry in self.new_entries(lines):
            if not isinstance(entry["status"], int):
                continue
            agent = str(entry.get("agent", ""))
            name = agent if NAME.match(agent) else "(not an agent)"
            totals = self.agents.setdefault(name, {"tunnels": 0, "refused": {}, "last": ""})
            rule = rule_of(str(entry.get("rule", "")))
            if rule is None and entry["status"] == 200:
                totals["tunnels"] += 1
            else:
                totals["refused"][rule or "other"] = totals["refused"].get(rule or "other", 0) + 1
            totals["last"] = stamp_text[:19]
            counted += 1
        return counted

    def poll(self, api: str, project: str) -> int:
        """Fetch the egress proxy's new log lines through the Docker API proxy and count them."""
        return self.add(service_log(api, project, "egress", self.since))


def egress_table(report: dict[str, Any]) -> str:
    return table(egress_rows(report))


def egress_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("AGENT", "TUNNELS", "REFUSED", "LAST")]
    for name, totals in sorted(report["agents"].items()):
        refused = ",".join(f"{rule}:{count}" for rule, count in sorted(totals["refused"].items()))
        rows.append((name, str(totals["tunnels"]), refused or "-", totals["last"]))
    return rows
