"""The JSON schemas in ../schemas are the documentation and the validator's input: one source.

Implements the subset of JSON Schema (Draft 2020-12) those files use: the KEYWORDS below. Verdicts
match the jsonschema library's (tests/test_runtime_schema_crosscheck.py) except one: a pattern's $
is ECMA 262's, the end of the string, where jsonschema's Python re also matches before a final newline.
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

SCHEMAS = Path(os.environ.get("AGENTFLEET_SCHEMAS", Path(__file__).resolve().parent.parent / "schemas"))
KEYWORDS = frozenset({"type", "enum", "required", "properties", "additionalProperties", "pattern", "minLength",
                      "maxLength", "minimum", "exclusiveMinimum", "items", "minItems", "maxItems"})
TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "string": (str,), "number": (int, float), "integer": (int,),
                                      "array": (list,), "null": (type(None),), "boolean": (bool,)}
# An escape or a character class is copied as it is; only a bare $ is an anchor.
_DOLLAR = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]|\$", re.DOTALL)


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return schema


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(_DOLLAR.sub(lambda match: r"\Z" if match.group() == "$" else match.group(), pattern))


def _type_ok(value: Any, kinds: str | list[str]) -> bool:
    wanted = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(value, bool):  # an int to Python, never a number to JSON
        return "boolean" in wanted
    if isinstance(value, float) and value.is_integer() and "integer" in wanted:  # 1.0 is an integer to JSON Schema
        return True
    return any(isinstance(value, TYPES[kind]) for kind in wanted)


def _equal(one: Any, two: Any) -> bool:
    """JSON equality, which unlike Python's == keeps true apart from 1 (and, like jsonschema, 1.0 equal to 1)."""
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(map(_equal, one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[key], two[key]) for key in one)
    return isinstance(one, bool) == isinstance(two, bool) and one == two


def errors(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Every way value breaks schema, each naming its field; [] when valid."""
    label = where or "document"
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{label}: expected {schema['type']}, got {type(value).__name__}"]
    found = []
    if "enum" in schema and not any(_equal(value, option) for option in schema["enum"]):
        found.append(f"{label}: {_short(value)} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{label}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{label}: longer than {schema['maxLength']}")
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            found.append(f"{label}: {_short(value)} does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{label}: below {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            found.append(f"{label}: not above {schema['exclusiveMinimum']}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            found.append(f"{label}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{label}: more than {schema['maxItems']} items")
        for index, item in enumerate(value if "items" in schema else []):
            found += errors(item, schema["items"], f"{label}[{index}]")
    if isinstance(value, dict):
        found += [f"{where + '.' if where else ''}{key}: required" for key in schema.get("required", [])
                  if key not in value]
        properties, others = schema.get("properties", {}), schema.get("additionalProperties", True)
        for key, item in value.items():
            field = f"{where}.{key[:80]}" if where else key[:80]
            if key in properties:
                found += errors(item, properties[key], field)
            elif others is False:
                found.append(f"{field}: not allowed")
            elif isinstance(others, dict):
                found += errors(item, others, field)
    return found


def _short(value: Any) -> str:
    """A value for a message: what an agent wrote may be megabytes."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def write_atomic(path: Path, document: dict[str, Any], replace: bool = True) -> bool:
    """Write JSON so readers see the old file or the whole new one; False when replace=False and it exists."""
    return write_bytes_atomic(path, json.dumps(document, sort_keys=True).encode(), replace)


def write_bytes_atomic(path: Path, data: bytes, replace: bool = True) -> bool:
    """Write data so readers see the old file or the whole new one; False when replace=False and it exists."""
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes 0600; who else may read is the directory's business (the access matrix).
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(scratch, path)
            return True
        try:
            os.link(scratch, path)  # fails when it exists: a result is written at most once
        except FileExistsError:
            return False
        return True
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
