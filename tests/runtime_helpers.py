"""A scratch agent tree and a worker process for the runtime tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"


def make_tree(root: Path, workers: list[str], extra_agents: tuple[str, ...] = ("monitor",)) -> Path:
    for name in workers:
        for category in ("inbox", "results", "heartbeats", "workspaces"):
            (root / category / name).mkdir(parents=True, exist_ok=True)
    for name in extra_agents:
        (root / "heartbeats" / name).mkdir(parents=True, exist_ok=True)
    (root / "archive").mkdir(exist_ok=True)
    return root


def put_task(root: Path, worker: str, ident: str, prompt: str = "hello", **extra: Any) -> Path:
    path = root / "inbox" / worker / f"{ident}.json"
    path.write_text(json.dumps({"id": ident, "prompt": prompt, **extra}))
    return path


def environment(root: Path, name: str, argv: list[str], **settings: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(RUNTIME), "AGENTFLEET_ROOT": str(root), "AGENTFLEET_NAME": name,
            "AGENTFLEET_BACKEND": json.dumps({"type": "command", "argv": argv, "timeout": 30}),
            "AGENTFLEET_HEARTBEAT_INTERVAL": "0.5", **settings}


def start_worker(root: Path, name: str, argv: list[str], log: Path | None = None,
                 **settings: str) -> subprocess.Popen[str]:
    """A worker process; its events go to log (appended) or to a pipe."""
    output = log.open("a") if log else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-m", "agentfleet", "worker"], env=environment(root, name, argv, **settings),
                            stdout=output, stderr=subprocess.STDOUT, text=True)


def result(root: Path, worker: str, ident: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((root / "results" / worker / f"{ident}.json").read_text())
    return document
