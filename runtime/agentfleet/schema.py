"""The JSON schemas in ../schemas are the documentation and the validator's input: one source.

Implements the subset of JSON Schema those files use (type, required, properties,
additionalProperties, pattern, enum, minLength, maxLength, minimum, exclusiveMinimum, items).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

SCHEMAS = Path(os.environ.get("AGENTFLEET_SCHEMAS", Path(__file__).resolve().parent.parent / "schemas"))
TYPES: dict[str, tuple[type, ...]] = {"object": (dict,), "string": (str,), "number": (int, float),
                                      "integer": (int,), "array": (list,), "null": (type(None),)}


def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return schema


def _type_ok(value: Any, kinds: str | list[str]) -> bool:
    wanted = [kinds] if isinstance(kinds, str) else kinds
    return any(isinstance(value, TYPES[kind]) and not (isinstance(value, bool) and kind != "boolean")
               for kind in wanted)


def errors(value: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Every way value breaks schema, each naming its field; [] when valid."""
    label = where or "document"
    if "type" in schema and not _type_ok(value, schema["type"]):
        return [f"{label}: expected {schema['type']}, got {type(value).__name__}"]
    found = []
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{label}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            found.append(f"{label}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(f"{label}: longer than {schema['maxLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            found.append(f"{label}: {value[:80]!r} does not match {schema['pattern']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            found.append(f"{label}: below {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            found.append(f"{label}: not above {schema['exclusiveMinimum']}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += errors(item, schema["items"], f"{label}[{index}]")
    if isinstance(value, dict):
        found += [f"{where + '.' if where else ''}{key}: required" for key in schema.get("required", [])
                  if key not in value]
        properties = schema.get("properties", {})
        for key, item in value.items():
            field = f"{where}.{key}" if where else key
            if key in properties:
                found += errors(item, properties[key], field)
            elif schema.get("additionalProperties", True) is False:
                found.append(f"{field}: not allowed")
    return found


def write_atomic(path: Path, document: dict[str, Any], replace: bool = True) -> bool:
    """Write JSON so readers see the old file or the whole new one; False when replace=False and it exists."""
    fd, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes 0600; who else may read is the directory's business (the access matrix).
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, sort_keys=True)
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
