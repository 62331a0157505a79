"""The fleet's NATS cluster on three hosts: one node each, clustered over TLS with a JetStream
quorum; clients only with a certificate of the fleet's CA, each host's relay held to its own
subjects; nothing listens on loopback or every address; the package's open server is off."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import nats
import pytest
import testinfra.host
from nats.js.api import StreamConfig

testinfra_hosts = ["ansible://agentfleet_hosts"]
HOSTS = ["agentfleet-fleet-alpha", "agentfleet-fleet-beta", "agentfleet-fleet-gamma"]
TLS = "/etc/agentfleet/nats/tls"


def address(name: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name],
                          capture_output=True, text=True, check=True).stdout.strip()


def credentials(name: str, user: str, into: Path) -> ssl.SSLContext:
    """A client's TLS context with the certificate and key root on that host holds."""
    for part in ("ca.pem", f"{user}.pem", f"{user}.key"):
        into.joinpath(f"{name}-{part}").write_bytes(
            subprocess.run(["docker", "exec", name, "cat", f"{TLS}/{part}"], capture_output=True, check=True).stdout)
    made = ssl.create_default_context(cafile=str(into / f"{name}-ca.pem"))
    made.load_cert_chain(str(into / f"{name}-{user}.pem"), str(into / f"{name}-{user}.key"))
    return made


async def client(name: str, context: ssl.SSLContext, prefix: str) -> Any:
    return await nats.connect(f"tls://{address(name)}:4222", tls=context, inbox_prefix=prefix, allow_reconnect=False,
                              connect_timeout=5)


def first_line(name: str, port: int) -> dict[str, Any]:
    with socket.create_connection((address(name), port), timeout=5) as connection:
        line = connection.makefile("rb").readline().decode()
    assert line.startswith("INFO "), line
    info: dict[str, Any] = json.loads(line[5:])
    return info


def test_the_node_runs_hardened_and_the_packages_open_server_is_off(host: testinfra.host.Host) -> None:
    assert host.service("agentfleet-nats").is_running and host.service("agentfleet-nats").is_enabled
    assert not host.service("nats-server").is_running and not host.service("nats-server").is_enabled
    unit = host.run("systemctl show agentfleet-nats -p User -p NoNewPrivileges -p ProtectSystem -p CapabilityBoundingSet").stdout
    assert "User=nats" in unit and "NoNewPrivileges=yes" in unit and "ProtectSystem=strict" in unit
    assert host.file(f"{TLS}/admin.key").mode == 0o600 and host.file(f"{TLS}/admin.key").user == "root"


def test_nothing_listens_on_loopback_or_every_address(host: testinfra.host.Host) -> None:
    listening = host.run("ss -Hltn").stdout.split("\n")
    mine = [line.split()[3] for line in listening if line.strip() and line.split()[3].rsplit(":", 1)[1] in ("4222", "6222")]
    own = host.ansible.get_variables()["inventory_hostname"]
    assert sorted(mine) == sorted([f"{address(own)}:4222", f"{address(own)}:6222"]), listening


def test_the_client_port_requires_tls() -> None:
    for name in HOSTS:
        assert first_line(name, 4222).get("tls_required") is True, name


def route_handshake(name: str, context: ssl.SSLContext | None) -> bytes:
    """What the route port answers: TLS from the first byte, so a plaintext peer gets nothing."""
    with socket.create_connection((address(name), 6222), timeout=8) as raw:
        if context is None:
            raw.sendall(b"CONNECT {}\r\n")
            return raw.recv(200)
        with context.wrap_socket(raw, server_hostname=address(name)) as wrapped:
            wrapped.sendall(b"PING\r\n")
            return wrapped.recv(200)


def test_the_route_port_takes_only_tls_with_a_certificate_of_the_fleet(tmp_path: Path) -> None:
    assert route_handshake(HOSTS[0], None) == b""
    context = credentials(HOSTS[1], "server", tmp_path)  # beta's route certificate: the control
    assert route_handshake(HOSTS[0], context).startswith(b"INFO ")
    anonymous = ssl.create_default_context(cafile=str(tmp_path / f"{HOSTS[1]}-ca.pem"))
    try:
        answer = route_handshake(HOSTS[0], anonymous)
    except OSError:  # ssl.SSLError is one: the server's alert for a peer without a certificate
        answer = b""
    assert not answer.startswith(b"INFO ")


