"""What an operator does to running work: read a task's live transcript (agentctl logs) and stop
a task (agentctl cancel, the dispatcher's right: the word is a file in the worker's inbox, which
only the dispatcher and root can write)."""

from __future__ import annotations

import os
import time
from typing import TextIO

from . import schema
from .fleet import Fleet
from .transcript import SUFFIX, TranscriptReader, render
from .untrusted import ID, NAME, Refused, names, open_checked, printable

CANCEL = ".cancel"


def transcript_of(fleet: Fleet, target: str) -> tuple[str, str]:
    """(agent, task) for a task id, or for an agent name: its current task, else its newest transcript."""
    if NAME.match(target) and target in fleet.agents:
        beat = fleet.heartbeats().get(target, {})
        if isinstance(beat.get("task"), str) and ID.match(beat["task"]):
            return target, beat["task"]
        directory, newest = fleet.root / "logs" / target, ("", 0.0)
        for name in names(directory, fleet.problems):
            if name.endswith(SUFFIX) and ID.match(name[:-len(SUFFIX)]):
                try:
                    when = os.lstat(directory / name).st_mtime
                except OSError:
                    continue
                newest = max(newest, (name[:-len(SUFFIX)], when), key=lambda item: item[1])
        if not newest[0]:
            raise Refused(f"{target} has no transcript yet")
        return target, newest[0]
    if not ID.match(target):
        raise Refused(f"{printable(target)!r} is neither an agent of the model nor a task id")
    worker = fleet.dispatcher_of(target)
    if worker is None:
        raise Refused(f"no task {target} in any inbox")
    return worker, target


def show_logs(fleet: Fleet, target: str, out: TextIO, follow: bool = False, timeout: float = 0.0) -> int:
    """Print the transcript for people; with follow, keep printing until the task's result exists."""
    agent, ident = transcript_of(fleet, target)
    path = fleet.root / "logs" / agent / f"{ident}{SUFFIX}"
    result = fleet.root / "results" / agent / f"{ident}.json"
    deadline = time.monotonic() + timeout if timeout else None
    while not os.path.lexists(path):
        if not follow or os.path.lexists(result) or (deadline and time.monotonic() > deadline):
            raise Refused(f"no transcript of {ident} in logs/{agent} (a task that has not started, or no claude backend)")
        time.sleep(0.2)
    fd = open_checked(path, fleet.agents[agent])
    try:
        reader = TranscriptReader(fd)
        out.write(f"== {agent} {ident}\n")
        while True:
            done = os.path.lexists(result)  # before reading: what was written before it is read next
            for line in reader.lines():
                for shown in render(line):
                    out.write(shown + "\n")
            out.flush()
            if not follow or done or reader.exhausted or (deadline and time.monotonic() > deadline):
                break
            time.sleep(0.2)
    finally:
        os.close(fd)
    return 0


def cancel(fleet: Fleet, ident: str) -> str:
    """Tell the worker that holds task ident to stop it (or never start it)."""
    if not ID.match(ident):
        raise Refused(f"{printable(ident)!r} is not a task id")
    worker = fleet.dispatcher_of(ident)
    if worker is None:
        raise Refused(f"no task {ident} in any inbox")
    if os.path.lexists(fleet.root / "results" / worker / f"{ident}.json"):
        found = fleet.find(ident)
        return f"{ident} already finished on {worker}: {found['status'] if found else 'its result is invalid'}"
    marker = fleet.root / "inbox" / worker / f"{ident}{CANCEL}"
    try:
        schema.write_atomic(marker, {"id": ident, "requested": time.time(),
                                     "by": os.environ.get("USER", "agentctl")[:64]}, replace=False)
    except PermissionError:
        raise Refused(f"only the dispatcher (the owner of inbox/{worker}) or root cancels a task") from None
    return f"{worker} {ident} cancel requested"
