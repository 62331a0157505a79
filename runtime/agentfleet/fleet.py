"""Reading the shared tree as the orchestrator, the monitor or root on the host sees it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Sequence
from typing import Any

STALE_AFTER = 3  # heartbeat intervals


def heartbeats(root: Path) -> dict[str, dict[str, Any]]:
    beats = {}
    for path in sorted((root / "heartbeats").glob("*/heartbeat.json")):
        try:
            beats[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
    return beats


def is_stale(beat: dict[str, Any], now: float | None = None) -> bool:
    age = (now or time.time()) - float(beat.get("updated", 0))
    return beat.get("status") == "stopping" or age > STALE_AFTER * float(beat.get("interval", 5))


def workers(root: Path) -> list[str]:
    return sorted(path.name for path in (root / "inbox").iterdir() if path.is_dir())


def pending(root: Path, worker: str) -> list[str]:
    """Task ids in a worker's inbox without a result yet."""
    results = root / "results" / worker
    return sorted(path.stem for path in (root / "inbox" / worker).glob("*.json")
                  if not path.name.startswith(".") and not (results / path.name).exists())


def results(root: Path, worker: str | None = None) -> list[dict[str, Any]]:
    found = []
    for path in sorted((root / "results").glob(f"{worker or '*'}/*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda result: float(result.get("finished", 0)))


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, the first row the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def usage_report(root: Path) -> dict[str, Any] | None:
    """The monitor's gateway usage report, wherever the monitor is named."""
    for path in sorted((root / "logs").glob("*/gateway-usage.json")):
        try:
            report: dict[str, Any] = json.loads(path.read_text())
            return report
        except (OSError, ValueError):
            continue
    return None
