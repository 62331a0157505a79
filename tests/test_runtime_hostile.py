"""Everything an agent writes is hostile input: a corpus of bad files for every trusted reader.

Each reader (heartbeats, results, the usage report, tasks) gets every kind of bad file; it must
refuse it with a reason that names the file, and go on with the good ones.
"""

from __future__ import annotations

import json
import os
import socket
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agentfleet import agentctl
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.fleet import Fleet
from agentfleet.monitor import Monitor
from agentfleet.tasks import read_task
from agentfleet.untrusted import MAX_BYTES, Refused, depth, outside_strings, parse, printable
from runtime_helpers import make_tree, put_task

ME = os.getuid()
OTHER_UID = 54321
WORKERS = ["anga", "marie"]


def fleet(root: Path) -> Fleet:
    return Fleet(root, {name: ME for name in [*WORKERS, "monitor"]}, monitor="monitor")


def heartbeat(name: str = "marie", **fields: Any) -> dict[str, Any]:
    return {"agent": name, "kind": "worker", "status": "idle", "task": None, "updated": time.time(), "interval": 5,
            "completed": 0, "pid": 7, **fields}


def result(ident: str = "t1", worker: str = "marie", **fields: Any) -> dict[str, Any]:
    return {"id": ident, "worker": worker, "status": "ok", "output": "done", "reason": "", "attempt": 1,
            "started": 1.0, "finished": 2.0, **fields}


def usage(**agents: Any) -> dict[str, Any]:
    return {"agents": agents or {"marie": {"requests": 1, "sent": 1, "received": 1, "status": {"200": 1},
                                           "last": "t"}}, "since": [1, 2]}


def plant(path: Path, content: bytes | dict[str, Any] | list[Any]) -> None:
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())


def as_fifo(path: Path) -> None:
    os.mkfifo(path)


def as_socket(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))


def as_link_to_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def as_directory(path: Path) -> None:
    path.mkdir()


def nested(levels: int) -> bytes:
    return b'{"agent": ' + b"[" * levels + b"]" * levels + b"}"


# (label, how to make the bad file at path, or its content; what the reason must say)
Maker = Callable[[Path], None] | bytes | dict[str, Any] | list[Any]
COMMON: list[tuple[str, Maker, str]] = [
    ("symlink to /dev/zero", as_link_to_zero, "a symlink"),
    ("FIFO", as_fifo, "a FIFO"),
    ("socket", as_socket, "a socket"),
    ("directory", as_directory, "a directory"),
    ("deep nesting", nested(40), "nested deeper than"),
    ("not JSON", b"{not json", "malformed JSON"),
    ("not UTF-8", b'{"a": "\xff"}', "not UTF-8"),
    ("a list", [1, 2], "expected object"),
    ("NaN", b'{"updated": NaN}', "NaN is not a JSON number"),
    ("infinity by overflow", b'{"updated": 1e999}', "out of range"),
    ("a huge integer", b'{"pid": ' + b"9" * 5000 + b"}", "malformed JSON"),
]


def make(path: Path, maker: Maker) -> None:
    if callable(maker):
        maker(path)
    else:
        plant(path, maker)


def problem_about(found: Fleet, path: Path, reason: str) -> None:
    assert any(problem.startswith(f"{path}: ") and reason in problem for problem in found.problems), found.problems


HEARTBEAT_CASES = COMMON + [
    ("oversize", b" " * (MAX_BYTES["heartbeat"] + 1), "over the limit"),
    ("updated as a string", heartbeat(updated="x"), "updated: expected number"),
    ("another agent's name", heartbeat("anga"), "is not the directory's agent"),
    ("escape sequences in the kind", heartbeat(kind="\x1b[2J"), "kind:"),
]


@pytest.mark.parametrize(("label", "maker", "reason"), HEARTBEAT_CASES, ids=[case[0] for case in HEARTBEAT_CASES])
def test_heartbeat_readers_refuse_bad_files(tmp_path: Path, label: str, maker: Maker, reason: str) -> None:
    root = make_tree(tmp_path, WORKERS)
    plant(root / "heartbeats" / "anga" / "heartbeat.json", heartbeat("anga"))
    path = root / "heartbeats" / "marie" / "heartbeat.json"
    make(path, maker)
    found = fleet(root)
    assert list(found.heartbeats()) == ["anga"]
    problem_about(found, path, reason)


RESULT_CASES = COMMON + [
    ("oversize", b" " * (MAX_BYTES["result"] + 1), "over the limit"),
    ("filed under another worker's name", result(worker="anga"), "is not the directory's agent"),
    ("an id that is not its file name", result(ident="t2"), "does not match the file name"),
    ("a path in the id", result(ident="../../common/x"), "id:"),
    ("a path in the worker", result(worker="../common"), "worker:"),
    ("finished as a string", result(finished="soon"), "finished: expected number"),
    ("attempt as a bool", result(attempt=True), "attempt: expected integer"),
    ("a million arrays", b"[" + b"[]," * 1_000_000 + b"[]]", "items, over the limit"),
    ("twenty thousand objects", b'{"a": [' + b"{}" * 20_000 + b"]}", "items, over the limit"),
]


