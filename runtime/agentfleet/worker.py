"""The worker: wait for tasks, claim, run through the backend, write the result once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from . import schema
from .backends import MAX_OUTPUT
from .claims import Claim
from .config import Config
from .events import emit
from .fleet import Fleet
from .proposals import clone, propose
from .tasks import read_task, task_id
from .team import role_prompt
from .transcript import SUFFIX, TranscriptWriter
from .untrusted import Refused
from .watch import Watcher

HANDBACK = "handback"
CANCEL = ".cancel"  # inbox/<id>.cancel: the dispatcher's word that a task must stop (agentctl cancel)
CANCEL_POLL = 0.5
BASE_BUNDLE = ".base.bundle"  # inbox/<id>.base.bundle: the base a task from another host of the fleet came with
MAX_STDERR = 8_192


class Worker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.stop_requested = 0.0
        self.current: str | None = None
        self.completed = 0

    def heartbeat(self, status: str | None = None) -> None:
        state = status or ("busy" if self.current else "idle")
        schema.write_atomic(self.config.heartbeat, {
            "agent": self.config.name, "kind": self.config.kind, "status": state, "task": self.current,
            "updated": time.time(), "interval": self.config.interval, "completed": self.completed, "pid": os.getpid()})

    def pending(self) -> list[Path]:
        """Task files without a result, oldest first; dot-files are writes still in progress."""
        found = []
        with os.scandir(self.config.inbox) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.name.startswith(".") or entry.name.endswith((CANCEL, BASE_BUNDLE)) \
                        or (self.config.results / f"{task_id(path)}.json").exists():
                    continue
                try:
                    found.append((entry.stat(follow_symlinks=False).st_mtime, entry.name, path))
                except FileNotFoundError:
                    continue  # removed by the orchestrator since the listing
        return [path for _mtime, _name, path in sorted(found)]

    def sweep(self) -> None:
        """Drop claims left by a kill between writing a result and dropping its claim."""
        for claim in self.config.results.glob("*.claim"):
            if (self.config.results / f"{claim.stem}.json").exists():
                Claim.take(self.config.results, claim.stem)  # finds the result and removes the claim

    def run_once(self) -> int:
        done = 0
        for path in self.pending():
            if self.stopping.is_set():
                break
            claim = Claim.take(self.config.results, task_id(path))
            if claim is not None:
                self.process(path, claim)
                done += 1
        return done

    def process(self, path: Path, claim: Claim) -> None:
        started, ident = time.time(), task_id(path)
        try:
            task, reason = read_task(path, self.config.max_task_bytes, self.config.backend.type)
        except Exception as error:  # a task that crashes its reader must not crash the worker in a loop
            task, reason = None, f"unreadable task: {type(error).__name__}"
        if claim.attempt > self.config.max_attempts:
            outcome = ("failed", "", f"interrupted {claim.attempt - 1} times; not run again")
            self.finish(claim, ident, outcome, started, task)
            return
        if task is None:
            self.finish(claim, ident, ("rejected", "", reason), started, None)
            return
        if self.cancelled(ident):
            self.finish(claim, ident, ("cancelled", "", "cancelled by the dispatcher before it ran"), started, task)
            return
        self.current = ident
        self.heartbeat()
        emit(self.config.name, "claimed", task=ident, attempt=claim.attempt)
        outcome = self.execute(task)
        self.current = None
        if outcome[0] == HANDBACK:
            claim.hand_back()
            emit(self.config.name, "handed-back", task=ident, reason=outcome[2])
            return
        self.finish(claim, ident, outcome, started, task)

    def finish(self, claim: Claim, ident: str, outcome: tuple[str, str, str], started: float,
               task: dict[str, Any] | None) -> None:
        status, output, reason = outcome
        result: dict[str, Any] = {"id": ident, "worker": self.config.name, "status": status, "output": output,
                                  "reason": reason, "attempt": claim.attempt if task else 0,
                                  "started": started, "finished": time.time()}
        if task is not None:
            result["task"] = task
        if task is not None and "project" in task and (self.config.results / f"{ident}.proposal.json").exists():
            result["proposal"] = f"{ident}.proposal.json"
        written = schema.write_atomic(self.config.results / f"{ident}.json", result, replace=False)
        claim.finish()
        if written:
            self.completed += 1
            emit(self.config.name, "completed", task=ident, status=status, reason=reason)
        self.heartbeat()

    def fleet_workers(self) -> list[dict[str, Any]]:
        """The workers of every host of a fleet, as this host's relay last copied them ([] on a lone host)."""
        view = Fleet(self.config.root, {}).fleet_workers()
        return list(view["workers"]) if view else []

    def execute(self, task: dict[str, Any]) -> tuple[str, str, str]:
        """Run the task; a project task runs in a checkout of its base and ends in a proposal."""
        if "project" not in task:
            plan = role_prompt(self.config.name, task["id"], None, None, self.config.team,
                               self.fleet_workers()) if self.config.dispatches else ""
            return self.run_backend(task, self.config.workspace, plan)
        try:
            checkout = self.checkout(task)
        except Refused as problem:
            return "rejected", "", f"project {task['project']}: {problem}"
        prompt = ""
        if self.config.dispatches:  # the task is a goal: the orchestrator plans and integrates it here
            prompt = role_prompt(self.config.name, task["id"], task["project"], task["base"], self.config.team,
                                 self.fleet_workers())
        outcome = self.run_backend(task, checkout, prompt)
        if outcome[0] != HANDBACK:
            try:
                propose(checkout, task["base"], self.config.name, task["id"], outcome[1], self.config.results)
            except (Refused, OSError) as problem:
                return "failed", outcome[1], f"the proposal could not be made: {problem}"
        return outcome

    def checkout(self, task: dict[str, Any]) -> Path:
        """workspace/projects/<project>, the worker's own clone, on branch agentfleet/<id> at the
        task's base; a retried task finds its earlier work there."""
        mirror = self.config.projects.get(task["project"])
        if mirror is None:
            raise Refused(f"not one of this worker's projects {sorted(self.config.projects)}")
        target: Path = self.config.workspace / "projects" / str(task["project"])
        target.parent.mkdir(exist_ok=True)
        ref = f"refs/heads/task/{task['id']}"
        shared = ((self.config.integration(task["project"]), ref), (self.config.inbox / f"{task['id']}{BASE_BUNDLE}", ref))
        clone(mirror, target, f"agentfleet/{task['id']}", task["base"], shared)
        return target

    def cancelled(self, ident: str) -> bool:
        """Whether the dispatcher asked to stop the task: a regular file in the inbox, which only the
        dispatcher (and root) can write; a link or anything else there is not its word."""
        try:
            return os.lstat(self.config.inbox / f"{ident}{CANCEL}").st_mode & 0o170000 == 0o100000
        except OSError:
            return False

    def run_backend(self, task: dict[str, Any], workspace: Path, prompt: str = "") -> tuple[str, str, str]:
        backend = self.config.backend
        argv = backend.command(task, str(workspace), prompt)
        # A goal's id and role prompt reach agentctl and any backend through the environment.
        env = {**os.environ, "AGENTFLEET_GOAL": task["id"], "AGENTFLEET_ROLE_PROMPT": prompt} if prompt else None
        try:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, errors="replace", start_new_session=True, env=env,
                                       cwd=workspace if workspace.is_dir() else None)
        except OSError as error:
            return "failed", "", f"cannot start {argv[0]}: {error.strerror}"
        transcript = TranscriptWriter(self.config.logs / f"{task['id']}{SUFFIX}")
        stdout: list[str] = []
        stderr: list[str] = []
        readers = [threading.Thread(target=_collect, daemon=True,
                                    args=(process.stdout, stdout, MAX_OUTPUT, transcript.line, backend.type == "claude")),
                   threading.Thread(target=_collect, args=(process.stderr, stderr, MAX_STDERR, None, True), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            return self._wait(process, task["id"], readers, stdout, stderr)
        finally:
            transcript.close()

    def _wait(self, process: subprocess.Popen[str], ident: str, readers: list[threading.Thread],
              stdout: list[str], stderr: list[str]) -> tuple[str, str, str]:
        backend, started = self.config.backend, time.monotonic()
        deadline, next_check = started + backend.timeout, started + CANCEL_POLL
        while True:
            try:
                process.wait(timeout=0.05)
                for reader in readers:
                    reader.join()
                return backend.outcome(process.returncode, "".join(stdout), "".join(stderr))
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                if self.stopping.is_set() and now >= self.stop_requested + self.config.stop_grace:
                    _kill(process)
                    return HANDBACK, "", f"still running {self.config.stop_grace} s after the stop signal"
                if now >= deadline:
                    _kill(process)
                    return "timeout", "", f"no answer within {backend.timeout} s"
                if now >= next_check:
                    next_check = now + CANCEL_POLL
                    if self.cancelled(ident):
                        _kill(process)
                        return "cancelled", "".join(stdout)[-MAX_STDERR:], \
                            f"cancelled by the dispatcher after {now - started:.0f} s"

    def stop(self, signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        if not self.stopping.is_set():
            self.stop_requested = time.monotonic()
            self.stopping.set()

    def run(self) -> int:
        for directory in (self.config.inbox, self.config.results, self.config.heartbeat.parent):
            if not directory.is_dir():
                emit(self.config.name, "error", reason=f"{directory} is missing; is the tree mounted?")
                return 2
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        watcher = Watcher(self.config.inbox, self.config.poll_only)
        self.sweep()
        self.heartbeat()
        beats = threading.Thread(target=self._beat, daemon=True)
        beats.start()
        emit(self.config.name, "started", wake=watcher.mode, backend=self.config.backend.type)
        while not self.stopping.is_set():
            if self.run_once() == 0:
                watcher.wait(1.0)
        watcher.close()
        self.heartbeat("stopping")
        emit(self.config.name, "stopped", completed=self.completed)
        return 0

    def _beat(self) -> None:
        while not self.stopping.wait(self.config.interval):
            self.heartbeat()


def _collect(stream: Any, into: list[str], limit: int, each_line: Any, keep_end: bool = False) -> None:
    """Read a child's stream to its end, handing every line to each_line as it comes; keep at most
    limit characters of it: its start, or with keep_end its end (stderr says at its end why a
    process failed; claude's stream ends with its result, however long the session was)."""
    kept = 0
    for line in stream:
        if each_line is not None:
            each_line(line)
        if keep_end:
            into.append(line[-limit:])
            kept += len(into[-1])
            while kept > limit and len(into) > 1:
                kept -= len(into.pop(0))
        elif kept < limit:
            into.append(line[:limit - kept])
            kept += len(into[-1])


def _descendants(pid: int) -> list[int]:
    """Every process below pid, read from /proc: a tool the backend started in a session of its own
    is still its child, and must stop with it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _kill(process: subprocess.Popen[str]) -> None:
    below = _descendants(process.pid)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in below:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()
