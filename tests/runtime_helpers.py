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


def git_run(repo: Path, *args: str) -> str:
    """git as a person runs it in a test (an author of its own), its output."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t.invalid"}
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=env).stdout


def source_repository(path: Path, name: str, content: str) -> str:
    """A repository at path with one commit on main (the file name with content); its commit."""
    path.mkdir()
    git_run(path, "init", "--quiet", "--initial-branch", "main")
    (path / name).write_text(content)
    git_run(path, "add", name)
    git_run(path, "commit", "--quiet", "-m", "base")
    return git_run(path, "rev-parse", "HEAD").strip()
