"""Reading what an agent wrote: every file in the tree is hostile input to whoever reads it.

A file is believed only as far as where it lives and who owns it: lstat first, regular files
only, owned by the uid the model gives its directory's agent, opened without following links
and without blocking, read up to a size cap, JSON parsed with a depth cap and checked against
its schema with real types. Anything else raises Refused with the reason; nothing else escapes.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from itertools import accumulate
from pathlib import Path
from typing import Any

from . import schema

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}\Z")
MAX_DEPTH = 16
MAX_ENTRIES = 100_000  # per directory listing: more is reported, not read
# Values (items of arrays and objects) per document: ours hold a few dozen (the usage report a
# dozen per agent); the cap bounds what a parse allocates to a few times the file, whatever it holds.
MAX_ITEMS = {"heartbeat": 4_096, "result": 1_024, "task": 256, "fleet-task": 260, "fleet-result": 1_032, "fleet-workers": 130_000,
             "gateway-usage": 100_000, "proposal": 300_000, "disk-usage": 100_000, "egress-usage": 100_000}
# Each sets a bound, not a quota: a writer over it is refused, readers stay small.
MAX_BYTES = {"heartbeat": 65_536, "result": 8_388_608, "task": 262_144, "fleet-task": 263_168, "fleet-result": 8_389_632, "fleet-workers": 8_388_608,
             "gateway-usage": 4_194_304,
             "proposal": 16_777_216, "disk-usage": 4_194_304,
             "egress-usage": 4_194_304}
MAX_DIGITS = 20  # an integer longer than any uid, count or time of ours
MAX_FLOAT = 1e15  # times in seconds and byte counts stay far below; 1e308 and the like are refused
_DEPTH = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKET = bytes(c for c in range(256) if c not in _DEPTH)
_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


class Refused(Exception):
    """A file that is not what it must be; str() is the reason, fit to show."""


def _kind(mode: int) -> str:
    return next((label for test, label in _KINDS if test(mode)), "not a regular file")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_FLOAT:
        raise ValueError(f"{text[:20]} is a number out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is a number out of range")
    return int(text)


def outside_strings(data: bytes, max_items: int) -> bytes:
    """data without its JSON strings. UTF-8 keeps quote and backslash single bytes, and an escape is
    a backslash and the byte after it, so dropping escaped backslashes, then escaped quotes, leaves
    only the quotes that open and close strings. C loops only: linear time, no backtracking."""
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    if unescaped.count(b'"') > 2 * max_items:
        raise Refused(f"more than {max_items} strings")
    return b"".join(unescaped.split(b'"')[0::2])


def depth(brackets: bytes) -> int:
    """Deepest nesting of arrays and objects, from the brackets outside strings."""
    return max(accumulate(map(_DEPTH.__getitem__, brackets)), default=0)


def _check_shape(data: bytes, max_depth: int, max_items: int) -> None:
    """Refuse what would cost more to parse than a document of ours ever needs: milliseconds and
    a few copies of the file for any input."""
    outside = outside_strings(data, max_items)
    brackets = outside.translate(None, _NOT_BRACKET)
    items = outside.count(b",") + outside.count(b":") + len(brackets) // 2
    if items > max_items or len(brackets) > 2 * max_items:
        raise Refused(f"{items} items, over the limit of {max_items}")
    if depth(brackets) > max_depth:
        raise Refused(f"nested deeper than {max_depth} levels")


def open_checked(path: Path, owner: int | None, max_bytes: int | None = None) -> int:
    """A descriptor of a regular file owned by owner (any owner when None), never through a link.

    The file is judged by lstat before it is opened and the opened inode must be the one judged,
    so a name swapped for a link or a device between the two is refused, not followed.
    """
    try:
        info = os.lstat(path)
    except OSError as error:
        raise Refused(f"cannot stat: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"{_kind(info.st_mode)}, not a regular file")
    if owner is not None and info.st_uid != owner:
        raise Refused(f"owned by uid {info.st_uid}, not {owner}")
    if max_bytes is not None and info.st_size > max_bytes:
        raise Refused(f"{info.st_size} bytes, over the limit of {max_bytes}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise Refused(f"cannot open: {error.strerror}") from None
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(opened.st_mode):
        os.close(fd)
        raise Refused("replaced while being opened")
    return fd


def read_bytes(path: Path, owner: int | None, max_bytes: int) -> bytes:
    """The bytes of a regular file owned by owner (any owner when None), at most max_bytes."""
    fd = open_checked(path, owner, max_bytes)
    try:
        data = os.read(fd, max_bytes + 1)
    except OSError as error:
        raise Refused(f"cannot read: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise Refused(f"grew over the limit of {max_bytes} bytes while being read")
    return data


def parse(data: bytes, max_items: int, max_depth: int = MAX_DEPTH) -> Any:
    """JSON with finite numbers only, at most max_items values and max_depth levels of nesting."""
    _check_shape(data, max_depth, max_items)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(f"not UTF-8: {error.reason} at byte {error.start}") from None
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite, parse_int=_bounded_int)
    except (ValueError, RecursionError) as error:
        raise Refused(f"malformed JSON: {str(error)[:120]}") from None


def read_document(path: Path, kind: str, owner: int | None) -> dict[str, Any]:
    """A JSON object of kind (its schema in ../schemas), from a file owner owns."""
    document = parse(read_bytes(path, owner, MAX_BYTES[kind]), MAX_ITEMS[kind])
    problems = schema.errors(document, schema.load(kind))
    if problems:
        raise Refused("; ".join(problems[:3]))
    if not isinstance(document, dict):
        raise Refused("not a JSON object")
    return document


def names(directory: Path, problems: list[str]) -> list[str]:
    """The sorted names in directory, at most MAX_ENTRIES; what could not be listed goes to problems."""
    found: list[str] = []
    try:
        with os.scandir(directory) as listing:
            for entry in listing:
                if len(found) >= MAX_ENTRIES:
                    problems.append(f"{directory}: more than {MAX_ENTRIES} entries; the rest not read")
                    break
                found.append(entry.name)
    except OSError as error:
        problems.append(f"{directory}: cannot list: {error.strerror}")
    return sorted(found)


def printable(text: str) -> str:
    """text with every control, format or separator character escaped, fit for a terminal."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)
