"""A local nats-server (Debian's) for the tests, on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(arguments: list[str], port: int, log: Path | None = None) -> subprocess.Popen[bytes]:
    """nats-server with arguments, once it accepts connections on port (within 10 s)."""
    server = subprocess.Popen(["nats-server", *arguments], stdout=subprocess.DEVNULL,
                              stderr=log.open("w") if log else subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"nats-server did not listen on {port} within 10 s")
