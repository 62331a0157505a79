"""A test endpoint that speaks enough of the Anthropic Messages API for the real Claude Code CLI.

It answers every POST /v1/messages with one text block (streamed when asked) and records each
request's credentials and prompt; GET /_seen returns the record. A prompt 'ATTACK [steps]' or
'SCRIPT [steps]' scripts the model instead: Claude Code runs each step, one per turn: a string
with its Bash tool, {"tool": NAME, "input": {...}} with that tool, where "{cwd}" stands for the
first line the first step printed (make it `pwd`: file tools want absolute paths; a Bash step is
sent as written, so a script nested in it keeps its own "{cwd}"). Test use only.

Usage: messages_api.py PORT [CERT KEY IMPOSTER_CERT IMPOSTER_KEY SWITCH]: with certificates it
speaks TLS, and while the file SWITCH exists it presents the imposter certificate instead (one
no CA the gateway trusts has signed), so a test can check the gateway refuses it.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SEEN: list[dict[str, Any]] = []


def last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages", [])):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        texts = [part.get("text", "") for part in content or [] if part.get("type") == "text"]
        if texts:
            return str(texts[-1])
    return ""


def texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return [str(part.get("text", "")) for part in content or [] if isinstance(part, dict) and part.get("type") == "text"]


def scripted_turn(request: dict[str, Any]) -> dict[str, Any] | None:
    """The next step of a task prompt 'ATTACK [steps]' or 'SCRIPT [steps]' as a tool_use, then
    'RESULTS [outputs]' once every step ran; None for every other request."""
    messages = request.get("messages", [])
    script = next((text for message in messages if message.get("role") == "user"
                   for text in texts(message.get("content")) if text.startswith(("ATTACK [", "SCRIPT ["))), None)
    if script is None:
        return None
    steps = json.loads(script[len("ATTACK "):])
    outputs = [" ".join(texts(part.get("content"))) if not isinstance(part.get("content"), str) else part["content"]
               for message in messages if isinstance(message.get("content"), list)
               for part in message["content"] if isinstance(part, dict) and part.get("type") == "tool_result"]
    if len(outputs) >= len(steps):
        return {"type": "text", "text": "RESULTS " + json.dumps(outputs)}
    step = steps[len(outputs)]
    if isinstance(step, str):
        step = {"tool": "Bash", "input": {"command": step, "description": "agentfleet step", "timeout": 600000}}
        tool_input = step["input"]
    else:
        cwd = (outputs[0].strip().splitlines() or ["{cwd}"])[0] if outputs else "{cwd}"
        tool_input = json.loads(json.dumps(step["input"]).replace("{cwd}", cwd))
    if step["tool"] not in [tool.get("name") for tool in request.get("tools", [])]:
        return None
    return {"type": "tool_use", "id": f"toolu_agentfleet_{len(outputs)}", "name": step["tool"], "input": tool_input}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if self.path == "/_seen":
            self.reply(200, "application/json", json.dumps(SEEN).encode())
            return
        SEEN.append({"path": self.path, "x-api-key": self.headers.get("x-api-key"), "prompt": ""})
        self.reply(200 if self.path.split("?")[0] == "/v1/models" else 404, "application/json", b'{"data": []}')

    def do_POST(self) -> None:  # noqa: N802
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        prompt = last_user_text(request)
        SEEN.append({"path": self.path, "x-api-key": self.headers.get("x-api-key"),
                     "authorization": self.headers.get("authorization"), "prompt": prompt[:200]})
        if not self.path.startswith("/v1/messages"):
            self.reply(404, "application/json", b'{"type":"error"}')
            return
        if "agentfleet-slow-reply" in prompt:  # holds the connection open for the gateway's connection limit
            time.sleep(4)
        block = scripted_turn(request) or {"type": "text", "text": f"mock answer: {prompt[:60]}"}
        stop = "tool_use" if block["type"] == "tool_use" else "end_turn"
        model = request.get("model", "mock")
        if request.get("stream"):
            start = {**block, "input": {}} if block["type"] == "tool_use" else {"type": "text", "text": ""}
            delta = ({"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                     if block["type"] == "tool_use" else {"type": "text_delta", "text": block["text"]})
            events: list[tuple[str, dict[str, Any]]] = [
                ("message_start", {"type": "message_start", "message": {
                    "id": "msg_mock", "type": "message", "role": "assistant", "model": model, "content": [],
                    "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
                ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": 0}),
                ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                   "usage": {"output_tokens": 8}}),
                ("message_stop", {"type": "message_stop"}),
            ]
            self.reply(200, "text/event-stream", b"".join(self.event(name, data) for name, data in events))
            return
        message = {"id": "msg_mock", "type": "message", "role": "assistant", "model": model,
                   "content": [block], "stop_reason": stop, "stop_sequence": None,
                   "usage": {"input_tokens": 5, "output_tokens": 8}}
        self.reply(200, "application/json", json.dumps(message).encode())

    @staticmethod
    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    def reply(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: Any) -> None:
        sys.stderr.write(fmt % args + "\n")


def tls_context(cert: str, key: str, imposter_cert: str, imposter_key: str, switch: str) -> ssl.SSLContext:
    real, imposter = (ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER) for _ in range(2))
    real.load_cert_chain(cert, key)
    imposter.load_cert_chain(imposter_cert, imposter_key)

    def choose(connection: ssl.SSLObject, _name: str | None, _context: ssl.SSLContext) -> None:
        if os.path.exists(switch):
            connection.context = imposter

    real.sni_callback = choose
    return real


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), Handler)
    if len(sys.argv) > 2:
        server.socket = tls_context(*sys.argv[2:7]).wrap_socket(server.socket, server_side=True)
    server.serve_forever()
