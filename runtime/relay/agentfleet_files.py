"""Files that travel with the fleet's tasks and results: a task's base (a git bundle of commits the
other hosts' mirrors lack) and a result's proposal (its manifest and bundle).

A file is sent in chunks under fleet.file.<node>.<kind>.<scope>.<id>.<n>, then an index under
fleet.file.<node>.<kind>.<scope>.<id>.index ({"bytes", "chunks", "sha256"}), into the stream
AGENTFLEET_FILES (de-duplicated, kept for the duplicate window). The scope says who may read it: a
base's is its project (the hosts whose workers take it), a proposal's the task's origin. Each host
publishes only under its own node, so where a file comes from is its subject's node; a reader takes
the newest index and its chunks by direct get and checks size, count and digest before anything is
written. Everything read here is another host's bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

FILES = "AGENTFLEET_FILES"
KINDS = ("base", "manifest", "bundle")
CHUNK = 256 * 1024  # at most: a relay sends chunks of half its max_payload when that is smaller
DIGEST = re.compile(r"^[0-9a-f]{64}$")


class FileRefused(Exception):
    """A file another host sent that cannot be used: missing chunks, over its cap, a wrong digest."""


def subject(node: str, kind: str, ident: str, part: str) -> str:
    """ident: <scope>.<task id>."""
    if kind not in KINDS:
        raise ValueError(f"not a kind of file: {kind}")
    return f"fleet.file.{node}.{kind}.{ident}.{part}"


async def put_file(js: Any, node: str, kind: str, ident: str, data: bytes, chunk: int = CHUNK) -> None:
    """data under node's subjects, the index last: a reader that finds the index finds every chunk.
    ident: <scope>.<task id> (scope: the project of a base, the origin of a proposal)."""
    digest = hashlib.sha256(data).hexdigest()
    parts = [data[start:start + chunk] for start in range(0, len(data), chunk)] or [b""]
    for number, part in enumerate(parts):
        # The digest in the id: a file sent again with other bytes is new, the same bytes are not.
        await js.publish(subject(node, kind, ident, str(number)), part,
                         headers={"Nats-Msg-Id": f"{node}.{kind}.{ident}.{digest[:16]}.{number}"})
    index = {"bytes": len(data), "chunks": len(parts), "sha256": digest}
    await js.publish(subject(node, kind, ident, "index"), json.dumps(index).encode(),
                     headers={"Nats-Msg-Id": f"{node}.{kind}.{ident}.{digest[:16]}.index"})


async def get_file(js: Any, node: str, kind: str, ident: str, max_bytes: int) -> bytes | None:
    """The file node sent for ident, None when it sent none; FileRefused when what is there is not it."""
    from nats.js.errors import NotFoundError  # pylint: disable=import-outside-toplevel

    try:
        message = await js.get_msg(FILES, subject=subject(node, kind, ident, "index"), direct=True)
    except NotFoundError:
        return None
    index = _index(message.data, max_bytes)
    parts, size, digest = [], 0, hashlib.sha256()
    for number in range(index["chunks"]):
        try:
            part = (await js.get_msg(FILES, subject=subject(node, kind, ident, str(number)), direct=True)).data or b""
        except NotFoundError:
            raise FileRefused(f"{kind} of {ident} from {node}: chunk {number} of {index['chunks']} is gone") from None
        size += len(part)
        if size > index["bytes"]:
            raise FileRefused(f"{kind} of {ident} from {node}: more bytes than its index says")
        parts.append(part)
        digest.update(part)
    if size != index["bytes"] or digest.hexdigest() != index["sha256"]:
        raise FileRefused(f"{kind} of {ident} from {node}: its bytes do not match its index")
    return b"".join(parts)


def _index(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    try:
        index = json.loads(raw or b"")
    except ValueError:
        raise FileRefused("an index that is not JSON") from None
    if not isinstance(index, dict) or set(index) != {"bytes", "chunks", "sha256"}:
        raise FileRefused("an index without exactly bytes, chunks and sha256")
    size, chunks = index["bytes"], index["chunks"]
    if not all(isinstance(value, int) and not isinstance(value, bool) for value in (size, chunks)):
        raise FileRefused("an index whose bytes or chunks is not a whole number")
    if not isinstance(index["sha256"], str) or not DIGEST.match(index["sha256"]):
        raise FileRefused("an index whose sha256 is not 64 hex digits")
    if not 0 <= size <= max_bytes:
        raise FileRefused(f"a file of {size} bytes, over the limit of {max_bytes}")
    if not 1 <= chunks <= size // 1024 + 1:  # no chunk is under 1 KiB but the last: bounds the requests
        raise FileRefused(f"{chunks} chunks for {size} bytes")
    return index
