"""The host's disk watcher: what each agent keeps in the tree against its bound; one over it is stopped.

Runs as root on the host (agentfleet-disk.timer), on a bounds file the agent_stack role writes from
the model. Usage is by owner, the identity no agent can forge: every file an agent's uid owns
anywhere under the tree counts for it, whoever's directory it is in. The walk never follows a
link and never opens a file; past a cap of entries it stops and says the count is incomplete.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import schema
from .fleet import table
from .untrusted import Refused, read_document

MIB = 1024 * 1024


def usage(root: Path, uids: dict[int, str], cap: int) -> tuple[dict[str, dict[str, int]], bool]:
    """({agent: {bytes, files}}, complete) for the files under root owned by the uids."""
    totals = {name: {"bytes": 0, "files": 0} for name in uids.values()}
    pending, seen = [str(root)], 0
    while pending:
        try:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    seen += 1
                    if seen > cap:
                        return totals, False
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # gone meanwhile
                    name = uids.get(info.st_uid)
                    if name:
                        totals[name]["bytes"] += info.st_blocks * 512
                        totals[name]["files"] += 1
                    if stat.S_ISDIR(info.st_mode):
                        pending.append(entry.path)
        except OSError:
            continue
    return totals, True


def judge(totals: dict[str, dict[str, int]], bounds: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Each agent's usage, bound and whether it is over."""
    return {name: {**totals[name], "bound_bytes": bounds[name]["mb"] * MIB, "bound_files": bounds[name]["files"],
                   "over": totals[name]["bytes"] > bounds[name]["mb"] * MIB or totals[name]["files"] > bounds[name]["files"]}
            for name in sorted(bounds)}


def stop(container: str) -> str:
    """Stop a running container (docker keeps it stopped: restart unless-stopped); '' or why not."""
    done = subprocess.run(["docker", "stop", "--time", "10", container], capture_output=True, text=True, check=False)
    return "" if done.returncode == 0 else done.stderr.strip()[:200]


def running(project: str) -> set[str]:
    done = subprocess.run(["docker", "ps", "--format", "{{.Names}}", "--filter", f"label=com.docker.compose.project={project}"],
                          capture_output=True, text=True, check=False)
    return set(done.stdout.split())


def watch(config: dict[str, Any]) -> dict[str, Any]:
    """One round: count, judge, stop whoever is over, write the report; returns the report."""
    root, project = Path(config["root"]), config["project"]
    bounds = {name: {"mb": int(spec["mb"]), "files": int(spec["files"])} for name, spec in config["agents"].items()}
    totals, complete = usage(root, {int(spec["uid"]): name for name, spec in config["agents"].items()}, config["cap"])
    agents = judge(totals, bounds)
    up = running(project)
    for name, state in agents.items():
        container = f"{project}-{name}-1"
        state["stopped"] = state["over"] and container not in up
        if state["over"] and container in up:
            problem = stop(container)
            state["stopped"] = not problem
            print(json.dumps({"time": round(time.time(), 3), "event": "disk-over-bound", "agent": name,
                              "bytes": state["bytes"], "files": state["files"], "stopped": not problem, "error": problem}))
    report = {"updated": time.time(), "complete": complete, "agents": agents}
    schema.write_atomic(Path(config["report"]), report)
    return report


def read_report(path: Path) -> dict[str, Any]:
    """The watcher's report, only as root wrote it."""
    return read_document(path, "disk-usage", 0)


def disk_rows(report: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("AGENT", "MIB", "BOUND_MIB", "FILES", "BOUND_FILES", "STATE")]
    for name, state in sorted(report["agents"].items()):
        condition = "STOPPED: over its bound" if state["stopped"] else "OVER its bound" if state["over"] else "ok"
        rows.append((name, f"{state['bytes'] / MIB:.1f}", str(state["bound_bytes"] // MIB), str(state["files"]),
                     str(state["bound_files"]), condition))
    return rows


def disk_note(report: dict[str, Any]) -> str:
    age = time.time() - float(report["updated"])
    note = "" if report["complete"] else " (incomplete: the tree has more entries than the watcher counts)"
    return f"counted {age:.0f} s ago{note}"


def disk_table(report: dict[str, Any]) -> str:
    return table(disk_rows(report)) + f"\n({disk_note(report)})"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -I -m agentfleet disk CONFIG.json", file=sys.stderr)
        return 2
    try:
        config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        watch(config)
    except (OSError, ValueError, KeyError, Refused) as problem:
        print(f"agentfleet disk: {problem}", file=sys.stderr)
        return 1
    return 0
