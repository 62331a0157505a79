"""Runtime settings from the environment the compose project sets for each agent."""

from __future__ import annotations

import os
import json
from dataclasses import dataclass, field
from pathlib import Path

from .backends import Backend


@dataclass(frozen=True)
class Config:
    name: str
    kind: str
    root: Path
    backend: Backend
    interval: float = 5.0
    stop_grace: float = 25.0
    max_task_bytes: int = 262_144
    max_attempts: int = 3
    poll_only: bool = False
    docker_api: str = ""
    project: str = "agentfleet"
    # The projects this worker may check out: name -> its read-only mirror (inside the container).
    projects: dict[str, Path] = field(default_factory=dict)
    # The dispatcher's team (name, role, description, projects per worker), from the model; a
    # dispatcher runs each task as a goal with the role prompt made from it.
    team: list[dict[str, object]] = field(default_factory=list)
    dispatches: bool = False

    @property
    def inbox(self) -> Path:
        return self.root / "inbox" / self.name

    @property
    def results(self) -> Path:
        return self.root / "results" / self.name

    def integration(self, project: str) -> Path:
        """The dispatcher's integration repository of a project (read-only for its workers)."""
        return self.root / "integration" / project

    @property
    def logs(self) -> Path:
        return self.root / "logs" / self.name

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeats" / self.name / "heartbeat.json"

    @property
    def workspace(self) -> Path:
        return self.root / "workspaces" / self.name

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        backend = env.get("AGENTFLEET_BACKEND", '{"type": "command", "argv": ["true"]}')
        return cls(
            name=env["AGENTFLEET_NAME"], kind=env.get("AGENTFLEET_KIND", "worker"),
            root=Path(env.get("AGENTFLEET_ROOT", "/agentfleet")), backend=Backend.from_json(backend),
            interval=float(env.get("AGENTFLEET_HEARTBEAT_INTERVAL", "5")),
            stop_grace=float(env.get("AGENTFLEET_STOP_GRACE", "25")),
            max_task_bytes=int(env.get("AGENTFLEET_MAX_TASK_BYTES", "262144")),
            max_attempts=int(env.get("AGENTFLEET_MAX_ATTEMPTS", "3")),
            poll_only=env.get("AGENTFLEET_POLL_ONLY", "") == "1",
            docker_api=env.get("AGENTFLEET_DOCKER_API", ""), project=env.get("AGENTFLEET_PROJECT", "agentfleet"),
            projects={name: Path(path) for name, path in json.loads(env.get("AGENTFLEET_PROJECTS", "{}")).items()},
            team=json.loads(env.get("AGENTFLEET_TEAM", "[]")), dispatches=env.get("AGENTFLEET_DISPATCHES", "") == "1",
        )
