#!/usr/bin/env python3
"""Benchmark: what the model gateway adds to a request, with and without its policy.

    bench/gateway.py [requests]      (default 2000; inside the venv; needs scripts/build-test-images)

One container from the tests' Debian 13 base with the gateway's packages (nginx, njs) runs the
test Messages-API endpoint over TLS (molecule/default/files/messages_api.py) and the gateway
with the role's own nginx.conf.j2 and gateway.js, rendered for the default model. A client
bound to marie's address sends Claude-Code-sized requests (about 30 KB: a system prompt, 15
tools, a conversation), answered plain and streamed, to two gateways side by side, one
kept-alive connection each, taken in turn so the machine's noise falls on both alike:
  1. the gateway without the policy (the same nginx.conf with the njs admission and body
     filter taken out: the gateway as it was before the policy),
  2. the gateway with the policy.
Prints p50/p99 of each and the policy's added latency (2 - 1). Target: p99 added < 5 ms.
(The stand-in upstream is Python's http.server: a client kept alive to it directly waits on
delayed ACKs, so "direct to the upstream" would measure that, not the gateway.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import jinja2
import yaml
from table import print_table

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins" / "filter"), str(ROOT / "collections")]
from agent_model import agent_model_stack  # noqa: E402
from agent_stack import agent_stack_gateway_policy, agent_stack_networks  # noqa: E402

BASE = "agentfleet-test/debian:trixie"
IMAGE = "agentfleet-bench/gateway:local"
UPSTREAM = "https://upstream.bench.test:8443"
# Runs inside the container: the timed client. argv: source address, target (host:port or
# tls:host:port), requests, stream (0/1). Prints the latencies in ms as JSON.
CLIENT = r"""
import http.client, json, socket, ssl, sys, time
source, count, stream, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
tools = [{"name": f"Tool{i}", "description": "d" * 400, "input_schema": {"type": "object", "properties": {
    f"p{j}": {"type": "string", "description": "x" * 60} for j in range(8)}}} for i in range(15)]
body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream, "system": "s" * 8000,
                   "tools": tools, "messages": [{"role": "user", "content": "bench " + "w" * 6000}]}).encode()
connections = []
for target in targets:
    if target.startswith("tls:"):
        host, port = target[4:].rsplit(":", 1)
        context = ssl.create_default_context(cafile="/tmp/ca.pem")
        connection = http.client.HTTPSConnection(host, int(port), context=context, source_address=(source, 0))
    else:
        host, port = target.rsplit(":", 1)
        connection = http.client.HTTPConnection(host, int(port), source_address=(source, 0))
    connection.connect()
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connections.append(connection)
times = [[] for _ in targets]
for round_ in range(count + 50):  # round robin, so the machine's noise falls on every target alike
    for index, connection in enumerate(connections):
        started = time.perf_counter()
        connection.request("POST", "/v1/messages", body=body, headers={"Content-Type": "application/json",
                                                                       "x-api-key": "sk-ant-placeholder"})
        response = connection.getresponse()
        data = response.read()
        if round_ >= 50:
            times[index].append((time.perf_counter() - started) * 1000)
        assert response.status == 200, (response.status, data[:200])
