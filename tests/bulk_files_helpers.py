"""Drive the one writer as the bulk_files module does, without Ansible around it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ansible_collections.agentfleet.fleet.plugins.module_utils.bulk_files import (
    ensure_directories, stale_directories, stale_files, write_all)


def run(argv: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def converge_files(files: list[dict[str, Any]], directories: list[dict[str, Any]] | None = None) -> list[str]:
    """Write what is stale, as the module does outside check mode; returns the files written."""
    ensure_directories(directories or [], stale_directories(directories or []))
    stale = stale_files(files)
    write_all([spec for spec in files if spec["path"] in stale], run)
    return stale


def run_module(cwd: Path, name: str, arguments: dict[str, Any], *flags: str) -> dict[str, Any]:
    """One of our modules run by Ansible on this machine; its result as the json callback gives it."""
    ansible = shutil.which("ansible")
    if ansible is None:
        pytest.skip("ansible is not on PATH (run inside the toolchain's venv)")
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "ANSIBLE_CONFIG": "", "ANSIBLE_COLLECTIONS_PATH": str(root / "collections"),
                   "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
                   "ANSIBLE_LOCALHOST_WARNING": "0"}
    done = subprocess.run([ansible, "localhost", "-c", "local", "-m", f"agentfleet.fleet.{name}", "-a", json.dumps(arguments),
                           *flags], capture_output=True, text=True, env=environment, cwd=cwd, check=False)
    result: dict[str, Any] = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result
