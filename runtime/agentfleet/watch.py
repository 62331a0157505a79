"""Wake up when a task arrives: inotify on the inbox, or polling where inotify is unavailable."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import time
from pathlib import Path

IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE = 0x08, 0x80, 0x100
IN_NONBLOCK = 0o4000


class Watcher:
    """wait(timeout) returns early when something lands in the directory."""

    def __init__(self, directory: Path, poll_only: bool = False) -> None:
        self.fd = -1
        if poll_only:
            return
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK)
        if fd < 0:
            return
        if libc.inotify_add_watch(fd, str(directory).encode(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0:
            os.close(fd)
            return
        self.fd = fd

    @property
    def mode(self) -> str:
        return "inotify" if self.fd >= 0 else "polling"

    def wait(self, timeout: float) -> None:
        if self.fd < 0:
            time.sleep(timeout)
            return
        ready, _writable, _failed = select.select([self.fd], [], [], timeout)
        if ready:
            try:
                while os.read(self.fd, 65536):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
