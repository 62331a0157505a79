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
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any

from . import schema

ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}\Z")
MAX_DEPTH = 16
MAX_ENTRIES = 100_000  # per directory listing: more is reported, not read
# Per document: ours hold a few dozen; these bound what a parse may allocate, whatever the size.
MAX_ITEMS, MAX_CONTAINERS = 100_000, 10_000
# Each sets a bound, not a quota: a writer over it is refused, readers stay small.
MAX_BYTES = {"heartbeat": 65_536, "result": 8_388_608, "task": 262_144, "gateway-usage": 4_194_304}
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_DEPTH = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKET = str.maketrans("", "", "".join(chr(c) for c in range(128) if chr(c) not in "[]{}"))
_KINDS = ((stat.S_ISLNK, "a symlink"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"))


class Refused(Exception):
    """A file that is not what it must be; str() is the reason, fit to show."""


def _kind(mode: int) -> str:
    return next((label for test, label in _KINDS if test(mode)), "not a regular file")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


def depth(text: str) -> int:
    """Deepest nesting of arrays and objects, strings skipped (an unclosed string counts as brackets)."""
    brackets = _STRING.sub("", text).translate(_NOT_BRACKET)
    return max(accumulate(_DEPTH.get(char, 0) for char in brackets), default=0)


def _shape_problem(text: str, max_depth: int) -> str:
    """Why text would cost more to parse than a document of ours ever needs, or "".
    Counting is done by C loops: a hostile file costs milliseconds, not seconds."""
    outside = _STRING.sub('""', text)
    items = outside.count(",") + outside.count(":")
    if items > MAX_ITEMS:
        return f"{items} items, over the limit of {MAX_ITEMS}"
    containers = outside.count("[") + outside.count("{")
    if containers > MAX_CONTAINERS:
        return f"{containers} arrays and objects, over the limit of {MAX_CONTAINERS}"
    if depth(outside) > max_depth:
        return f"nested deeper than {max_depth} levels"
    return ""


def read_bytes(path: Path, owner: int | None, max_bytes: int) -> bytes:
    """The bytes of a regular file owned by owner (any owner when None), at most max_bytes."""
    try:
        info = os.lstat(path)
    except OSError as error:
        raise Refused(f"cannot stat: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise Refused(f"{_kind(info.st_mode)}, not a regular file")
    if owner is not None and info.st_uid != owner:
        raise Refused(f"owned by uid {info.st_uid}, not {owner}")
    if info.st_size > max_bytes:
        raise Refused(f"{info.st_size} bytes, over the limit of {max_bytes}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as error:
        raise Refused(f"cannot open: {error.strerror}") from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino) or not stat.S_ISREG(opened.st_mode):
            raise Refused("replaced while being opened")
        data = os.read(fd, max_bytes + 1)
    except OSError as error:
        raise Refused(f"cannot read: {error.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise Refused(f"grew over the limit of {max_bytes} bytes while being read")
    return data


def parse(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """JSON with finite numbers only and at most max_depth levels of nesting."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Refused(f"not UTF-8: {error.reason} at byte {error.start}") from None
    problem = _shape_problem(text, max_depth)
    if problem:
        raise Refused(problem)
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as error:
        raise Refused(f"malformed JSON: {str(error)[:120]}") from None
    if any(isinstance(number, float) and not math.isfinite(number) for number in _numbers(document)):
        raise Refused("a number out of range")
    return document


def _numbers(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            yield item


def read_document(path: Path, kind: str, owner: int | None) -> dict[str, Any]:
    """A JSON object of kind (its schema in ../schemas), from a file owner owns."""
    document = parse(read_bytes(path, owner, MAX_BYTES[kind]))
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
    return "".join(char if char.isprintable() or char == " " else char.encode("unicode_escape").decode("ascii")
                   for char in text)
