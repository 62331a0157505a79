"""Make the fleet's streams, consumers and worker bucket as the plan says (the nats role runs this
once per fleet, with one host's admin certificate): what is missing is made, what differs is
updated, nothing is deleted. Prints {"changed": [...], "stale": [...]} as JSON.

    python3 -I agentfleet_streams.py PLAN.json
PLAN: {"url", "ca", "cert", "key", "inbox", "replicas", "lease", "duplicate_window", "max_bytes",
       "workers": [names], "roles": [names], "nodes": [names]}
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from typing import Any

import nats
from nats.js.api import ConsumerConfig, KeyValueConfig, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

TASKS, RESULTS, WORKERS, FILES = "AGENTFLEET_TASKS", "AGENTFLEET_RESULTS", "agentfleet_workers", "AGENTFLEET_FILES"


def wanted_consumers(plan: dict[str, Any]) -> dict[str, str]:
    """Durable name -> the subject it takes: one per worker, one per role."""
    return {f"worker-{name}": f"fleet.task.worker.{name}" for name in plan["workers"]} | {
        f"role-{name}": f"fleet.task.role.{name}" for name in plan["roles"]}


async def apply(plan: dict[str, Any]) -> dict[str, list[str]]:
    context = ssl.create_default_context(cafile=plan["ca"])
    context.load_cert_chain(plan["cert"], plan["key"])
    client = await nats.connect(plan["url"], tls=context, inbox_prefix=plan["inbox"], allow_reconnect=False,
                                connect_timeout=10)
    js, changed = client.jetstream(timeout=10), []
    try:
        streams = {TASKS: StreamConfig(name=TASKS, subjects=["fleet.task.>"], retention=RetentionPolicy.WORK_QUEUE,
                                       num_replicas=plan["replicas"], duplicate_window=plan["duplicate_window"],
                                       max_bytes=plan["max_bytes"], storage=StorageType.FILE),
                   RESULTS: StreamConfig(name=RESULTS, subjects=["fleet.result.>"], num_replicas=plan["replicas"],
                                         duplicate_window=plan["duplicate_window"], max_bytes=plan["max_bytes"],
                                         storage=StorageType.FILE),
                   # A task's base and a result's proposal, read by direct get; kept as long as a
                   # task's id is remembered (its duplicate window), the oldest going first when full.
                   FILES: StreamConfig(name=FILES, subjects=["fleet.file.>"], num_replicas=plan["replicas"],
                                       duplicate_window=plan["duplicate_window"], max_bytes=plan["max_bytes"],
                                       max_age=plan["duplicate_window"], allow_direct=True, storage=StorageType.FILE)}
        for name, config in streams.items():
            try:
                current = (await js.stream_info(name)).config
            except NotFoundError:
                await js.add_stream(config)
                changed.append(f"stream {name}")
                continue
            if (current.subjects, current.num_replicas, current.duplicate_window, current.max_bytes) != (
                    config.subjects, config.num_replicas, config.duplicate_window, config.max_bytes):
                await js.update_stream(config)
                changed.append(f"stream {name} updated")
        consumers = wanted_consumers(plan)
        for durable, subject in sorted(consumers.items()):
            try:
                await js.consumer_info(TASKS, durable)
            except NotFoundError:
                await js.add_consumer(TASKS, ConsumerConfig(durable_name=durable, filter_subject=subject,
                                                            ack_wait=plan["lease"], max_ack_pending=64))
                changed.append(f"consumer {durable}")
        try:
            await js.key_value(WORKERS)
        except Exception:  # noqa: BLE001 - nats-py raises its own BucketNotFoundError or NotFoundError by version
            # Bounded: every relay reads all of it every beat (a few thousand workers fit).
            await js.create_key_value(KeyValueConfig(bucket=WORKERS, history=1, replicas=plan["replicas"], ttl=600,
                                                     max_value_size=4096, max_bytes=1_048_576))
            changed.append(f"bucket {WORKERS}")
        # Each host's results: those of the tasks it sent (fleet.result.<runner>.<node>.<id>).
        for node in sorted(plan["nodes"]):
            try:
                await js.consumer_info(RESULTS, f"results-{node}")
            except NotFoundError:
                await js.add_consumer(RESULTS, ConsumerConfig(durable_name=f"results-{node}", ack_wait=30.0,
                                                              filter_subject=f"fleet.result.*.{node}.>"))
                changed.append(f"consumer results-{node}")
        present = [info.name for info in await js.consumers_info(TASKS)]
        stale = sorted(name for name in present if name not in consumers)
    finally:
        await client.close()
    return {"changed": changed, "stale": stale}


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        plan = json.load(handle)
    print(json.dumps(asyncio.run(apply(plan))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
