"""Drive the one writer as the bulk_files module does, without Ansible around it."""

from __future__ import annotations

import subprocess
from typing import Any

from ansible_collections.agentfleet.fleet.plugins.module_utils.bulk_files import (
    ensure_directories, stale_directories, stale_files, write)


def run(argv: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def converge_files(files: list[dict[str, Any]], directories: list[dict[str, Any]] | None = None) -> list[str]:
    """Write what is stale, as the module does outside check mode; returns the files written."""
    ensure_directories(directories or [], stale_directories(directories or []))
    stale = stale_files(files)
    for spec in files:
        if spec["path"] in stale:
            write(spec, run)
    return stale
