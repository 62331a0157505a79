"""The fleet's NATS configuration on a real nats-server (Debian's package): TLS is required, each
host's relay does what the protocol needs and cannot touch another host's subjects or the streams."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js.api import ConsumerConfig, RetentionPolicy, StreamConfig
from nats_helpers import free_port, start_server
from nats_fleet import TASKS, nats_input_errors, nats_server_config

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None and not Path("/usr/sbin/nats-server").exists(),
                                reason="Debian's nats-server is not installed (scripts/test installs it)")
FLEET = {"alpha": {"address": "127.0.0.1", "workers": ["marie"], "roles": ["frontend"], "projects": ["shop"]},
         "beta": {"address": "127.0.0.2", "workers": ["anga"], "roles": ["backend"], "projects": ["crm"]}}
SETTINGS = {"client_port": 0, "cluster_port": 6222, "max_payload": 1048576, "max_connections": 64,
            "store_max": "64M", "memory_max": "16M", "cluster_name": "agentfleet", "store_dir": "", "tls_dir": "/tls"}


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def certificate(tls: Path, name: str, subject: str, extension: str) -> None:
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tls / f"{name}.key"),
            "-subj", subject, "-out", str(tls / f"{name}.csr"))
    (tls / f"{name}.ext").write_text(extension)
    openssl("x509", "-req", "-in", str(tls / f"{name}.csr"), "-CA", str(tls / "ca.pem"), "-CAkey", str(tls / "ca.key"),
            "-CAcreateserial", "-days", "2", "-extfile", str(tls / f"{name}.ext"), "-out", str(tls / f"{name}.pem"))


@pytest.fixture(name="server", scope="module")
def fixture_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    root = tmp_path_factory.mktemp("nats")
    tls = root / "tls"
    tls.mkdir()
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(tls / "ca.key"),
            "-subj", "/CN=agentfleet test CA", "-days", "2", "-out", str(tls / "ca.pem"))
    certificate(tls, "server", "/CN=alpha", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for user in ("relay-alpha", "relay-beta", "admin-alpha"):
        certificate(tls, user, f"/CN=agentfleet-{user}", "extendedKeyUsage=clientAuth\n")
    certificate(tls, "stranger", "/CN=someone-else", "extendedKeyUsage=clientAuth\n")
    port = free_port()
    config = json.loads(nats_server_config({"alpha": FLEET["alpha"]} | {"beta": FLEET["beta"]}, "alpha",
                                           {**SETTINGS, "client_port": port, "store_dir": str(root / "js")}))
    del config["cluster"]  # one server: the routes are checked in test_the_cluster_routes_every_other_node
    assert config["tls"]["cert_file"] == "/tls/server.pem"
    config["tls"].update(cert_file=str(tls / "server.pem"), key_file=str(tls / "server.key"), ca_file=str(tls / "ca.pem"))
    (root / "nats.conf").write_text(json.dumps(config))
    server = start_server(["-c", str(root / "nats.conf")], port, root / "server.log")
    try:
        asyncio.run(setup_streams(port, tls))
        yield port, tls
    finally:
        server.terminate()
        server.wait(timeout=10)


def context(tls: Path, user: str) -> ssl.SSLContext:
    made = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    made.load_cert_chain(str(tls / f"{user}.pem"), str(tls / f"{user}.key"))
    return made


async def connect(port: int, tls: Path, user: str, node: str) -> Any:
    prefix = f"_INBOX_{node}_admin" if user.startswith("admin") else f"_INBOX_{node}"
    return await nats.connect(f"tls://127.0.0.1:{port}", tls=context(tls, user), inbox_prefix=prefix,
                              allow_reconnect=False, connect_timeout=3)


async def setup_streams(port: int, tls: Path) -> None:
    admin = await connect(port, tls, "admin-alpha", "alpha")
    js = admin.jetstream()
    await js.add_stream(StreamConfig(name=TASKS, subjects=["fleet.task.>"], retention=RetentionPolicy.WORK_QUEUE,
                                     duplicate_window=600.0))
    await js.add_stream(StreamConfig(name="AGENTFLEET_RESULTS", subjects=["fleet.result.>"], duplicate_window=600.0))
    await js.add_stream(StreamConfig(name="AGENTFLEET_FILES", subjects=["fleet.file.>"], allow_direct=True))
    for name, subject in (("worker-marie", "fleet.task.worker.marie"), ("worker-anga", "fleet.task.worker.anga")):
        await js.add_consumer(TASKS, ConsumerConfig(durable_name=name, filter_subject=subject, ack_wait=30.0))
    for node in ("alpha", "beta"):
        await js.add_consumer("AGENTFLEET_RESULTS", ConsumerConfig(durable_name=f"results-{node}", ack_wait=30.0,
                                                                   filter_subject=f"fleet.result.*.{node}.>"))
    await admin.close()
    beta = await connect(port, tls, "relay-beta", "beta")
    for scope in ("base.shop", "base.crm", "manifest.alpha", "manifest.beta", "bundle.alpha"):
        await beta.jetstream().publish(f"fleet.file.beta.{scope}.t1.index", b"{}")  # beta's files: bases, proposals
    await beta.close()


def attempt(port: int, tls: Path, user: str, node: str, action: str) -> str:
    """'ok' or the error the server gave, for one action of one user."""
    async def run() -> str:
        client = await connect(port, tls, user, node)
        js = client.jetstream(timeout=2)
        try:
            if action == "submit":
                await js.publish("fleet.task.worker.anga", b"{}", headers={"Nats-Msg-Id": f"t-{time.time_ns()}"})
            elif action == "own result":
                await js.publish(f"fleet.result.{node}.beta.t1", b"{}")
            elif action == "other's result":
                await js.publish(f"fleet.result.beta.{node}.t1", b"{}")
            elif action == "own file":
                await js.publish(f"fleet.file.{node}.bundle.beta.t1.0", b"x")
            elif action == "other's file":
                await js.publish("fleet.file.beta.bundle.beta.t1.0", b"x")
            elif action.startswith("read ") and action != "read other's replies":
                scope = {"read a base of its project": "base.shop", "read its proposal": "manifest.alpha",
                         "read its proposal's bundle": "bundle.alpha", "read a base of another project": "base.crm",
                         "read another host's proposal": "manifest.beta"}[action]
                await js.get_msg("AGENTFLEET_FILES", subject=f"fleet.file.beta.{scope}.t1.index", direct=True)
            elif action in ("results of own tasks", "results of other's tasks"):
                results = "results-alpha" if action == "results of own tasks" else "results-beta"
                await client.request(f"$JS.API.CONSUMER.MSG.NEXT.AGENTFLEET_RESULTS.{results}", b'{"batch":1,"no_wait":true}',
                                     timeout=2)
            elif action == "own worker's tasks":
                await js.pull_subscribe_bind("worker-marie", stream=TASKS)
                await client.request(f"$JS.API.CONSUMER.MSG.NEXT.{TASKS}.worker-marie", b'{"batch":1,"no_wait":true}', timeout=2)
            elif action in ("purge", "delete", "new consumer", "other's tasks"):
                subject = {"purge": f"$JS.API.STREAM.PURGE.{TASKS}", "delete": f"$JS.API.STREAM.DELETE.{TASKS}",
                           "new consumer": f"$JS.API.CONSUMER.DURABLE.CREATE.{TASKS}.mine",
                           "other's tasks": f"$JS.API.CONSUMER.MSG.NEXT.{TASKS}.worker-anga"}[action]
                await client.request(subject, b"{}", timeout=2)
            elif action == "read other's replies":
                await client.subscribe("_INBOX_beta.>")
                await client.flush(timeout=2)
            await client.flush(timeout=2)
            await asyncio.sleep(0.2)
            return str(client.last_error) if client.last_error else "ok"
        except Exception as error:  # noqa: BLE001 - the server's refusal, whatever its form, is the answer
            return f"{type(error).__name__}: {error} {client.last_error or ''}"
        finally:
            await client.close()
    return asyncio.run(run())


@pytest.mark.parametrize("action", ["submit", "own result", "own worker's tasks", "results of own tasks", "own file",
                                    "read a base of its project", "read its proposal", "read its proposal's bundle"])
def test_a_relay_does_what_the_protocol_needs(server: tuple[int, Path], action: str) -> None:
    assert attempt(*server, "relay-alpha", "alpha", action) == "ok"


@pytest.mark.parametrize("action", ["other's result", "other's file", "read a base of another project",
                                    "read another host's proposal", "other's tasks", "purge", "delete", "new consumer",
                                    "read other's replies", "results of other's tasks"])
def test_a_relay_cannot_touch_another_hosts_subjects_or_the_streams(server: tuple[int, Path], action: str) -> None:
    answer = attempt(*server, "relay-alpha", "alpha", action)
    assert "permissions violation" in answer.lower(), answer


def test_control_the_admin_may_make_a_consumer(server: tuple[int, Path]) -> None:
    async def run(port: int, tls: Path) -> None:
        admin = await connect(port, tls, "admin-alpha", "alpha")
        await admin.jetstream().add_consumer(TASKS, ConsumerConfig(durable_name="control", filter_subject="fleet.task.role.x"))
        await admin.jetstream().delete_consumer(TASKS, "control")
        await admin.close()
    asyncio.run(run(*server))


def test_a_plaintext_client_is_refused(server: tuple[int, Path]) -> None:
    with pytest.raises(Exception):
        asyncio.run(nats.connect(f"nats://127.0.0.1:{server[0]}", allow_reconnect=False, connect_timeout=3))


def test_a_certificate_of_no_fleet_user_is_refused(server: tuple[int, Path]) -> None:
    with pytest.raises(Exception):
        asyncio.run(connect(*server, "stranger", "alpha"))


def test_the_cluster_routes_every_other_node_over_tls() -> None:
    config = json.loads(nats_server_config(FLEET, "alpha", {**SETTINGS, "store_dir": "/var/lib/agentfleet/nats"}))
    assert config["cluster"]["routes"] == ["nats-route://127.0.0.2:6222"] and config["cluster"]["tls"]["verify"]
    assert "cluster" not in json.loads(nats_server_config({"alpha": FLEET["alpha"]}, "alpha", SETTINGS))


@pytest.mark.parametrize(("change", "named"), [
    ({"fleet": {"a.b": {"address": "10.0.0.1"}}}, "nats_node_name"),
    ({"fleet": {"a": {"address": "127.0.0.1"}}}, "nats_address: 127.0.0.1"),
    ({"fleet": {"a": {"address": "example"}}}, "nats_address: 'example'"),
    ({"fleet": {"a": {"address": "10.0.0.1"}, "b": {"address": "10.0.0.1"}}}, "same address"),
    ({"client_port": 80}, "nats_client_port"), ({"cluster_port": 4222, "client_port": 4222}, "must differ"),
    ({"store_max": "lots"}, "nats_store_max"), ({"store_dir": "relative"}, "nats_store_dir"),
    ({"fleet": {"a": {"address": "10.0.0.1", "workers": ["marie"]}, "b": {"address": "10.0.0.2", "workers": ["marie"]}}},
     "worker marie runs on a and b"),
    ({"cluster_name": "a b"}, "nats_cluster_name"), ({"lease": 2}, "nats_lease"),
    ({"py_sha256": "abc"}, "nats_py_sha256"), ({"store_max": "256M", "stream_max_bytes": 536870912}, "do not fit"), ({"stream_max_bytes": "1G"}, "nats_stream_max_bytes"), ({"max_payload": "big"}, "nats_max_payload"), ({"max_payload": 4096}, "nats_max_payload"),
    ({"fleet": {"a": {"address": "10.0.0.1"}, "b": {"address": "10.0.0.2", "missing": True}}}, "nats_fleet_group: b not in"),
    ({"fleet": {"a": {"address": "10.0.0.1", "workers": ["marie"], "dispatches": False}}}, "a runs workers but no agent that dispatches"),
])
def test_bad_input_is_named(change: dict[str, Any], named: str) -> None:
    fleet = change.pop("fleet", {"a": {"address": "10.0.0.1"}})
    settings = {**SETTINGS, "client_port": 4222, "store_dir": "/var/lib/agentfleet/nats", **change}
    errors = nats_input_errors(fleet, settings)
    assert any(named in error for error in errors), errors
    assert not nats_input_errors({"a": {"address": "10.0.0.1"}}, {**SETTINGS, "client_port": 4222, "store_dir": "/x"})