def test_a_plaintext_client_and_a_foreign_certificate_are_refused(tmp_path: Path) -> None:
    with pytest.raises(Exception):
        asyncio.run(nats.connect(f"nats://{address(HOSTS[0])}:4222", allow_reconnect=False, connect_timeout=5))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "own.key"), "-subj", "/CN=agentfleet-relay-agentfleet-fleet-alpha",
                    "-days", "1", "-out", str(tmp_path / "own.pem")], check=True, capture_output=True)
    foreign = credentials(HOSTS[0], "relay", tmp_path)
    foreign.load_cert_chain(str(tmp_path / "own.pem"), str(tmp_path / "own.key"))
    with pytest.raises(Exception):
        asyncio.run(client(HOSTS[0], foreign, "_INBOX_agentfleet-fleet-alpha"))


def test_the_three_nodes_hold_a_replicated_stream_and_a_relay_cannot_delete_it(tmp_path: Path) -> None:
    async def run() -> tuple[int, str]:
        admin = await client(HOSTS[0], credentials(HOSTS[0], "admin", tmp_path), "_INBOX_agentfleet-fleet-alpha_admin")
        relay = await client(HOSTS[1], credentials(HOSTS[1], "relay", tmp_path), "_INBOX_agentfleet-fleet-beta")
        try:
            info = await admin.jetstream(timeout=10).add_stream(StreamConfig(name="QUORUM_TEST", subjects=["quorum.test"],
                                                                             num_replicas=3))
            replicas = len(info.cluster.replicas or []) + 1 if info.cluster else 0
            try:
                await relay.request("$JS.API.STREAM.DELETE.QUORUM_TEST", b"", timeout=3)
            except Exception:  # noqa: BLE001 - the refusal arrives as the connection's error
                pass
            await asyncio.sleep(0.3)
            refusal = str(relay.last_error)
            await admin.jetstream(timeout=10).stream_info("QUORUM_TEST")  # still there
            await admin.jetstream(timeout=10).delete_stream("QUORUM_TEST")
            return replicas, refusal
        finally:
            await admin.close()
            await relay.close()
    replicas, refusal = asyncio.run(run())
    assert replicas == 3
    assert "permissions violation" in refusal.lower(), refusal


def test_a_relay_publishes_its_own_results_only(tmp_path: Path) -> None:
    async def run(subject: str) -> str:
        relay = await client(HOSTS[1], credentials(HOSTS[1], "relay", tmp_path), "_INBOX_agentfleet-fleet-beta")
        try:
            await relay.publish(subject, b"{}")
            await relay.flush(timeout=5)
            await asyncio.sleep(0.3)
            return str(relay.last_error or "ok")
        finally:
            await relay.close()
    assert asyncio.run(run("fleet.result.agentfleet-fleet-beta.t1")) == "ok"
    assert "permissions violation" in asyncio.run(run("fleet.result.agentfleet-fleet-alpha.t1")).lower()


def test_the_fleets_streams_and_a_consumer_per_worker_and_role_are_made_from_the_models(tmp_path: Path) -> None:
    async def run() -> tuple[dict[str, int], set[str], float, set[str]]:
        admin = await client(HOSTS[2], credentials(HOSTS[2], "admin", tmp_path), "_INBOX_agentfleet-fleet-gamma_admin")
        try:
            js = admin.jetstream(timeout=10)
            replicas = {name: (await js.stream_info(name)).config.num_replicas or 0
                        for name in ("AGENTFLEET_TASKS", "AGENTFLEET_RESULTS")}
            bucket = (await js.stream_info("KV_agentfleet_workers")).config
            replicas["bucket bytes"], replicas["bucket value"] = bucket.max_bytes or 0, bucket.max_msg_size or 0
            consumers = {info.name: info for info in await js.consumers_info("AGENTFLEET_TASKS")}
            results = {info.name for info in await js.consumers_info("AGENTFLEET_RESULTS")}
            return replicas, set(consumers), consumers["role-frontend"].config.ack_wait or 0.0, results
        finally:
            await admin.close()
    replicas, consumers, lease, results = asyncio.run(run())
    assert replicas == {"AGENTFLEET_TASKS": 3, "AGENTFLEET_RESULTS": 3, "bucket bytes": 1_048_576, "bucket value": 4096}
    # By hand, from the scenario's three models.
    assert consumers == {"worker-marie", "worker-anga", "worker-lea", "worker-bob", "worker-fabien", "worker-zoe",
                         "role-frontend", "role-backend", "role-devops"}
    assert lease == 10  # nats_lease in molecule.yml
    # One results consumer per host (tests may add ephemeral ones: only the durable ones are checked).
    assert {name for name in results if name.startswith("results-")} == {f"results-{name}" for name in HOSTS}
