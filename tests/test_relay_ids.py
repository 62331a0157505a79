"""The relay's ids: it becomes its own account for good, with the dispatcher's ids as its saved ones,
so it can write the tree as the dispatcher and reach no other uid, root's included."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentfleet_relay import Dispatcher, capabilities

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching ids needs root, as the service starts")
RELAY, DISPATCHER = 64001, 64002  # accounts that need not exist: ids are all the kernel checks
ROOT_ONLY = "root-only"


@pytest.fixture(name="tree")
def tree_in_tmp() -> Iterator[Path]:
    """Under /tmp itself: another uid reaches it (pytest's own directories are 0700)."""
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch).chmod(0o755)
        inbox = Path(scratch) / "inbox"
        inbox.mkdir(mode=0o700)
        os.chown(inbox, DISPATCHER, DISPATCHER)
        (Path(scratch) / ROOT_ONLY).mkdir(mode=0o700)
        yield Path(scratch)


def in_a_child(tree: Path, drop: bool) -> dict[str, object]:
    """What a relay process can do once started (dropped or not): reported through a pipe."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.close(reading)
        with os.fdopen(writing, "w") as report:
            report.write(json.dumps(attempts(tree, drop)))
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as report:
        found: dict[str, object] = json.loads(report.read())
    os.waitpid(child, 0)
    return found


def attempts(tree: Path, drop: bool) -> dict[str, object]:
    dispatcher = Dispatcher(DISPATCHER, DISPATCHER, (DISPATCHER, 64100))
    found: dict[str, object] = {}
    try:
        if drop:
            dispatcher.become(RELAY, RELAY)
        found["ids"] = [list(os.getresuid()), list(os.getresgid()), sorted(os.getgroups())]
        found["capabilities"] = capabilities()
        with dispatcher.acting():
            (tree / "inbox" / "t1.json").write_text("{}")
        found["after"] = [os.geteuid(), os.getegid()]
        found["root-only"] = can(lambda: (tree / ROOT_ONLY / "x").write_text("x"))
        found["root"] = can(lambda: os.seteuid(0))
        found["other"] = can(lambda: os.seteuid(64003))
    except Exception as error:  # noqa: BLE001 - any failure is the parent's to report
        found["error"] = repr(error)
    return found


def can(attempt: object) -> bool:
    try:
        attempt()  # type: ignore[operator]
    except PermissionError:
        return False
    return True


def test_the_relay_writes_the_tree_as_the_dispatcher_and_reaches_no_other_uid(tree: Path) -> None:
    found = in_a_child(tree, drop=True)
    assert "error" not in found, found
    assert found["ids"] == [[RELAY, RELAY, DISPATCHER], [RELAY, RELAY, DISPATCHER], [RELAY, DISPATCHER, 64100]]
    assert found["capabilities"] == {"CapPrm": 0, "CapEff": 0, "CapAmb": 0}
    inbox_file = (tree / "inbox" / "t1.json").stat()
    assert (inbox_file.st_uid, inbox_file.st_gid) == (DISPATCHER, DISPATCHER)
    assert found["after"] == [RELAY, RELAY]
    assert found["root"] is False and found["other"] is False and found["root-only"] is False


def test_control_a_relay_that_kept_root_could_become_anyone(tree: Path) -> None:
    """The same process without the drop: the attempts above succeed, so they can fail."""
    found = in_a_child(tree, drop=False)
    assert "error" not in found, found
    assert found["root"] is True and found["other"] is True and found["root-only"] is True
    assert (tree / "inbox" / "t1.json").stat().st_uid == DISPATCHER


def test_neither_the_relay_nor_the_dispatcher_may_be_root() -> None:
    with pytest.raises(SystemExit, match="may be root"):
        Dispatcher(0, 0, (0,)).become(RELAY, RELAY)
    with pytest.raises(SystemExit, match="may be root"):
        Dispatcher(DISPATCHER, DISPATCHER, ()).become(0, RELAY)
