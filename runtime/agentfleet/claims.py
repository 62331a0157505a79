"""Claims live in the worker's own results directory, never in the inbox it can only read.

A claim is <id>.claim held with flock: a live worker holds the lock; a killed one loses it with
its process, so the task is taken again on restart. The result is linked into place without
replace, so a task completes at most once; a claim is dropped only after its result exists.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path


class Claim:
    def __init__(self, fd: int, path: Path, attempt: int) -> None:
        self.fd, self.path, self.attempt = fd, path, attempt

    @classmethod
    def take(cls, results: Path, task_id: str) -> Claim | None:
        """The claim on task_id, or None when it is done or another process holds it."""
        path = results / f"{task_id}.claim"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if (results / f"{task_id}.json").exists():
            cls(fd, path, 0).finish()
            return None
        previous = os.pread(fd, 4096, 0)
        try:
            attempt = int(json.loads(previous).get("attempt", 0)) + 1 if previous else 1
        except (ValueError, AttributeError):
            attempt = 1
        record = json.dumps({"pid": os.getpid(), "attempt": attempt, "claimed": time.time()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        os.fsync(fd)
        return cls(fd, path, attempt)

    def finish(self) -> None:
        """The result exists: drop the claim."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)

    def hand_back(self) -> None:
        """Stop without a result: the claim stays, unlocked, and the next start takes it again."""
        os.close(self.fd)
