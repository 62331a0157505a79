"""Reading a task file safely: every problem becomes a reason to reject it, never an exception."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from . import schema

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
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
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, "the task file is a symlink; refused"
        return None, f"cannot open the task file: {error.strerror}"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, "the task is not a regular file"
        if info.st_size > max_bytes:
            return None, f"the task file is {info.st_size} bytes, over the limit of {max_bytes}"
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        return None, f"the task file is over the limit of {max_bytes} bytes"
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"malformed JSON: {error}"
    problems = schema.errors(document, TASK_SCHEMA)
    if problems:
        return None, "; ".join(problems)
    if document["id"] != stem:
        return None, f"id {document['id']!r} does not match the file name {path.name!r}"
    if document.get("backend", backend) != backend:
        return None, f"backend {document['backend']!r} is not this worker's backend {backend!r}"
    return document, ""
