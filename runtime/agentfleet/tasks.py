"""Reading a task file safely: every problem becomes a reason to reject it, never an exception."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from . import schema
from .untrusted import ID, MAX_ITEMS, Refused, parse, read_bytes

TASK_SCHEMA = schema.load("task")


def task_id(path: Path) -> str:
    """The id a file stands for; names that are not <id>.json get a stable stand-in id."""
    stem = path.name[:-5] if path.name.endswith(".json") else ""
    if ID.match(stem):
        return stem
    return "rejected-" + hashlib.sha256(path.name.encode()).hexdigest()[:16]


def read_task(path: Path, max_bytes: int, backend: str) -> tuple[dict[str, Any] | None, str]:
    """(task, "") when the file is a valid task for this worker, else (None, reason)."""
    stem = path.name[:-5] if path.name.endswith(".json") else ""
    if not ID.match(stem):
        return None, f"file name {path.name[:100]!r} is not <id>.json with id {ID.pattern}"
    try:
        # Only the dispatcher can write an inbox (file modes): the owner is not checked here.
        document = parse(read_bytes(path, None, max_bytes), MAX_ITEMS["task"])
    except Refused as problem:
        return None, f"the task file: {problem}"
    problems = schema.errors(document, TASK_SCHEMA)
    if problems:
        return None, "; ".join(problems)
    if document["id"] != stem:
        return None, f"id {document['id']!r} does not match the file name {path.name!r}"
    if stem.endswith(".proposal"):
        return None, "an id ending in .proposal is kept for proposal manifests (<id>.proposal.json)"
    if ("project" in document) != ("base" in document):
        return None, "project and base go together: a project task names the commit it starts from"
    if document.get("backend", backend) != backend:
        return None, f"backend {document['backend']!r} is not this worker's backend {backend!r}"
    return document, ""
