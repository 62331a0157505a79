"""The host's disk watcher: usage by owner, links never followed, a bound that stops the agent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from agentfleet import disk
from agentfleet.untrusted import Refused

ME = os.getuid()


def test_usage_counts_what_each_uid_owns_and_never_follows_a_link(tmp_path: Path) -> None:
    (tmp_path / "workspaces" / "lea").mkdir(parents=True)
    (tmp_path / "workspaces" / "lea" / "big").write_bytes(b"x" * 300_000)
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "note").write_bytes(b"y" * 5000)
    (tmp_path / "workspaces" / "lea" / "everything").symlink_to("/usr")
    totals, complete = disk.usage(tmp_path, {ME: "lea"}, cap=1000)
    assert complete and totals["lea"]["bytes"] >= 305_000 and totals["lea"]["bytes"] < 400_000
    assert totals["lea"]["files"] == 6  # 3 directories, 2 files and the link itself, not /usr
    assert disk.usage(tmp_path, {ME + 1: "other"}, cap=1000)[0] == {"other": {"bytes": 0, "files": 0}}


def test_a_tree_larger_than_the_cap_is_reported_incomplete(tmp_path: Path) -> None:
    for number in range(20):
        (tmp_path / f"f{number}").write_text("z")
    assert disk.usage(tmp_path, {ME: "lea"}, cap=10)[1] is False


def test_an_agent_over_its_bound_is_stopped_and_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "disk").mkdir()
    (tmp_path / "fill").write_bytes(b"x" * (2 * disk.MIB))
    stopped: list[str] = []
    monkeypatch.setattr(disk, "running", lambda project: {f"{project}-lea-1", f"{project}-marie-1"})
    def stop(container: str) -> str:
        stopped.append(container)
        return ""

    monkeypatch.setattr(disk, "stop", stop)
    config = {"root": str(tmp_path), "project": "agentfleet", "cap": 1000, "report": str(tmp_path / "disk" / "usage.json"),
              "agents": {"lea": {"uid": ME, "mb": 1, "files": 100}, "marie": {"uid": ME + 1, "mb": 1, "files": 100}}}
    report = disk.watch(config)
    assert stopped == ["agentfleet-lea-1"]
    assert report["agents"]["lea"]["over"] and report["agents"]["lea"]["stopped"]
    assert not report["agents"]["marie"]["over"] and not report["agents"]["marie"]["stopped"]
    event = json.loads(capsys.readouterr().out)
    assert (event["event"], event["agent"], event["stopped"]) == ("disk-over-bound", "lea", True)
    table = disk.disk_table(json.loads((tmp_path / "disk" / "usage.json").read_text()))
    assert "STOPPED: over its bound" in table.splitlines()[1] and table.splitlines()[2].split()[-1] == "ok"


def test_too_many_files_is_over_the_bound_too() -> None:
    judged = disk.judge({"lea": {"bytes": 10, "files": 101}}, {"lea": {"mb": 1, "files": 100}})
    assert judged["lea"]["over"]


def test_only_a_report_root_wrote_is_read(tmp_path: Path) -> None:
    report = tmp_path / "usage.json"
    report.write_text(json.dumps({"updated": 1.0, "complete": True, "agents": {}}))
    if ME != 0:
        pytest.skip("the control needs root: it reads a file root owns")
    assert disk.read_report(report)["complete"] is True
    os.chown(report, 12345, 12345)  # what an agent would write
    with pytest.raises(Refused, match="owned by uid 12345, not 0"):
        disk.read_report(report)


def test_agentctl_disk_prints_the_watchers_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentfleet import agentctl
    (tmp_path / "disk").mkdir()
    state = {"bytes": 3 * disk.MIB, "files": 4, "bound_bytes": 64 * disk.MIB, "bound_files": 100, "over": False,
             "stopped": False}
    (tmp_path / "disk" / "usage.json").write_text(json.dumps({"updated": 1.0, "complete": True, "agents": {"lea": state}}))
    if ME != 0:
        pytest.skip("the report must be root's")
    assert agentctl.main(["--root", str(tmp_path), "disk"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["lea", "3.0", "64", "4", "100", "ok"]
    os.chown(tmp_path / "disk" / "usage.json", 12345, 12345)
    with pytest.raises(SystemExit, match="no disk report to trust"):
        agentctl.main(["--root", str(tmp_path), "disk"])
