"""python3 -m agentfleet worker|monitor|idle|health|ctl|disk|secret ..."""

from __future__ import annotations

import os
import signal
import sys
import time

from . import agentctl, disk, model_key
from .fleet import Fleet
from .untrusted import printable
from .config import Config
from .monitor import Monitor
from .worker import Worker


def health(config: Config) -> int:
    """Exit 1 when this agent's heartbeat is missing, invalid or older than 3 intervals (the healthcheck)."""
    fleet = Fleet(config.root, {config.name: os.getuid()}, interval=config.interval)
    beat = fleet.heartbeats().get(config.name)
    if beat is None:
        reason = printable("; ".join(fleet.problems)) or "missing"
        print(f"no valid heartbeat for {config.name}: {reason}", file=sys.stderr)
        return 1
    if fleet.is_stale(beat, time.time()):
        print(f"heartbeat of {config.name} is stale ({time.time() - float(beat['updated']):.0f} s old)", file=sys.stderr)
        return 1
    return 0


def idle(config: Config) -> int:
    """An agent with no inbox (the orchestrator): only its heartbeat, until SIGTERM."""
    worker = Worker(config)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    while True:
        worker.heartbeat()
        if worker.stopping.wait(config.interval):
            break
    worker.heartbeat("stopping")
    return 0


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "ctl":
        return agentctl.main(argv[1:])
    if command == "disk":  # the host's watcher, as root (agentfleet-disk.service)
        return disk.main(argv[1:])
    if command == "secret":  # agentctl secret, as root on the host
        return model_key.main(argv[1:])
    if command not in ("worker", "monitor", "idle", "health"):
        print("usage: python3 -m agentfleet worker|monitor|idle|health|ctl ...", file=sys.stderr)
        return 2
    config = Config.from_env()
    if command == "health":
        return health(config)
    if command == "idle":
        return idle(config)
    if command == "monitor":
        return Monitor(config, float(os.environ.get("AGENTFLEET_RETENTION", "3600"))).run()
    return Worker(config).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
