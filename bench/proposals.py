#!/usr/bin/env python3
"""Benchmark: the fleet's own cost per project task, model time excluded.

    bench/proposals.py [files ...]      (default 1000 20000)

For each size, on this host: a project of that many files (about 1 KB each, in directories of
100) and its bare mirror; the worker's first clone (once per worker and project); then a task's
steps as the runtime runs them: moving that clone to the task's base, a change to one file, the proposal (commit, bundle, manifest), the orchestrator's import
and its merge into the integration branch (agentctl integrate). Prints the time of each step and
the total. Target: under 2 s per task on the larger project.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "bench")]
from agentfleet.proposals import clone, git, import_proposal, propose  # noqa: E402
from table import print_table  # noqa: E402

AUTHOR = ["-c", "user.name=bench", "-c", "user.email=bench@agentfleet.invalid"]


def project(at: Path, files: int) -> tuple[Path, str]:
    work = at / "work"
    for n in range(files):
        path = work / f"d{n // 100}" / f"f{n}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"file {n}\n" + "x" * 1000 + "\n")
    subprocess.run(["git", "-C", str(work), "init", "--quiet", "--initial-branch", "main"], check=True)
    subprocess.run(["git", "-C", str(work), "add", "--all"], check=True)
    subprocess.run(["git", "-C", str(work), *AUTHOR, "commit", "--quiet", "-m", "base"], check=True)
    mirror = at / "mirror.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(work), str(mirror)], check=True)
    base = subprocess.run(["git", "-C", str(mirror), "rev-parse", "main"], capture_output=True, text=True,
                          check=True).stdout.strip()
    return mirror, base


def main(sizes: list[int]) -> None:
    rows = []
    for files in sizes:
        with tempfile.TemporaryDirectory() as scratch:
            at = Path(scratch)
            mirror, base = project(at, files)
            integration = at / "goal"  # the orchestrator's checkout of the goal, a task already merged
            clone(mirror, integration, "agentfleet/goal", base)
            (integration / "d1" / "f100.txt").write_text("merged before\n")
            git(integration, *AUTHOR, "commit", "--quiet", "-am", "an earlier task")
            (at / "results").mkdir()
            first = time.perf_counter()
            checkout = at / "workspace" / "projects" / "shop"
            checkout.parent.mkdir(parents=True)
            clone(mirror, checkout, "agentfleet/t0", base)  # an earlier task of this worker's
            (checkout / "d2" / "f200.txt").write_text("the earlier task's work, proposed already\n")
            steps, started = [], time.perf_counter()
            clone(mirror, checkout, "agentfleet/t1", base)
            steps.append(time.perf_counter())
            (checkout / "d0" / "f0.txt").write_text("changed by the agent\n")
            propose(checkout, base, "marie", "t1", "changed f0", at / "results")
            steps.append(time.perf_counter())
            import_proposal(at / "results" / "t1.bundle", None, integration, "marie", "t1", base)
            steps.append(time.perf_counter())
            git(integration, *AUTHOR, "merge", "--no-ff", "--no-edit", "refs/proposals/marie/t1")
            steps.append(time.perf_counter())
            marks = [started, *steps]
            rows.append([str(files), f"{started - first:.2f} s", *(f"{b - a:.2f} s" for a, b in zip(marks, marks[1:])),
                         f"{marks[-1] - started:.2f} s"])
    print_table(["FILES", "FIRST CLONE", "CHECKOUT", "PROPOSAL", "IMPORT", "MERGE", "TOTAL PER TASK"], rows)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1000, 20000])