print(json.dumps(times))
"""


def sh(*argv: str, check: bool = True) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}...: {done.stderr[-800:]}")
    return done.stdout


def render(work: Path) -> str:
    """The role's nginx.conf for the default model, as the agent_stack role renders it (rate raised)."""
    defaults = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())
    # Every check of the policy runs; only its rate is raised, which this many requests would pass.
    defaults["agent_model_defaults"]["gateway"] = {"rate_per_minute": 60000, "burst": 10000}
    stack = agent_model_stack({name.removeprefix("agent_model_"): value for name, value in defaults.items()})
    networks = agent_stack_networks(stack, "10.213.0.0/16")
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    environment.filters["urlsplit"] = lambda url, part: getattr(urlsplit(url), part)
    template = environment.from_string((ROOT / "roles" / "agent_stack" / "templates" / "nginx.conf.j2").read_text())
    (work / "policy.json").write_text(json.dumps(agent_stack_gateway_policy(stack)))
    shutil.copy(ROOT / "roles" / "agent_stack" / "files" / "gateway.js", work / "gateway.js")
    (work / "key.conf").write_text('proxy_set_header x-api-key "sk-ant-bench";\n')
    with_policy = template.render(ansible_managed="bench", agent_model_stack=stack, __agent_stack_networks=networks,
                                  __agent_stack_gateway_port=8080, agent_stack_gateway_upstream=UPSTREAM,
                                  agent_stack_gateway_ca_bundle="ca.pem")
    (work / "with.conf").write_text(with_policy)
    without = with_policy.replace("js_content gateway.admit;", "error_page 418 = @model; return 418;")
    without = without.replace("listen 8080;", "listen 8081;").replace("/tmp/nginx.pid", "/tmp/nginx-without.pid")
    (work / "without.conf").write_text(without.replace("js_body_filter gateway.count;", ""))
    return str(networks["marie"]["agent"])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 2000
    work = Path(tempfile.mkdtemp(prefix="agentfleet-bench-gateway."))
    marie = render(work)
    shutil.copy(ROOT / "molecule" / "default" / "files" / "messages_api.py", work / "messages_api.py")
    (work / "client.py").write_text(CLIENT)
    (work / "Dockerfile").write_text(
        f"FROM {BASE}\nRUN apt-get update && apt-get install -y --no-install-recommends nginx libnginx-mod-http-js "
        "python3 openssl iproute2 ca-certificates && rm -rf /var/lib/apt/lists/*\n")
    sh("docker", "build", "-q", "-t", IMAGE, str(work))
    sh("docker", "network", "create", "agentfleet-bench", check=False)
    name = "agentfleet-bench-gateway"
    sh("docker", "rm", "-f", name, check=False)
    sh("docker", "run", "-d", "--name", name, "--network", "agentfleet-bench", "--network-alias", "upstream.bench.test",
       "--cap-add", "NET_ADMIN", "-v", f"{work}:/bench:ro", "--entrypoint", "sleep", IMAGE, "infinity")
    try:
        setup = ("cd /tmp && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca "
                 "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null && openssl req -newkey rsa:2048 -nodes -keyout up.key "
                 "-out up.csr -subj /CN=upstream.bench.test 2>/dev/null && openssl x509 -req -in up.csr -CA ca.pem -CAkey ca.key "
                 "-CAcreateserial -out up.pem -days 2 -extfile <(printf 'subjectAltName=DNS:upstream.bench.test') 2>/dev/null "
                 "&& mkdir -p /etc/nginx/agentfleet /run/secrets && cp /bench/gateway.js /bench/policy.json /etc/nginx/agentfleet/ "
                 "&& cp /tmp/ca.pem /etc/nginx/upstream-ca.pem && cp /bench/key.conf /run/secrets/gateway_key "
                 f"&& ip address add {marie}/32 dev lo && touch /tmp/none")
        sh("docker", "exec", name, "bash", "-c", setup)
        sh("docker", "exec", "-d", name, "python3", "/bench/messages_api.py", "8443", "/tmp/up.pem", "/tmp/up.key",
           "/tmp/up.pem", "/tmp/up.key", "/tmp/no-switch")
        sh("docker", "exec", "-d", name, "nginx", "-c", "/bench/with.conf", "-g", "daemon off;")
        sh("docker", "exec", "-d", name, "nginx", "-c", "/bench/without.conf", "-g", "daemon off;")
        sh("docker", "exec", name, "bash", "-c", "sleep 1")
        variants = {"gateway without the policy": f"{marie}:8081", "gateway with the policy": f"{marie}:8080"}
        rows, results = [], {}
        for stream in (False, True):
            measured = json.loads(sh("docker", "exec", name, "python3", "-c", CLIENT, marie, str(count),
                                     "1" if stream else "0", *variants.values()))
            for variant, times in zip(variants, measured):
                results[(variant, stream)] = times
                rows.append([variant, "streamed" if stream else "plain", f"{percentile(times, 0.5):.2f}",
                             f"{percentile(times, 0.99):.2f}"])
        print(f"{count} requests per row, about 30 KB each, one kept-alive connection per path, taken in turn\n")
        print_table(["path", "answer", "p50 ms", "p99 ms"], rows)
        print()
        for stream in (False, True):
            on, off = results[("gateway with the policy", stream)], results[("gateway without the policy", stream)]
            print(f"policy added ({'streamed' if stream else 'plain'}): p50 {percentile(on, 0.5) - percentile(off, 0.5):+.2f} ms, "
                  f"p99 {percentile(on, 0.99) - percentile(off, 0.99):+.2f} ms")
    finally:
        sh("docker", "rm", "-f", name, check=False)
        sh("docker", "network", "rm", "agentfleet-bench", check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
