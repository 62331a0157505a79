"""The outside world of the isolation tests, served from the test host itself. Test use only.

- HTTP on ADDRESS:8000 and on the fake metadata address 169.254.169.254:80 (prepare adds it to
  the host's loopback interface), answering agentfleet-outside / agentfleet-fake-metadata;
- TCP listeners on PUBLIC:443 and ADDRESS:443 that stand in for an allowlisted registry (a
  tunnel through the egress proxy only needs the connection); PUBLIC is 203.0.113.10
  (TEST-NET-3, documentation only), which prepare puts on the host's loopback interface: an
  address that is not private, so the egress proxy may open it, and no packet leaves the host;
- DNS on ADDRESS:53 (the inner engine's resolver): registry.agentfleet.test resolves to PUBLIC,
  every other name under agentfleet.test to ADDRESS (the host: private), everything else is
  relayed to the host's own resolver, so image builds still work.

Usage: outside.py ADDRESS
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

METADATA = "169.254.169.254"
PUBLIC = "203.0.113.10"


def upstream_resolver() -> str:
    with open("/etc/resolv.conf", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("nameserver"):
                return line.split()[1]
    return "127.0.0.11"


def question_name(packet: bytes) -> str:
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    return ".".join(labels).lower()


def answer(packet: bytes, address: str) -> bytes:
    """A reply with one A record for the packet's single question."""
    end = packet.index(b"\0", 12) + 5  # name, type, class
    header = packet[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00"
    record = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 30, 4) + socket.inet_aton(address)
    return header + packet[12:end] + record


def serve_dns(address: str) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((address, 53))
    resolver = upstream_resolver()
    while True:
        packet, client = server.recvfrom(4096)
        name = question_name(packet)
        if name.endswith("agentfleet.test"):
            server.sendto(answer(packet, PUBLIC if name == "registry.agentfleet.test" else address), client)
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as relay:
            relay.settimeout(5)
            try:
                relay.sendto(packet, (resolver, 53))
                server.sendto(relay.recvfrom(4096)[0], client)
            except OSError:
                continue


def serve_tcp(address: str, port: int) -> None:
    listener = socket.create_server((address, port), reuse_port=False)
    while True:
        connection, _ = listener.accept()
        connection.close()


def http_server(address: str, port: int, text: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = f"{text}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    return ThreadingHTTPServer((address, port), Handler)


def main(address: str) -> None:
    threads = [threading.Thread(target=serve_dns, args=(address,), daemon=True),
               threading.Thread(target=serve_tcp, args=(address, 443), daemon=True),
               threading.Thread(target=serve_tcp, args=(PUBLIC, 443), daemon=True),
               threading.Thread(target=http_server(METADATA, 80, "agentfleet-fake-metadata").serve_forever, daemon=True)]
    for thread in threads:
        thread.start()
    http_server(address, 8000, "agentfleet-outside").serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
