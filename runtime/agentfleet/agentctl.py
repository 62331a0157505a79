"""agentctl: submit tasks and goals, show the fleet's status, results, goals and proposals,
integrate a proposal (the orchestrator), publish or reject a goal (root on the host).

Runs in the orchestrator's container or on the host (as root or agent-orchestrator), against
the tree at --root (default $AGENTFLEET_ROOT, else /srv/agentfleet).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from . import goals, schema
from .fleet import GONE_AFTER, Fleet, is_real_dir, table as fleet_table
from .disk import disk_table, read_report
from .egress_usage import egress_table
from .gateway_usage import usage_table
from .model_key import key_missing
from .operate import cancel, show_logs
from . import doctor, statuspage
from .proposals import git, has_commit, trusting
from .team import bundle_base, integrate, share_base
from .untrusted import NAME, Refused, printable

DISPATCHER = os.environ.get("AGENTFLEET_DISPATCHER", "")


def caller_dir() -> Path:
    """Where agentctl was called (the image's wrapper changes to / before python starts)."""
    return Path(os.environ.get("AGENTFLEET_CALLER_DIR") or os.getcwd())


def resolve_base(fleet: Fleet, project: str, base: str | None) -> str:
    """base, or the head of the project's branch in its mirror."""
    if base is not None:
        return base
    branch = json.loads(os.environ.get("AGENTFLEET_BRANCHES", "{}")).get(project, "main")
    mirror = fleet.root / "projects" / project
    with trusting(mirror) as settings:
        try:
            return git(mirror, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}", settings=settings).strip()
        except Refused as problem:
            raise SystemExit(f"agentctl: --project {printable(project)}: no branch {branch} in {mirror}: {problem}") from None


def new_task(prompt: str, extra: dict[str, Any]) -> dict[str, Any]:
    ident = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    task = {"id": ident, "prompt": prompt, "submitted": time.time(),
            "submitted_by": os.environ.get("USER", "agentctl")[:64], **extra}
    errors = schema.errors(task, schema.load("task"))
    if errors:
        raise SystemExit("agentctl: " + "; ".join(errors))
    return task


def submit_to_fleet(fleet: Fleet, prompt: str, target: dict[str, str],
                    project: dict[str, str] | None = None) -> tuple[str, str]:
    """Into the outbox of a host of a fleet (agentfleet_nats): its relay sends the task to the worker
    (to) or to any worker of the role, on any host; the result comes back into fleet/. A project
    task's base that the project's mirror lacks (a commit of the goal's checkout) goes with it as
    a bundle (outbox/<id>.base.bundle) of the commits the mirrors do not have."""
    outbox = fleet.root / "outbox"
    if not is_real_dir(outbox):
        raise SystemExit(f"agentctl: --role and workers of other hosts need a fleet of hosts (agentfleet_nats); "
                         f"this host has no {printable(str(outbox))}")
    (key, value), = target.items()
    if not NAME.match(value):
        raise SystemExit(f"agentctl: --{'to' if key == 'to' else 'role'} {printable(value)}: not a name")
    if project:
        check_fleet_project(fleet, key, value, project["project"])
    goal = os.environ.get("AGENTFLEET_GOAL")
    task = new_task(prompt, {**(project or {}), **({"goal": goal} if goal else {})})
    document = {key: value, "task": task}
    errors = schema.errors(document, schema.load("fleet-task"))
    if errors:
        raise SystemExit("agentctl: " + "; ".join(errors))
    if goal and project and not mirror_has(fleet, project):
        share_base_or_exit(fleet, project, task["id"])
        scratch = outbox / f".{task['id']}.base.bundle"
        try:
            bundle_base(fleet.root / "integration" / project["project"], fleet.root / "projects" / project["project"],
                        task["id"], scratch)
        except Refused as problem:
            raise SystemExit(f"agentctl: --base {project['base'][:12]}: cannot bundle it for the fleet: {problem}") from None
        os.replace(scratch, outbox / f"{task['id']}.base.bundle")
    schema.write_atomic(outbox / f"{task['id']}.json", document, replace=False)
    return f"fleet:{value}", task["id"]


def check_fleet_project(fleet: Fleet, key: str, value: str, project: str) -> None:
    """A project task for the fleet goes to a worker that has the project, as the fleet's view says
    (none yet, on a relay's first seconds: the task goes, and a worker without it says so)."""
    view = fleet.fleet_workers()
    if view is None:
        return
    fits = [row for row in view["workers"] if row["worker" if key == "to" else "role"] == value]
    if fits and not any(project in row.get("projects", []) for row in fits):
        raise SystemExit(f"agentctl: --project {printable(project)}: no worker {'named' if key == 'to' else 'of role'} "
                         f"{printable(value)} in the fleet has it")


def mirror_has(fleet: Fleet, project: dict[str, str]) -> bool:
    mirror = fleet.root / "projects" / project["project"]
    with trusting(mirror) as settings:
        return has_commit(mirror, project["base"], settings)


def share_base_or_exit(fleet: Fleet, project: dict[str, str], ident: str) -> None:
    """The goal's base into the integration repository, where this host's workers fetch it."""
    try:
        share_base(fleet.root / "integration" / project["project"], caller_dir(), project["base"], ident)
    except Refused as problem:
        raise SystemExit(f"agentctl: --base {project['base'][:12]} is in neither the mirror nor this "
                         f"checkout: {problem}") from None


def submit(fleet: Fleet, prompt: str, worker: str | None, project: dict[str, str] | None = None) -> tuple[str, str]:
    """Write a task atomically into a worker's inbox; the least busy fresh worker when none is named.

    From inside a goal (AGENTFLEET_GOAL) the task is marked with it, and a base the mirror lacks
    (a commit of the goal's checkout, the working directory) is shared through the integration
    repository first."""
    beats, goal = fleet.heartbeats(), os.environ.get("AGENTFLEET_GOAL")
    if goal and worker == DISPATCHER:
        raise SystemExit("agentctl: a goal cannot start another goal; delegate to a worker")
    if worker is None:
        live = [name for name in fleet.workers() if name in beats and not fleet.is_stale(beats[name])
                and name != DISPATCHER]
        if not live:
            raise SystemExit("agentctl: no worker has a fresh heartbeat; name one with --to")
        worker = min(live, key=lambda name: (len(fleet.pending(name)) + (beats[name]["status"] == "busy"), name))
    inbox = fleet.root / "inbox" / worker
    if NAME.match(worker) and not inbox.is_dir() and is_real_dir(fleet.root / "outbox"):
        return submit_to_fleet(fleet, prompt, {"to": worker}, project)  # a worker of another host of the fleet
    if not NAME.match(worker) or not inbox.is_dir():
        raise SystemExit(f"agentctl: --to {printable(worker)}: no such worker (no {printable(str(inbox))})")
    task = new_task(prompt, {**(project or {}), **({"goal": goal} if goal else {})})
    ident = task["id"]
    if goal and project and not mirror_has(fleet, project):
        share_base_or_exit(fleet, project, ident)
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


def fleet_status_table(fleet: Fleet) -> str:
    """Every host's workers, from this host's relay's copy of the fleet's bucket; "" on a lone host."""
    view = fleet.fleet_workers()
    if view is None:
        return ""
    now, rows = time.time(), [("NODE", "WORKER", "ROLE", "STATE", "PENDING", "AGE")]
    for entry in view["workers"]:
        age = now - float(entry["updated"])
        state = "GONE" if age > GONE_AFTER else "ready" if entry["fresh"] else "STALE"
        rows.append((entry["node"], entry["worker"], entry["role"] or "-", state, str(entry["pending"]), f"{age:.0f}s"))
    return f"\nthe fleet (every host's workers, as of {now - float(view['updated']):.0f}s ago):\n" + fleet_table(rows) + "\n"


def fleet_goals_table(fleet: Fleet) -> str:
    """Every host's latest goals, from this host's relay's copy of the fleet's bucket; "" on a lone host."""
    view = fleet.fleet_workers()
    if view is None or not view.get("goals"):
        return ""
    rows = [("NODE", "GOAL", "PROJECT", "STATUS", "TASKS")]
    rows += [(goal["node"], goal["goal"], goal["project"], goal["status"], str(goal["tasks"])) for goal in view["goals"]]
    return f"\nthe fleet (every host's latest goals, as of {time.time() - float(view['updated']):.0f}s ago):\n" + fleet_table(rows) + "\n"


def loopback(address: str) -> str:
    """The page is for the host's own users (and SSH tunnels): any other address is refused."""
    try:
        if ipaddress.ip_address(address).is_loopback:
            return address
    except ValueError:
        pass
    raise SystemExit(f"agentctl serve: --address {printable(address)}: not a loopback address (127.0.0.0/8 or ::1)")


def model_key_line(env: Mapping[str, str]) -> str:
    """A line naming the missing model key and the agents that need it, "" when it is set or none does."""
    needing = [name for name in env.get("AGENTFLEET_KEY_AGENTS", "").split(",") if name]
    state = env.get("AGENTFLEET_MODEL_KEY_STATE")
    if not needing or not state or not key_missing(Path(state)):
        return ""
    return (f"model key: NOT SET; {', '.join(needing)} cannot reach the model until root runs "
            "`agentctl secret set model-key < key-file`\n")


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
    send.add_argument("--to", help="worker name, of this host or of another host of the fleet (default: the least "
                      "busy worker here with a fresh heartbeat)")
    send.add_argument("--role", help="any worker of this role on any host of the fleet, the least busy first")
    send.add_argument("--wait", type=float, metavar="SECONDS", help="wait for the result and print it")
    send.add_argument("--project", help="run in a checkout of this project of the worker's (a goal, sent to the orchestrator)")
    send.add_argument("--base", help="the commit (40 hex digits) the checkout starts from (default: the project's branch)")
    send.add_argument("prompt")
    commands.add_parser("status", help="agents from their heartbeats; stale ones marked STALE")
    commands.add_parser("usage", help="model API requests per agent, from the gateway's log (the monitor's report)")
    commands.add_parser("egress", help="tunnels through the egress proxy and its refusals per agent (the monitor's report)")
    commands.add_parser("disk", help="what each agent keeps on the host's disk against its bound (the host's watcher)")
    listing = commands.add_parser("results", help="one line per result")
    listing.add_argument("--worker")
    show = commands.add_parser("show", help="one result as JSON")
    show.add_argument("id")
    waiting = commands.add_parser("wait", help="wait for a result, print it; exit 1 unless ok")
    waiting.add_argument("id")
    waiting.add_argument("--timeout", type=float, default=600)
    logs = commands.add_parser("logs", help="a task's live transcript (an agent: its current or last task)")
    logs.add_argument("target", metavar="TASK|AGENT")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    logs.add_argument("--timeout", type=float, default=0, help="with --follow: stop after this many seconds")
    stopping = commands.add_parser("cancel", help="(dispatcher) stop a task, or make sure it never starts")
    stopping.add_argument("id")
    commands.add_parser("goals", help="the goals sent to the orchestrator, their tasks and publication")
    differ = commands.add_parser("diff", help="a task's or goal's proposal as a diff against its base")
    differ.add_argument("id")
    merging = commands.add_parser("integrate", help="(orchestrator) import a proposal and merge it into --repo")
    merging.add_argument("id")
    merging.add_argument("--repo", type=Path, help="the goal's checkout (default: here)")
    for verb, text in (("publish", "(root, host) push a goal's branch to its project"),
                       ("accept", "(root, host) the same as publish: a person accepts the goal"),
                       ("reject", "(root, host) record that a person rejected a goal; it is never published")):
        deciding = commands.add_parser(verb, help=text)
        deciding.add_argument("id")
        if verb == "reject":
            deciding.add_argument("--reason", default="")
    refreshing = commands.add_parser("refresh", help="(root, host) fetch a project's source into its mirror now")
    refreshing.add_argument("project")
    commands.add_parser("doctor", help="(root, host) check the engine, runtimes, services, the gateway's upstream, "
                        "the model key, the disk and the last audit; say what to fix")
    serving = commands.add_parser("serve", help="(host) the read-only status page, on a loopback address only")
    serving.add_argument("--address", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    serving.add_argument("--port", type=int, default=8377)
    commands.add_parser("publish-completed", help="(root, host) publish every finished goal of the projects set "
                        "to publish: on_completion")
    args = parser.parse_args(argv)
    if args.command == "doctor":
        return doctor.run(os.environ, args.root)
    if args.command == "serve":
        return statuspage.serve(args.root, loopback(args.address), args.port)
    fleet = Fleet.from_env(args.root)
    try:
        return run(fleet, args)
    finally:
        report_problems(fleet)


def run(fleet: Fleet, args: argparse.Namespace) -> int:
    try:
        return run_goal_command(fleet, args)
    except Refused as problem:
        raise SystemExit(f"agentctl {args.command}: {printable(str(problem))}") from None


def run_goal_command(fleet: Fleet, args: argparse.Namespace) -> int:
    state = os.environ.get("AGENTFLEET_PUBLISH_STATE")
    if args.command == "goals":
        print(fleet_table(goals.goal_rows(fleet, DISPATCHER, Path(state) if state else None)))
        print(fleet_goals_table(fleet), end="")
        return 0
    if args.command == "diff":
        found = fleet.find(args.id)  # the worker it went to: on this host, or on another of the fleet
        project = str(fleet.sent_task(str(found["worker"]), args.id).get("project", "")) if found else ""
        sources = [fleet.root / "projects" / project, fleet.root / "integration" / project] if project else []
        sys.stdout.write(goals.diff(fleet, args.id, sources))
        return 0
    if args.command == "integrate":
        print(integrate(fleet, args.repo or caller_dir(), args.id, os.environ.get("AGENTFLEET_NAME", DISPATCHER or "agentctl")))
        return 0
    if args.command in ("publish", "accept", "reject"):
        config = goals.load_config(os.environ.get("AGENTFLEET_PUBLISH_CONFIG"))
        action = "rejected" if args.command == "reject" else "published"
        record = goals.publish(fleet, config, args.id, action, getattr(args, "reason", ""))
        print(json.dumps(record, sort_keys=True))
        return 0
    if args.command == "refresh":
        print(goals.refresh(goals.load_config(os.environ.get("AGENTFLEET_PUBLISH_CONFIG")), args.project))
        return 0
    if args.command == "publish-completed":
        return publish_completed(fleet, goals.load_config(os.environ.get("AGENTFLEET_PUBLISH_CONFIG")))
    return run_task_command(fleet, args)


def publish_completed(fleet: Fleet, config: dict[str, Any]) -> int:
    """Publish each finished goal of an on_completion project not published or rejected yet."""
    failed = 0
    for item in fleet.results(config["dispatcher"]):
        project = config["projects"].get(item.get("project", ""), {})
        if project.get("publish") != "on_completion" or item["status"] != "ok" or not item["proposal"]:
            continue
        if goals.read_record(Path(config["state"]), item["id"]) is not None:
            continue
        try:
            print(json.dumps(goals.publish(fleet, config, item["id"]), sort_keys=True))
        except Refused as problem:
            failed += 1
            print(f"agentctl: goal {item['id']}: {printable(str(problem))}", file=sys.stderr)
    return 1 if failed else 0


def run_task_command(fleet: Fleet, args: argparse.Namespace) -> int:
    if args.command == "submit":
        if args.base is not None and args.project is None:
            raise SystemExit("agentctl: --base needs --project")
        if args.role is not None and args.to is not None:
            raise SystemExit("agentctl: --role and --to: name a worker or a role, not both")
        project = {"project": args.project, "base": resolve_base(fleet, args.project, args.base)} if args.project else None
        worker, ident = (submit_to_fleet(fleet, args.prompt, {"role": args.role}, project) if args.role is not None
                         else submit(fleet, args.prompt, args.to, project))
        print(f"{worker} {ident}")
        if args.wait is None:
            return 0
        result = wait(fleet, ident, args.wait)
    elif args.command == "status":
        print(status_table(fleet))
        print(fleet_status_table(fleet), end="")
        print(model_key_line(os.environ), end="")
        return 0
    elif args.command == "disk":
        try:
            print(disk_table(read_report(args.root / "disk" / "usage.json")))
        except Refused as problem:
            raise SystemExit(f"agentctl: no disk report to trust ({problem}); the host's agentfleet-disk.timer writes it") from None
        return 0
    elif args.command == "usage":
        report = fleet.usage_report()
        if report is None:
            raise SystemExit("agentctl: no gateway usage report yet (the monitor writes logs/<monitor>/gateway-usage.json)")
        print(usage_table(report))
        return 0
    elif args.command == "egress":
        report = fleet.usage_report("egress-usage")
        if report is None:
            raise SystemExit("agentctl: no egress report yet (the monitor writes logs/<monitor>/egress-usage.json)")
        print(egress_table(report))
        return 0
    elif args.command == "logs":
        return show_logs(fleet, args.target, sys.stdout, args.follow, args.timeout)
    elif args.command == "cancel":
        print(cancel(fleet, args.id))
        return 0
    elif args.command == "results":
        local = fleet.results(args.worker)
        listed = {item["id"] for item in local}  # a task this host sent that one of its workers ran: once
        for item in local + [item for item in fleet.fleet_results() if args.worker in (None, item["worker"])
                             and item["id"] not in listed]:
            where = f"{item['worker']}@{item['node']}" if "node" in item else item["worker"]  # ran on another host
            print(printable(f"{where}  {item['id']}  {item['status']}  {item['reason'][:80]}"))
        return 0
    elif args.command == "show":
        found = fleet.find(args.id)
        if found is None:
            raise SystemExit(f"agentctl: no result for {args.id}")
        result = found
        if fleet.dispatcher_of(args.id) == DISPATCHER and DISPATCHER:
            state = os.environ.get("AGENTFLEET_PUBLISH_STATE")
            result = goals.show_goal(fleet, found, Path(state) if state else None)
    else:
        result = wait(fleet, args.id, args.timeout)
    # ensure_ascii: every control character in a field is printed as an escape, never raw.
    json.dump(result, sys.stdout, indent=2, sort_keys=True, ensure_ascii=True)
    print()
    return 0 if result.get("status") == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
