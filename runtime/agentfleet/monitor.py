"""The monitor: copies finished task/result pairs into the archive after a retention time,
reports agents whose heartbeat is stale and totals the gateway's requests per agent. It reads
results and writes only the archive and its own log directory."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

from . import schema
from .fleet import Fleet
from .disk import read_report
from .egress_usage import EgressUsage
from .gateway_usage import GatewayUsage
from .config import Config
from .events import emit
from .untrusted import Refused

REPORTED = 10_000


class Monitor:
    def __init__(self, config: Config, retention: float, fleet: Fleet | None = None) -> None:
        self.config, self.retention = config, retention
        self.fleet = fleet or Fleet.from_env(config.root)
        self.fleet.interval = config.interval
        self.stopping = threading.Event()
        self.stale: list[str] = []
        self.archived = 0
        self.reported: set[str] = set()
        self.waiting: dict[Path, tuple[tuple[int, int, int], float | None]] = {}
        self.usage = GatewayUsage(config.root / "logs" / config.name / "gateway-usage.json")
        self.egress = EgressUsage(config.root / "logs" / config.name / "egress-usage.json")
        self.usage_error = ""
        self.egress_error = ""
        self.disk_over: set[str] = set()
        self.disk_error = ""

    def archive(self, now: float) -> int:
        """Copy each finished result to archive/<its directory's agent>/<its file name>: never a
        path from what the result says."""
        count, archive = 0, self.config.root / "archive"
        for worker in sorted(self.fleet.agents):
            if not (self.config.root / "results" / worker).is_dir():
                continue
            for name in self.fleet.result_names(worker):
                target = archive / worker / name
                finished = None if os.path.lexists(target) else self.finished(worker, name)
                if finished is None or now - finished < self.retention:
                    continue
                result = self.fleet.result(worker, name)
                if result is None:
                    continue
                target.parent.mkdir(mode=0o750, exist_ok=True)
                schema.write_atomic(target, result, replace=False)
                count += 1
        return count

    def finished(self, worker: str, name: str) -> float | None:
        """When a result finished, None when it is invalid; read again only when the file changed,
        so a result waiting out its retention, or refused, costs one lstat per check."""
        path = self.config.root / "results" / worker / name
        try:
            info = os.lstat(path)
        except OSError:
            return None
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self.waiting.get(path)
        if cached and cached[0] == key:
            return cached[1]
        result = self.fleet.result(worker, name)
        finished = None if result is None else float(result["finished"])
        if len(self.waiting) > 100_000:
            self.waiting.clear()
        self.waiting[path] = (key, finished)
        return finished

    def report_problems(self) -> None:
        """Each refused file once in the log; past REPORTED distinct ones, a count per check instead
        (a flood of bad files must not push everything else out of the rotated log)."""
        unlisted = 0
        for problem in self.fleet.problems:
            if problem in self.reported:
                continue
            if len(self.reported) < REPORTED:
                self.reported.add(problem)
                emit(self.config.name, "invalid-file", problem=problem)
            else:
                unlisted += 1
        if unlisted:
            emit(self.config.name, "invalid-files-not-listed", count=unlisted)
        self.fleet.problems.clear()

    def check(self, now: float) -> None:
        beats = self.fleet.heartbeats()
        stale = sorted(name for name, beat in beats.items() if name != self.config.name and self.fleet.is_stale(beat, now))
        if stale != self.stale:
            emit(self.config.name, "stale-agents", agents=stale)
        self.stale = stale
        archived = self.archive(now)
        if archived:
            self.archived += archived
            emit(self.config.name, "archived", count=archived)
        self.report_problems()
        self.count_service_use()
        self.report_disk()
        schema.write_atomic(self.config.heartbeat, {
            "agent": self.config.name, "kind": self.config.kind, "status": "idle", "task": None, "updated": now,
            "interval": self.config.interval, "completed": self.archived, "pid": os.getpid(),
            "stale": stale})

    def report_disk(self) -> None:
        """Announce each agent the host's disk watcher finds over its bound, once, and when it is back under."""
        path = self.config.root / "disk" / "usage.json"
        if not os.path.lexists(path):
            return
        try:
            agents = read_report(path)["agents"]
        except Refused as problem:
            if str(problem) != self.disk_error:
                emit(self.config.name, "disk-report-refused", reason=str(problem))
                self.disk_error = str(problem)
            return
        self.disk_error = ""
        over = {name for name, state in agents.items() if state["over"]}
        for name in sorted(over - self.disk_over):
            state = agents[name]
            emit(self.config.name, "disk-over-bound", of=name, bytes=state["bytes"], bound_bytes=state["bound_bytes"],
                 files=state["files"], bound_files=state["bound_files"], stopped=state["stopped"])
        for name in sorted(self.disk_over - over):
            emit(self.config.name, "disk-back-under", of=name)
        self.disk_over = over

    def count_service_use(self) -> None:
        """The gateway's requests and the egress proxy's tunnels and refusals, per agent, from their logs."""
        if not self.config.docker_api:
            return
        try:
            counted = self.usage.poll(self.config.docker_api, self.config.project)
            error = ""
        except (OSError, ValueError) as problem:
            counted, error = 0, str(problem)
        if error != self.usage_error:
            emit(self.config.name, "gateway-usage-error" if error else "gateway-usage-ok", error=error)
            self.usage_error = error
        for agent, rule, day in self.usage.spent:
            emit(self.config.name, "gateway-budget-spent", of=agent, rule=rule, day=day)
        self.usage.spent.clear()
        if counted or not self.usage.report.exists():
            schema.write_atomic(self.usage.report, self.usage.document())
        if error:
            return  # the same proxy serves both logs: one error line is enough
        try:
            tunnels, egress_error = self.egress.poll(self.config.docker_api, self.config.project), ""
        except (OSError, ValueError) as problem:
            tunnels, egress_error = 0, str(problem)
        if egress_error != self.egress_error:
            emit(self.config.name, "egress-usage-error" if egress_error else "egress-usage-ok", error=egress_error)
            self.egress_error = egress_error
        if tunnels or not self.egress.report.exists():
            schema.write_atomic(self.egress.report, self.egress.document())

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        emit(self.config.name, "started", retention=self.retention)
        if self.usage.lost:
            emit(self.config.name, "gateway-usage-reset", reason=self.usage.lost)
        if self.egress.lost:
            emit(self.config.name, "egress-usage-reset", reason=self.egress.lost)
        while True:
            self.check(time.time())
            if self.stopping.wait(self.config.interval):
                break
        emit(self.config.name, "stopped")
        return 0
