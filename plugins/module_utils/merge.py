"""The one recursive merge: mappings merge key by key, anything else (lists too) is replaced."""

from __future__ import annotations

from typing import Any


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """base with over's keys on top, neither input changed."""
    merged = dict(base)
    for key, value in over.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged
