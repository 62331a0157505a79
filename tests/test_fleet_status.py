"""agentctl status on a host of a fleet: every host's workers from fleet/_workers.json (the relay's
copy of the fleet's bucket), read as hostile input: only the directory owner's file, in its
schema, each cell escaped; nothing on a lone host."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from agentfleet import agentctl
from agentfleet.fleet import Fleet
from runtime_helpers import make_tree


def row(node: str, worker: str, age: float, fresh: bool = True, role: str = "frontend", pending: int = 0) -> dict[str, Any]:
    return {"node": node, "worker": worker, "role": role, "fresh": fresh, "pending": pending, "updated": time.time() - age}


def fleet_host(tmp_path: Path, workers: list[dict[str, Any]]) -> Fleet:
    root = make_tree(tmp_path, ["marie"])
    (root / "fleet").mkdir()
    (root / "fleet" / "_workers.json").write_text(json.dumps({"updated": time.time() - 1, "workers": workers}))
    return Fleet.from_env(root, {})


def test_every_hosts_workers_with_their_state(tmp_path: Path) -> None:
    fleet = fleet_host(tmp_path, [row("alpha", "marie", 1), row("beta", "lea", 2, pending=3),
                                  row("beta", "bob", 1, fresh=False, role=""), row("gamma", "zoe", 60)])
    lines = agentctl.fleet_status_table(fleet).splitlines()
    assert lines[1].startswith("the fleet (every host's workers, as of 1s ago)")
    table = [line.split() for line in lines[2:]]
    assert table[0] == ["NODE", "WORKER", "ROLE", "STATE", "PENDING", "AGE"]
    assert [cells[:5] for cells in table[1:]] == [["alpha", "marie", "frontend", "ready", "0"], ["beta", "lea", "frontend", "ready", "3"],
                                                   ["beta", "bob", "-", "STALE", "0"], ["gamma", "zoe", "frontend", "GONE", "0"]]


@pytest.mark.parametrize("bad", [{"role": "\x1b[2Jfront"}, {"worker": "Lea"}, {"pending": -1}, {"fresh": "yes"},
                                 {"node": "beta.gamma"}, {"extra": 1}])
def test_a_view_out_of_its_schema_is_refused_and_shown_nowhere(tmp_path: Path, bad: dict[str, Any]) -> None:
    fleet = fleet_host(tmp_path, [row("alpha", "marie", 1), {**row("beta", "lea", 1), **bad}])
    assert agentctl.fleet_status_table(fleet) == ""
    assert len(fleet.problems) == 1 and "_workers.json" in fleet.problems[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_a_view_not_of_the_directory_owner_is_refused(tmp_path: Path) -> None:
    fleet = fleet_host(tmp_path, [row("beta", "lea", 1)])
    os.chown(fleet.root / "fleet" / "_workers.json", 12345, 12345)
    assert agentctl.fleet_status_table(fleet) == "" and len(fleet.problems) == 1


def test_a_lone_host_shows_no_fleet(tmp_path: Path) -> None:
    assert agentctl.fleet_status_table(Fleet.from_env(make_tree(tmp_path, ["marie"]), {})) == ""
