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

from . import fleet, schema
from .gateway_usage import GatewayUsage
from .config import Config
from .events import emit


class Monitor:
    def __init__(self, config: Config, retention: float) -> None:
        self.config, self.retention = config, retention
        self.stopping = threading.Event()
        self.stale: list[str] = []
        self.archived = 0
        self.usage = GatewayUsage(config.root / "logs" / config.name / "gateway-usage.json")
        self.usage_error = ""

    def archive(self, now: float) -> int:
        count = 0
        for result in fleet.results(self.config.root):
            if now - float(result.get("finished", now)) < self.retention:
                continue
            target = self.config.root / "archive" / str(result["worker"]) / f"{result['id']}.json"
            if target.exists():
                continue
            target.parent.mkdir(exist_ok=True)
            schema.write_atomic(target, result)
            count += 1
        return count

    def check(self, now: float) -> None:
        beats = fleet.heartbeats(self.config.root)
        stale = sorted(name for name, beat in beats.items() if name != self.config.name and fleet.is_stale(beat, now))
        if stale != self.stale:
            emit(self.config.name, "stale-agents", agents=stale)
        self.stale = stale
        archived = self.archive(now)
        if archived:
            self.archived += archived
            emit(self.config.name, "archived", count=archived)
        self.count_gateway_requests()
        schema.write_atomic(self.config.heartbeat, {
            "agent": self.config.name, "kind": self.config.kind, "status": "idle", "task": None, "updated": now,
            "interval": self.config.interval, "completed": self.archived, "pid": os.getpid(),
            "stale": stale})

    def count_gateway_requests(self) -> None:
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
        if counted or not self.usage.report.exists():
            schema.write_atomic(self.usage.report, self.usage.document())

    def stop(self, _signum: int = 0, _frame: FrameType | None = None) -> None:
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        emit(self.config.name, "started", retention=self.retention)
        while True:
            self.check(time.time())
            if self.stopping.wait(self.config.interval):
                break
        emit(self.config.name, "stopped")
        return 0

