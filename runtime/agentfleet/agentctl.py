"""agentctl: submit tasks, show the fleet's status, list, show and wait for results.

Runs in the orchestrator's container or on the host (as root or agent-orchestrator), against
the tree at --root (default $AGENTFLEET_ROOT, else /srv/agentfleet).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from . import fleet, schema
from .gateway_usage import usage_table


def submit(root: Path, prompt: str, worker: str | None) -> tuple[str, str]:
    """Write a task atomically into a worker's inbox; the least busy fresh worker when none is named."""
    beats = fleet.heartbeats(root)
    if worker is None:
        live = [name for name in fleet.workers(root) if name in beats and not fleet.is_stale(beats[name])]
        if not live:
            raise SystemExit("agentctl: no worker has a fresh heartbeat; name one with --to")
        worker = min(live, key=lambda name: (len(fleet.pending(root, name)) + (beats[name]["status"] == "busy"), name))
    inbox = root / "inbox" / worker
    if not inbox.is_dir():
        raise SystemExit(f"agentctl: --to {worker}: no such worker (no {inbox})")
    ident = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    task = {"id": ident, "prompt": prompt, "submitted": time.time(), "submitted_by": os.environ.get("USER", "agentctl")}
    errors = schema.errors(task, schema.load("task"))
    if errors:
        raise SystemExit("agentctl: " + "; ".join(errors))
    schema.write_atomic(inbox / f"{ident}.json", task, replace=False)
    return worker, ident


def status_table(root: Path) -> str:
    now, rows = time.time(), [("AGENT", "KIND", "STATUS", "TASK", "DONE", "PENDING", "AGE")]
    inboxes = set(fleet.workers(root))
    for name, beat in fleet.heartbeats(root).items():
        state = "STALE" if fleet.is_stale(beat, now) else str(beat.get("status"))
        waiting = str(len(fleet.pending(root, name))) if name in inboxes else "-"
        rows.append((name, str(beat.get("kind")), state, str(beat.get("task") or "-"), str(beat.get("completed", 0)),
                     waiting, f"{now - float(beat.get('updated', 0)):.0f}s"))
    return fleet.table(rows)


def find(root: Path, ident: str) -> dict[str, Any] | None:
    for path in (root / "results").glob(f"*/{ident}.json"):
        document: dict[str, Any] = json.loads(path.read_text())
        return document
    return None


def wait(root: Path, ident: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = find(root, ident)
        if found is not None:
            return found
        time.sleep(0.05)
    raise SystemExit(f"agentctl: no result for {ident} within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentctl", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("AGENTFLEET_ROOT", "/srv/agentfleet")))
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("submit", help="send a task; prints worker and task id")
    send.add_argument("--to", help="worker name (default: the least busy worker with a fresh heartbeat)")
    send.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the result and print it")
    send.add_argument("prompt")
    commands.add_parser("status", help="agents from their heartbeats; stale ones marked STALE")
    commands.add_parser("usage", help="model API requests per agent, from the gateway's log (the monitor's report)")
    listing = commands.add_parser("results", help="one line per result")
    listing.add_argument("--worker")
    show = commands.add_parser("show", help="one result as JSON")
    show.add_argument("id")
    waiting = commands.add_parser("wait", help="wait for a result, print it; exit 1 unless ok")
    waiting.add_argument("id")
    waiting.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    if args.command == "submit":
        worker, ident = submit(args.root, args.prompt, args.to)
        print(f"{worker} {ident}")
        if args.wait is None:
            return 0
        result = wait(args.root, ident, args.wait)
    elif args.command == "status":
        print(status_table(args.root))
        return 0
    elif args.command == "usage":
        report = fleet.usage_report(args.root)
        if report is None:
            raise SystemExit("agentctl: no gateway usage report yet (the monitor writes logs/<monitor>/gateway-usage.json)")
        print(usage_table(report))
        return 0
    elif args.command == "results":
        for item in fleet.results(args.root, args.worker):
            print(f"{item['worker']}  {item['id']}  {item['status']}  {item.get('reason', '')[:80]}")
        return 0
    elif args.command == "show":
        found = find(args.root, args.id)
        if found is None:
            raise SystemExit(f"agentctl: no result for {args.id}")
        result = found
    else:
        result = wait(args.root, args.id, args.timeout)
    json.dump(result, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0 if result.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
