"""The agent_dirs module on a scratch tree: create, fix, refuse symlinks, retire, re-own, check mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from agent_dirs import TreeError, converge

UID, GID = os.getuid(), os.getgid()


def params(root: Path, names: list[str], **extra: Any) -> dict[str, Any]:
    paths = [{"path": str(root), "owner": UID, "group": GID, "mode": "0755"},
             {"path": str(root / "inbox"), "owner": UID, "group": GID, "mode": "0755"},
             {"path": str(root / "retired"), "owner": UID, "group": GID, "mode": "0700"}]
    paths += [{"path": str(root / "inbox" / name), "owner": UID, "group": GID, "mode": "0750"} for name in names]
    return {"paths": paths, "per_name_dirs": [str(root / "inbox")], "retired_dir": str(root / "retired"),
            "delete_retired": False, "uid_map": {}, "gid_map": {}, **extra}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_creates_every_path_then_reports_nothing(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    changes = converge(params(root, ["marie", "anga"]), apply=True)
    assert len(changes) == 5
    assert mode(root / "inbox" / "marie") == 0o750 and mode(root / "retired") == 0o700
    assert converge(params(root, ["marie", "anga"]), apply=True) == []


def test_check_mode_reports_without_touching(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    assert converge(params(root, ["marie"]), apply=False)
    assert not root.exists()


def test_fixes_a_widened_mode(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    converge(params(root, ["marie"]), apply=True)
    (root / "inbox" / "marie").chmod(0o777)
    assert converge(params(root, ["marie"]), apply=True) == [f"mode {root}/inbox/marie 0777 -> 0750"]
    assert mode(root / "inbox" / "marie") == 0o750


def test_refuses_a_symlink_on_a_managed_path(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    converge(params(root, []), apply=True)
    (root / "inbox" / "marie").symlink_to("/etc")
    with pytest.raises(TreeError, match="is not a directory"):
        converge(params(root, ["marie"]), apply=True)
    assert mode(Path("/etc")) == 0o755


def test_retires_an_agent_that_left_keeping_its_data(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    converge(params(root, ["marie", "zoe"]), apply=True)
    (root / "inbox" / "zoe" / "task.json").write_text("{}")
    changes = converge(params(root, ["marie"]), apply=True)
    assert any(change.startswith(f"retired {root}/inbox/zoe -> {root}/retired/zoe/") for change in changes)
    kept = list((root / "retired" / "zoe").glob("*/inbox/task.json"))
    assert len(kept) == 1 and kept[0].read_text() == "{}"
    assert not (root / "inbox" / "zoe").exists()


def test_deletes_an_agent_that_left_only_when_asked(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    converge(params(root, ["marie", "zoe"]), apply=True)
    assert converge(params(root, ["marie"], delete_retired=True), apply=True) == [f"deleted {root}/inbox/zoe"]
    assert not (root / "retired" / "zoe").exists()


def test_reowns_files_of_a_moved_uid(tmp_path: Path) -> None:
    root = tmp_path / "fleet"
    converge(params(root, ["marie"]), apply=True)
    task = root / "inbox" / "marie" / "task.json"
    task.write_text("{}")
    os.chown(task, 4242, 4343)
    converge(params(root, ["marie"], uid_map={"4242": UID}, gid_map={"4343": GID}), apply=True)
    assert (task.stat().st_uid, task.stat().st_gid) == (UID, GID)