@pytest.mark.parametrize(("label", "maker", "reason"), RESULT_CASES, ids=[case[0] for case in RESULT_CASES])
def test_result_readers_refuse_bad_files(tmp_path: Path, label: str, maker: Maker, reason: str,
                                         capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path, WORKERS)
    plant(root / "results" / "anga" / "good.json", result("good", "anga"))
    path = root / "results" / "marie" / "t1.json"
    make(path, maker)
    found = fleet(root)
    assert [item["id"] for item in found.results()] == ["good"]
    problem_about(found, path, reason)
    assert fleet(root).find("t1") is None
    monkeypatch.setenv("AGENTFLEET_AGENTS", json.dumps({name: ME for name in [*WORKERS, "monitor"]}))
    assert agentctl.main(["--root", str(root), "results"]) == 0
    out, err = capsys.readouterr()
    assert out.split() == ["anga", "good", "ok"] and f"skipped {path}: " in err


def test_a_result_owned_by_another_uid_is_not_the_directorys_agents(tmp_path: Path) -> None:
    if ME != 0:
        pytest.skip("changing a file's owner needs root, as on our CI")
    root = make_tree(tmp_path, WORKERS)
    path = root / "results" / "marie" / "t1.json"
    plant(path, result())
    os.chown(path, OTHER_UID, OTHER_UID)
    found = fleet(root)
    assert found.results() == []
    problem_about(found, path, f"owned by uid {OTHER_UID}, not {ME}")


