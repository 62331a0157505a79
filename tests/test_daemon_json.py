"""daemon.json's one merge and its one writer (the docker_daemon_json module, run by Ansible on
scratch files): the engine's options and the runtimes' entries keep every key they were not given."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ansible_collections.agentfleet.fleet.plugins.module_utils.daemon_json import merge
from bulk_files_helpers import run_module



def test_merge_keeps_foreign_keys_and_nested_foreign_entries() -> None:
    current = {"runtimes": {"runsc": {"path": "/usr/bin/runsc"}}, "log-opts": {"labels": "team"}}
    assert merge(current, {"log-opts": {"max-size": "10m"}, "icc": False}) == {
        "runtimes": {"runsc": {"path": "/usr/bin/runsc"}}, "log-opts": {"labels": "team", "max-size": "10m"}, "icc": False}


def test_merge_leaves_keys_set_to_none_alone() -> None:
    assert merge({"icc": True}, {"icc": None, "live-restore": None}) == {"icc": True}


def test_merge_replaces_lists_and_lets_extra_options_win() -> None:
    current = {"default-address-pools": [{"base": "10.0.0.0/8", "size": 24}]}
    managed = {"default-address-pools": [{"base": "172.20.0.0/14", "size": 24}], "icc": False}
    assert merge(current, managed, {"icc": True}) == {"default-address-pools": [{"base": "172.20.0.0/14", "size": 24}],
                                                      "icc": True}


def test_a_runtime_joins_the_others_and_nothing_is_mutated() -> None:
    current = {"log-opts": {"labels": "x"}, "runtimes": {"other": {"path": "/usr/bin/other"}}, "icc": False}
    runtime = {"name": "runsc", "path": "/usr/bin/runsc", "args": ["--network=host"]}
    merged = merge(current, {}, None, runtime)
    assert merged == {"log-opts": {"labels": "x"}, "icc": False, "runtimes": {
        "other": {"path": "/usr/bin/other"}, "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=host"]}}}
    assert merge(merged, {}, None, runtime) == merged  # nothing to write twice
    assert current["runtimes"] == {"other": {"path": "/usr/bin/other"}}
    assert merge({}, {}, None, {"name": "sysbox-runc", "path": "/usr/bin/sysbox-runc", "args": []}) == {
        "runtimes": {"sysbox-runc": {"path": "/usr/bin/sysbox-runc"}}}


def module(tmp_path: Path, arguments: dict[str, Any], *flags: str) -> dict[str, Any]:
    return run_module(tmp_path, "docker_daemon_json", arguments, *flags)


def test_the_module_merges_validates_and_is_idempotent(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"log-opts": {"labels": "team"}}\n')
    arguments = {"path": str(daemon), "options": {"icc": False, "live-restore": None},
                 "runtime": {"name": "runsc", "path": "/usr/bin/runsc"}, "validate": "python3 -m json.tool %s"}
    assert module(tmp_path, arguments, "--check")["changed"] and "icc" not in daemon.read_text()
    first = module(tmp_path, arguments)
    assert first["changed"] and json.loads(daemon.read_text()) == {
        "log-opts": {"labels": "team"}, "icc": False, "runtimes": {"runsc": {"path": "/usr/bin/runsc"}}}
    assert not module(tmp_path, arguments)["changed"]


def test_the_module_refuses_a_file_it_cannot_read_and_leaves_it(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text("{broken\n")
    result = module(tmp_path, {"path": str(daemon), "options": {"icc": False}})
    assert result["failed"] and "is not valid JSON" in result["msg"] and daemon.read_text() == "{broken\n"


def test_the_module_keeps_the_live_file_when_validation_refuses_the_new_one(tmp_path: Path) -> None:
    daemon = tmp_path / "daemon.json"
    daemon.write_text('{"icc": true}\n')
    result = module(tmp_path, {"path": str(daemon), "options": {"icc": False}, "validate": "false %s"})
    assert result["failed"] and "refused by 'false %s'" in result["msg"]
    assert daemon.read_text() == '{"icc": true}\n' and os.listdir(tmp_path) == ["daemon.json"]
