"""python3 -m agentfleet.ollama URL MODEL PROMPT: one non-streaming generate call, answer on stdout.

URL is http://host:port, or unix:///path/to/socket: the route agentfleet gives opted-in agents
(a socket mounted into their container, so no network path to the host exists).
"""

from __future__ import annotations

import http.client
import json
import socket
import sys
import urllib.parse


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def connection(url: str, timeout: float = 600) -> tuple[http.client.HTTPConnection, str]:
    """A connection for url and the path prefix to put before API paths."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "unix":
        return UnixConnection(parts.path, timeout), ""
    if parts.scheme != "http":
        raise ValueError(f"ollama_url: {url!r} is neither http:// nor unix://")
    return http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout), parts.path.rstrip("/")


def generate(url: str, model: str, prompt: str) -> str:
    client, prefix = connection(url)
    body = json.dumps({"model": model, "prompt": prompt, "stream": False})
    try:
        client.request("POST", f"{prefix}/api/generate", body=body, headers={"Content-Type": "application/json"})
        response = client.getresponse()
        payload = response.read()
    finally:
        client.close()
    if response.status != 200:
        raise OSError(f"ollama: HTTP {response.status} {payload[:200]!r}")
    return str(json.loads(payload).get("response", ""))


def main() -> int:
    url, model, prompt = sys.argv[1:4]
    sys.stdout.write(generate(url, model, prompt))
    return 0


if __name__ == "__main__":
    sys.exit(main())