def test_a_result_is_looked_for_only_where_its_task_was_sent(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    put_task(root, "marie", "t1")
    plant(root / "results" / "anga" / "t1.json", result(worker="anga", output="anga answers for marie"))
    assert fleet(root).find("t1") is None
    plant(root / "results" / "marie" / "t1.json", result())
    found = fleet(root).find("t1")
    assert found is not None and found["worker"] == "marie"


def test_listing_many_large_results_keeps_only_their_summaries(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    for n in range(40):
        plant(root / "results" / "marie" / f"t{n}.json", result(f"t{n}", output="x" * 1_000_000))
    tracemalloc.start()
    listed = fleet(root).results()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(listed) == 40 and "output" not in listed[0]
    assert peak < 20_000_000, peak  # a few copies of one file at a time, not forty files


def test_problems_are_bounded_in_number_and_length(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    plant(root / "results" / "marie" / "t0.json", result("t0", status="\x85" * 1_000_000))
    for n in range(1, 1_100):
        (root / "results" / "marie" / f"t{n}.json").symlink_to("/dev/zero")
    found = fleet(root)
    found.results()
    assert len(found.problems) == 1_001 and found.problems[-1].endswith("the rest not listed")
    assert max(len(problem) for problem in found.problems) < 500


def test_a_symlink_to_another_agents_result_is_refused(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    plant(root / "results" / "anga" / "t1.json", result(worker="anga"))
    (root / "results" / "marie" / "t1.json").symlink_to(root / "results" / "anga" / "t1.json")
    found = fleet(root)
    assert [(item["worker"], item["id"]) for item in found.results()] == [("anga", "t1")]
    problem_about(found, root / "results" / "marie" / "t1.json", "a symlink")


def test_stray_names_in_a_results_directory_are_reported(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    for name in ("..json", "a b.json", "x.json.bak", "\x1b[31mred.json"):
        plant(root / "results" / "marie" / name, result())
    plant(root / "results" / "marie" / "t1.claim", b"")
    plant(root / "results" / "marie" / ".t1.json.tmp", b"")
    found = fleet(root)
    assert found.results() == []
    # Dot-files are the writers' own files in progress: not read, not reported.
    assert sorted(problem.rpartition("/")[2] for problem in found.problems) == sorted(
        f"{name}: not <id>.json" for name in ("a b.json", "x.json.bak", "\x1b[31mred.json"))


def test_the_monitor_archives_by_where_a_result_lives_never_by_what_it_says(tmp_path: Path) -> None:
    root = make_tree(tmp_path, WORKERS)
    (root / "common").mkdir()
    (root / "heartbeats" / "monitor").mkdir(exist_ok=True)
    plant(root / "results" / "marie" / "t1.json", result())
    plant(root / "results" / "marie" / "t2.json", result("t2", worker="anga"))
    plant(root / "results" / "marie" / "t3.json", result("../../common/t3"))
    os.symlink("/dev/zero", root / "results" / "marie" / "t4.json")
    before = {path for path in tmp_path.rglob("*") if "archive" not in path.parts}
    monitor = Monitor(Config(name="monitor", kind="monitor", root=root, backend=Backend(type="command", argv=["true"])),
                      retention=0, fleet=fleet(root))
    monitor.check(time.time())
    archived = sorted(str(path.relative_to(root)) for path in (root / "archive").rglob("*"))
    assert archived == ["archive/marie", "archive/marie/t1.json"]
    after = {path for path in tmp_path.rglob("*") if "archive" not in path.parts}
    assert after - before == {root / "heartbeats" / "monitor" / "heartbeat.json"}
    assert len(monitor.reported) == 3


@pytest.mark.parametrize(("label", "maker", "reason"), COMMON, ids=[case[0] for case in COMMON])
def test_the_usage_report_is_read_only_from_the_monitor(tmp_path: Path, label: str, maker: Maker, reason: str) -> None:
    root = make_tree(tmp_path, WORKERS)
    for name in ("marie", "monitor"):
        (root / "logs" / name).mkdir(parents=True)
    planted = usage(marie={"requests": 999, "sent": 0, "received": 0, "status": {}, "last": ""})
    plant(root / "logs" / "marie" / "gateway-usage.json", planted)  # valid, and marie's: never read
    path = root / "logs" / "monitor" / "gateway-usage.json"
    assert fleet(root).usage_report() is None
    make(path, maker)
    found = fleet(root)
    assert found.usage_report() is None
    problem_about(found, path, reason)
    plant_good = usage()
    path.unlink() if not path.is_dir() or path.is_symlink() else path.rmdir()
    plant(path, plant_good)
    assert fleet(root).usage_report() == plant_good


def test_a_flood_of_bad_files_is_counted_not_listed_in_the_monitors_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agentfleet.monitor.REPORTED", 3)
    root = make_tree(tmp_path, WORKERS)
    (root / "heartbeats" / "monitor").mkdir(exist_ok=True)
    for n in range(5):
        (root / "results" / "marie" / f"t{n}.json").symlink_to("/dev/zero")
    monitor = Monitor(Config(name="monitor", kind="monitor", root=root, backend=Backend(type="command", argv=["true"])),
                      retention=0, fleet=fleet(root))
    monitor.check(time.time())
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [event["event"] for event in events].count("invalid-file") == 3
    assert [event["count"] for event in events if event["event"] == "invalid-files-not-listed"] == [2]
    monitor.check(time.time())  # the same files again: the three listed are not listed twice
    again = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert "invalid-file" not in again


def test_agentctl_escapes_control_characters_in_everything_it_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_tree(tmp_path, WORKERS)
    plant(root / "results" / "marie" / "t1.json", result(reason="\x1b]0;owned\x07\x1b[2J\r\u202egnp.exe"))
    put_task(root, "marie", "t1")
    plant(root / "results" / "marie" / "\x1b[2J.json", b"")
    monkeypatch.setenv("AGENTFLEET_AGENTS", json.dumps({name: ME for name in WORKERS}))
    for command in (["results"], ["show", "t1"], ["status"]):
        agentctl.main(["--root", str(root), *command])
        out, err = capsys.readouterr()
        assert not [char for char in out + err if not char.isprintable() and char != "\n"], (out, err)
    assert printable("a\x1b[0mb\u202e\n") == "a\\x1b[0mb\\u202e\\n"


def test_a_heartbeat_from_the_future_or_with_its_own_interval_does_not_stay_fresh(tmp_path: Path) -> None:
    found = fleet(make_tree(tmp_path, WORKERS))
    now = time.time()
    assert found.is_stale(heartbeat(updated=now + 3600), now)
    assert found.is_stale(heartbeat(updated=now - 60, interval=1e9), now)
    assert not found.is_stale(heartbeat(updated=now - 1), now)


@pytest.mark.parametrize(("label", "maker", "reason"), COMMON, ids=[case[0] for case in COMMON])
def test_the_worker_rejects_a_bad_task_with_its_reason(tmp_path: Path, label: str, maker: Maker, reason: str) -> None:
    path = tmp_path / "t1.json"
    make(path, maker)
    task, why = read_task(path, MAX_BYTES["task"], "command")
    assert task is None and (reason in why or "document: expected object" in why), why


def test_a_task_id_ending_in_proposal_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t1.proposal.json"
    path.write_text('{"id": "t1.proposal", "prompt": "p"}')
    task, why = read_task(path, MAX_BYTES["task"], "command")
    assert task is None and "kept for proposal manifests" in why


def test_depth_skips_brackets_inside_strings_and_parse_caps_it() -> None:
    assert outside_strings(b'{"a": "[[[[\\"\\\\", "b": [[1]]}', 10) == b'{: , : [[1]]}'
    assert depth(b"[{[]}][]") == 3
    assert parse(b'{"a": "' + b"[" * 100 + b'"}', 10) == {"a": "[" * 100}
    with pytest.raises(Refused, match="nested deeper than 16"):
        parse(b"[" * 17 + b"]" * 17, 100)
    with pytest.raises(Refused, match="3 items, over the limit of 2"):
        parse(b"[1, 2, 3]", 2)
