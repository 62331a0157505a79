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

from . import schema
from .fleet import Fleet, table as fleet_table
from .gateway_usage import usage_table
from .untrusted import NAME, printable


def submit(fleet: Fleet, prompt: str, worker: str | None, project: dict[str, str] | None = None) -> tuple[str, str]:
    """Write a task atomically into a worker's inbox; the least busy fresh worker when none is named."""
    beats = fleet.heartbeats()
    if worker is None:
        live = [name for name in fleet.workers() if name in beats and not fleet.is_stale(beats[name])]
        if not live:
            raise SystemExit("agentctl: no worker has a fresh heartbeat; name one with --to")
        worker = min(live, key=lambda name: (len(fleet.pending(name)) + (beats[name]["status"] == "busy"), name))
    inbox = fleet.root / "inbox" / worker
    if not NAME.match(worker) or not inbox.is_dir():
        raise SystemExit(f"agentctl: --to {printable(worker)}: no such worker (no {printable(str(inbox))})")
    ident = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    task = {"id": ident, "prompt": prompt, "submitted": time.time(),
            "submitted_by": os.environ.get("USER", "agentctl")[:64], **(project or {})}
    errors = schema.errors(task, schema.load("task"))
    if errors:
        raise SystemExit("agentctl: " + "; ".join(errors))
    schema.write_atomic(inbox / f"{ident}.json", task, replace=False)
    return worker, ident


def status_table(fleet: Fleet) -> str:
    now, rows = time.time(), [("AGENT", "KIND", "STATUS", "TASK", "DONE", "PENDING", "AGE")]
    inboxes = set(fleet.workers())
    for name, beat in fleet.heartbeats().items():
        state = "STALE" if fleet.is_stale(beat, now) else str(beat["status"])
        waiting = str(len(fleet.pending(name))) if name in inboxes else "-"
        rows.append((name, str(beat["kind"]), state, str(beat["task"] or "-"), str(beat["completed"]),
                     waiting, f"{now - float(beat['updated']):.0f}s"))
    return fleet_table(rows)


def wait(fleet: Fleet, ident: str, timeout: float) -> dict[str, Any]:
    deadline, refused = time.monotonic() + timeout, len(fleet.problems)
    while time.monotonic() < deadline:
        found = fleet.find(ident)
        if found is not None:
            return found
        if len(fleet.problems) > refused:
            raise SystemExit(f"agentctl: the result of {ident} is invalid")
        time.sleep(0.05)
    raise SystemExit(f"agentctl: no result for {ident} within {timeout} s")


def report_problems(fleet: Fleet) -> None:
    """Files refused on the way, on stderr: the command's own output stays parseable."""
    for problem in dict.fromkeys(fleet.problems):
        print(f"agentctl: skipped {printable(problem)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentctl", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path(os.environ.get("AGENTFLEET_ROOT", "/srv/agentfleet")))
    commands = parser.add_subparsers(dest="command", required=True)
    send = commands.add_parser("submit", help="send a task; prints worker and task id")
    send.add_argument("--to", help="worker name (default: the least busy worker with a fresh heartbeat)")
    send.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the result and print it")
    send.add_argument("--project", help="run in a checkout of this project of the worker's; needs --base")
    send.add_argument("--base", help="the commit (40 hex digits) the checkout starts from")
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
    fleet = Fleet.from_env(args.root)
    try:
        return run(fleet, args)
    finally:
        report_problems(fleet)


def run(fleet: Fleet, args: argparse.Namespace) -> int:
    if args.command == "submit":
        if (args.project is None) != (args.base is None):
            raise SystemExit("agentctl: --project and --base go together")
        project = {"project": args.project, "base": args.base} if args.project else None
        worker, ident = submit(fleet, args.prompt, args.to, project)
        print(f"{worker} {ident}")
        if args.wait is None:
            return 0
        result = wait(fleet, ident, args.wait)
    elif args.command == "status":
        print(status_table(fleet))
        return 0
    elif args.command == "usage":
        report = fleet.usage_report()
        if report is None:
            raise SystemExit("agentctl: no gateway usage report yet (the monitor writes logs/<monitor>/gateway-usage.json)")
        print(usage_table(report))
        return 0
    elif args.command == "results":
        for item in fleet.results(args.worker):
            print(printable(f"{item['worker']}  {item['id']}  {item['status']}  {item['reason'][:80]}"))
        return 0
    elif args.command == "show":
        found = fleet.find(args.id)
        if found is None:
            raise SystemExit(f"agentctl: no result for {args.id}")
        result = found
    else:
        result = wait(fleet, args.id, args.timeout)
    # ensure_ascii: every control character in a field is printed as an escape, never raw.
    json.dump(result, sys.stdout, indent=2, sort_keys=True, ensure_ascii=True)
    print()
    return 0 if result.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
