"""Backends turn a task into an argv run in its own process group, and its output into a result.

Every backend runs as a child process so a timeout or a stop can kill it cleanly.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

from .untrusted import Refused, parse

MAX_OUTPUT = 1_000_000
PLACEHOLDER = re.compile(r"\{(?:prompt|task_id|workspace)\}")


@dataclass
class Backend:
    type: str
    model: str = ""
    max_turns: int = 20
    timeout: int = 900
    argv: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)
    ollama_url: str = "unix:///run/ollama/ollama.sock"

    @classmethod
    def from_json(cls, text: str) -> Backend:
        values: dict[str, Any] = json.loads(text)
        known = {key: values[key] for key in cls.__dataclass_fields__ if key in values}
        backend = cls(**known)
        if backend.type not in ("claude", "ollama", "command"):
            raise ValueError(f"backend.type: {backend.type!r} is not claude, ollama or command")
        if backend.type == "command" and not backend.argv:
            raise ValueError("backend.argv: the command backend needs an argv list")
        return backend

    def command(self, task: dict[str, Any], workspace: str, role_prompt: str = "") -> list[str]:
        if self.type == "command":
            values = {"{prompt}": task["prompt"], "{task_id}": task["id"], "{workspace}": workspace}
            return [_fill(part, values) for part in self.argv]
        if self.type == "claude":
            # stream-json: one event per line as the session goes (the live transcript); the last is the result.
            argv = ["claude", "-p", task["prompt"], "--output-format", "stream-json", "--verbose",
                    "--max-turns", str(self.max_turns)]
            argv += ["--append-system-prompt", role_prompt] if role_prompt else []
            return argv + (["--model", self.model] if self.model else []) + self.extra_args
        return [sys.executable, "-m", "agentfleet.ollama", self.ollama_url, self.model, task["prompt"]]

    def outcome(self, returncode: int, stdout: str, stderr: str) -> tuple[str, str, str]:
        """(status, output, reason) from what the process left."""
        stdout, tail = stdout[:MAX_OUTPUT], stderr[-2000:].strip()
        if self.type == "claude":
            answer = final_result(stdout)
            if answer is None:
                return "failed", stdout, f"claude exited {returncode} without a result event: {tail}"
            failed = returncode != 0 or answer.get("is_error", False)
            text = str(answer.get("result", ""))
            return ("failed", text, f"claude reported {answer.get('subtype', 'an error')}") if failed else ("ok", text, "")
        if returncode != 0:
            return "failed", stdout, f"exit status {returncode}: {tail}"
        return "ok", stdout, ""


def final_result(stdout: str) -> dict[str, Any] | None:
    """The last {"type": "result"} event of claude's stream-json output (a single JSON object, the
    json format's, counts too), parsed with the bounded parser."""
    for line in reversed(stdout.strip().splitlines()[-200:]):
        try:
            event = parse(line.encode(), max_items=100_000, max_depth=64)
        except Refused:
            continue
        if isinstance(event, dict) and event.get("type", "result") == "result":
            return event
    return None


def _fill(part: str, values: dict[str, str]) -> str:
    """One pass, so a prompt that contains {task_id} stays as written."""
    return PLACEHOLDER.sub(lambda match: values[match.group(0)], part)
