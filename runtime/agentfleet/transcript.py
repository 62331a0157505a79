"""A task's live transcript: logs/<agent>/<task>.jsonl, written by the agent while the task runs,
rendered for people by agentctl logs.

The writer is the agent itself, so everything in the file is hostile to its readers: the
renderer opens it like any agent file (regular, owned by the agent's uid, no links), reads at
most MAX_BYTES, parses each line with the bounded JSON parser, shows only fields it knows, cut
to MAX_FIELD characters, with every control character escaped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .untrusted import Refused, parse, printable

MAX_BYTES = 8_388_608  # per transcript: the writer stops there, the reader never reads past it
MAX_LINE = 262_144  # a longer line is shown as cut, not parsed
MAX_FIELD = 400  # characters of one shown field (a command, a tool's output, a text)
SUFFIX = ".jsonl"


class TranscriptWriter:
    """Appends the backend's output lines as they come; JSON lines (claude's stream-json events)
    as they are, other lines wrapped as {"type": "output", "text": ...}; stops at MAX_BYTES."""

    def __init__(self, path: Path) -> None:
        self.path, self.written, self.full = path, 0, False
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            # Like results: who else may read is the directory's business (logs/<agent> is 0750, observers').
            self.fd: int | None = os.open(path, flags, 0o644)
        except OSError:
            self.fd = None  # no logs directory (an older tree): the task runs without a transcript

    def line(self, text: str) -> None:
        if self.fd is None or self.full:
            return
        stripped = text.rstrip("\n")
        record = stripped if stripped.startswith("{") else json.dumps({"type": "output", "text": stripped})
        data = (record + "\n").encode("utf-8", "replace")
        if self.written + len(data) > MAX_BYTES:
            self.full = True
            data = (json.dumps({"type": "agentfleet", "event": "truncated", "bytes": self.written}) + "\n").encode()
        try:
            os.write(self.fd, data)
        except OSError:
            self.close()
            return
        self.written += len(data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class TranscriptReader:
    """Complete lines from an open transcript, as far as it has been written, up to MAX_BYTES."""

    def __init__(self, fd: int) -> None:
        self.fd, self.read_bytes, self.pending = fd, 0, b""

    def lines(self) -> Iterator[bytes]:
        while self.read_bytes < MAX_BYTES:
            chunk = os.read(self.fd, min(65_536, MAX_BYTES - self.read_bytes))
            if not chunk:
                break
            self.read_bytes += len(chunk)
            self.pending += chunk
            *complete, self.pending = self.pending.split(b"\n")
            yield from complete
            if len(self.pending) > MAX_LINE:
                yield self.pending[:MAX_LINE]
                self.pending = b""

    @property
    def exhausted(self) -> bool:
        return self.read_bytes >= MAX_BYTES


def cut(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=True, sort_keys=True)
    shown = printable(text[:MAX_FIELD])
    return shown + (f" [{len(text) - MAX_FIELD} more characters]" if len(text) > MAX_FIELD else "")


def _tool_input(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("command", "file_path", "path", "pattern", "url", "prompt"):
            if isinstance(value.get(key), str):
                return cut(value[key])
    return cut(value)


def _content(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(part.get("text", "")) for part in value if isinstance(part, dict))
    return cut(value)


def render(line: bytes) -> list[str]:
    """What a person sees of one transcript line."""
    if len(line) >= MAX_LINE:
        return [f"[a line of {len(line)}+ bytes, not shown]"]
    try:
        event = parse(line, max_items=10_000, max_depth=32)
    except Refused as problem:
        return [f"[not a JSON line: {printable(str(problem))}]"]
    if not isinstance(event, dict):
        return [f"[{cut(event)}]"]
    kind = event.get("type")
    if kind == "output":
        return [cut(event.get("text", ""))]
    if kind == "system":
        model = f" model {cut(event['model'])}" if "model" in event else ""
        return [f"[{cut(event.get('subtype', 'system'))}]{model}"]
    if kind == "result":
        return [f"[finished] {cut(event.get('subtype', '?'))} after {cut(event.get('num_turns', '?'))} turns"
                + (" (error)" if event.get("is_error") else "")]
    if kind == "agentfleet":
        return [f"[transcript {cut(event.get('event', '?'))} at {cut(event.get('bytes', '?'))} bytes]"]
    message = event.get("message")
    parts = message.get("content") if isinstance(message, dict) else None
    if kind not in ("assistant", "user") or not isinstance(parts, list):
        return [f"[{cut(kind)}]"]
    shown = []
    for part in parts[:50]:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text":
            shown.append(f"{kind}: {cut(part.get('text', ''))}")
        elif part.get("type") == "tool_use":
            shown.append(f"tool {cut(part.get('name', '?'))}: {_tool_input(part.get('input'))}")
        elif part.get("type") == "tool_result":
            shown.append(("tool error: " if part.get("is_error") else "tool output: ") + _content(part.get("content")))
    return shown
