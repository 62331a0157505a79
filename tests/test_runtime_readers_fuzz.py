"""Property tests: every trusted reader of a file an agent writes, fed random bytes and JSON.

Each reader must let out none but its documented exceptions, finish within LIMIT seconds, allocate
at most FACTOR times its kind's size cap (a second run, on a copy of the tree, under tracemalloc),
print no raw control character, name each file it refuses, and (the monitor) write only into
archive/<the file's own worker>/. Files filled up to their cap have the last test to themselves.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pytest
from agentfleet import agentctl, schema
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.fleet import Fleet
from agentfleet.gateway_usage import GatewayUsage
from agentfleet.monitor import Monitor
from agentfleet.tasks import read_task
from agentfleet.untrusted import MAX_BYTES
from hypothesis import HealthCheck, example, given, settings, strategies as st
from runtime_helpers import make_tree

T = TypeVar("T")
ME = os.getuid()
AGENTS = {"anga": ME, "marie": ME, "monitor": ME}
LIMIT = 2.0  # seconds per call, measured without tracemalloc (which slows the regex engine ~10 x)
FACTOR = 8  # peak allocation per call in multiples of MAX_BYTES[kind]: the bytes, a str of them, copies
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
FUZZ = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
HEARTBEAT = {"agent": "marie", "kind": "worker", "status": "busy", "task": "t1", "updated": time.time(), "interval": 5,
             "completed": 3, "pid": 42}
RESULT = {"id": "t1", "worker": "marie", "status": "ok", "output": "done", "reason": "", "attempt": 1,
          "started": 1.0, "finished": 2.0, "task": {"id": "t1", "prompt": "hi"}}
ANGA_RESULT = {**RESULT, "id": "t2", "worker": "anga"}

SPECIAL = ["\x1b[31m", "\x1b]0;pwned\x07", "\x1b[2J", "\r", "\x00", "\x7f", "\x9b", "\x9b31m", "\u202e", "\u2028",
           "\ufeff", "\ud800", "\n", "\t", "\U0001f600", "anga", "../anga", "monitor"]
RAW = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "2e308", "1" + "0" * 400, "-" + "9" * 4300, "9" * 4301,
       "1e-999", "01", "1.", ".5", "+1", "0x1F", "tru", "'t1'", '"\\ud800"', '"\\udfff\\ud800"', '"\x1b[31mred"',
       '"\r\x00"', '"marie\\n"', '"t1\\n"', '"anga"', '"../anga"', '"monitor"', '""', "[]", "{}", "null", "true",
       "1.0", "-0", "-1", ""]
HOLE = "\x00hole\x00"

hostile_text = st.lists(st.one_of(st.text(max_size=6), st.sampled_from(SPECIAL)), max_size=6).map("".join)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(hostile_text, kids, max_size=4),
                           max_leaves=16)


def nest(depth: int, shape: str) -> str:
    """Nesting by strategy: closed arrays, closed objects, unclosed, or brackets inside a string."""
    return {"[": "[" * depth + "]" * depth, "{": '{"a":' * depth + "0" + "}" * depth, "(": "[" * depth,
            '"': '"' + "[{" * depth + '"'}[shape]


values = st.one_of(json_values.map(lambda value: json.dumps(value, ensure_ascii=False)), st.sampled_from(RAW),
                   st.builds(nest, st.integers(1, 5000), st.sampled_from("[{(\"")),
                   st.builds(lambda unit, count: '"' + unit * count + '"',  # huge strings; of escapes: see FILLS
                             st.sampled_from(["a", "\U0001f600", "\x7f", "\x9b", "\u202e", "\x1b[31m"]),
                             st.integers(0, 100_000)))


def fields(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a document, and a new field at the top."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    found = [path] if path else [("extra",)]
    for key, item in children:
        found += fields(item, (*path, key))
    return found


def mutate(doc: dict[str, Any], path: tuple[Any, ...], op: str, raw: str, key: str, ascii_only: bool) -> str:
    """doc with the field at path dropped, renamed to key, or set to the JSON text raw."""
    copy, (*parents, last) = json.loads(json.dumps(doc)), path
    target = copy
    for step in parents:
        target = target[step]
    if op == "drop" and isinstance(target, dict):
        target.pop(last, None)
    elif op == "rename" and isinstance(target, dict):
        target[key] = target.pop(last, 1)
    else:
        target[last] = HOLE
    return json.dumps(copy, ensure_ascii=ascii_only).replace(json.dumps(HOLE), raw)


def from_schema(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid by a schema node (the subset runtime/schemas use), every free string hostile."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    options, low, strict = [], node.get("minimum", node.get("exclusiveMinimum")), "exclusiveMinimum" in node
    for kind in [node["type"]] if isinstance(node["type"], str) else node["type"]:
        if kind == "string":
            options.append(st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else hostile_text.filter(
                lambda text: node.get("minLength", 0) <= len(text) <= node.get("maxLength", len(text))))
        elif kind in ("integer", "number"):
            options.append(st.integers(min_value=None if low is None else low + strict) if kind == "integer" else
                           st.integers(min_value=low) | st.floats(min_value=low, exclude_min=strict, allow_nan=False,
                                                                  allow_infinity=False))
        elif kind == "array":
            options.append(st.lists(from_schema(node["items"]), min_size=node.get("minItems", 0),
                                    max_size=node.get("maxItems", 4)))
        elif kind == "object" and isinstance(node.get("additionalProperties"), dict):
            options.append(st.dictionaries(hostile_text, from_schema(node["additionalProperties"]), max_size=3))
        elif kind == "object":
            required, properties = node.get("required", []), node.get("properties", {})
            options.append(st.fixed_dictionaries({key: from_schema(properties[key]) for key in required}, optional={
                key: from_schema(value) for key, value in properties.items() if key not in required})
                if properties else st.dictionaries(hostile_text, json_values, max_size=4))
        else:
            options.append(st.none())
    return st.one_of(options)


def files(kind: str, **identity: str) -> st.SearchStrategy[bytes]:
    """Random bytes, any JSON text, or a document valid by the schema (with the names a file's place
    gives it), hostile wherever the schema lets a string through, as is or with one field broken."""
    valid = from_schema(schema.load(kind)).map(lambda doc: {**doc, **identity})
    texts = [values, st.builds(json.dumps, valid, ensure_ascii=st.booleans()), valid.flatmap(
        lambda doc: st.builds(mutate, st.just(doc), st.sampled_from(fields(doc)),
                              st.sampled_from(["set", "drop", "rename"]), values, hostile_text, st.booleans()))]
    return st.one_of(st.binary(max_size=512), *(text.map(lambda text: text.encode("utf-8", "surrogatepass"))
                                                for text in texts))


class TooSlow(Exception):
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise TooSlow


def within(kind: str, limit: float, call: Callable[[], T]) -> T:
    previous = signal.signal(signal.SIGALRM, _alarm)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        outcome = call()
    except TooSlow:
        raise AssertionError(f"a {kind} reader still ran after {limit} s") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < limit, f"a {kind} reader took over {limit} s"
    return outcome


def bounded(kind: str, root: Path, call: Callable[[Path], T]) -> T:
    """call(root), timed; then call on a copy of the tree under tracemalloc, for its peak allocation
    beyond what the same call costs on the tree's directories without their files (the command's
    own start-up, such as its argument parser)."""
    spare, empty = Path(tempfile.mkdtemp(dir=root.parent)), Path(tempfile.mkdtemp(dir=root.parent))
    shutil.copytree(root, spare, dirs_exist_ok=True)
    shutil.copytree(root, empty, dirs_exist_ok=True, ignore=lambda folder, names: [
        name for name in names if not (Path(folder) / name).is_dir() or (Path(folder) / name).is_symlink()])
    try:
        outcome = within(kind, LIMIT, lambda: call(root))
        peaks = []
        for tree in (empty, spare):
            tracemalloc.start()
            within(kind, 10 * LIMIT, lambda: call(tree))
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    finally:
        tracemalloc.stop()
        shutil.rmtree(spare)
        shutil.rmtree(empty)
    peak = peaks[1] - peaks[0]
    assert peak < FACTOR * MAX_BYTES[kind], f"a {kind} reader allocated {peak / MAX_BYTES[kind]:.1f} x its cap"
    return outcome


@contextmanager
def tree(tmp_path: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        root = make_tree(Path(scratch), ["anga", "marie"])
        (root / "logs" / "monitor").mkdir(parents=True)
        (root / "fleet").mkdir()
        (root / "inbox" / "marie" / "t1.json").write_text('{"id": "t1", "prompt": "p"}')  # find looks where it was sent
        yield root


def fleet(root: Path) -> Fleet:
    return Fleet(root, dict(AGENTS), monitor="monitor")


def read(kind: str, root: Path, method: str, *args: str) -> tuple[Any, list[str]]:
    """What a Fleet's method returns for the tree at root, and the problems it reported."""
    def run(at: Path) -> tuple[Any, list[str]]:
        reader = fleet(at)
        return getattr(reader, method)(*args), reader.problems
    return bounded(kind, root, run)


def named(problems: list[str], path: Path) -> bool:
    return any(problem.startswith(f"{path}: ") for problem in problems)


def plain(text: str) -> str:
    found = RAW_CONTROL.search(text)
    assert found is None, f"raw {found.group()!r} printed in {text[max(0, found.start() - 60):found.end() + 60]!r}"
    return text


def ctl(root: Path, capsys: pytest.CaptureFixture[str], kind: str, *argv: str) -> tuple[int | None, str, str]:
    """agentctl's exit status (None after SystemExit, its message then on stderr), stdout and stderr."""
    def run(at: Path) -> tuple[int | None, str, str]:
        code: int | None
        try:
            code, message = agentctl.main(["--root", str(at), *argv]), ""
        except SystemExit as exit_:
            code, message = None, f"{exit_.code}\n"
        out, err = capsys.readouterr()
        return code, out, err + message
    code, out, err = bounded(kind, root, run)
    return code, plain(out), plain(err)


def monitor(root: Path, capsys: pytest.CaptureFixture[str], kind: str, now: float) -> str:
    """The monitor's log (JSON lines on stdout) from one check."""
    def run(at: Path) -> str:
        config = Config(name="monitor", kind="monitor", root=at, backend=Backend(type="command", argv=["true"]))
        Monitor(config, retention=0, fleet=fleet(at)).check(now)
        return capsys.readouterr().out
    return plain(bounded(kind, root, run))


@pytest.fixture(autouse=True)
def agent_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_AGENTS", json.dumps(AGENTS))
    monkeypatch.setenv("AGENTFLEET_MONITOR", "monitor")


def plant(root: Path, kind: str, content: bytes) -> Path:
    """content as marie's file of kind, next to a valid one of anga's that must stay readable."""
    if kind == "heartbeat":
        (root / "heartbeats/anga/heartbeat.json").write_text(json.dumps({**HEARTBEAT, "agent": "anga"}))
        path = root / "heartbeats/marie/heartbeat.json"
    else:
        (root / "results/anga/t2.json").write_text(json.dumps(ANGA_RESULT))
        path = root / "results/marie/t1.json"
    path.write_bytes(content)
    return path


READERS: dict[str, tuple[str, Callable[[Path], Any]]] = {  # smallest cap first
    "heartbeat": ("heartbeats/marie/heartbeat.json", lambda root: fleet(root).heartbeats()),
    "task": ("inbox/marie/t1.json", lambda root: read_task(root / "inbox/marie/t1.json", MAX_BYTES["task"], "command")),
    "fleet-workers": ("fleet/_workers.json", lambda root: fleet(root).fleet_workers()),
    "gateway-usage": ("logs/monitor/gateway-usage.json", lambda root: fleet(root).usage_report()),
    "result": ("results/marie/t1.json", lambda root: fleet(root).results()),
}


@FUZZ
@given(content=files("heartbeat", agent="marie"))
def test_fleet_reads_any_heartbeat_and_names_each_one_it_refuses(tmp_path: Path, content: bytes) -> None:
    with tree(tmp_path) as root:
        path = plant(root, "heartbeat", content)
        beats, problems = read("heartbeat", root, "heartbeats")
        assert "anga" in beats and ("marie" in beats) != named(problems, path)


@FUZZ
@given(content=files("heartbeat", agent="marie"))
@example(content=json.dumps({**HEARTBEAT, "updated": 10**400}).encode())
def test_agentctl_status_and_the_monitor_survive_any_heartbeat(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               content: bytes) -> None:
    with tree(tmp_path) as root:
        path = plant(root, "heartbeat", content)
        accepted = "marie" in fleet(root).heartbeats()
        code, out, err = ctl(root, capsys, "heartbeat", "status")
        rows = sorted(line.split()[0] for line in out.splitlines()[1:])
        assert code == 0 and rows == ["anga", "marie"][:1 + accepted]
        assert (f"agentctl: skipped {path}: " in err) != accepted
        assert (str(path) in monitor(root, capsys, "heartbeat", time.time())) != accepted


@FUZZ
@given(content=files("result", id="t1", worker="marie"))
def test_find_and_agentctl_show_survive_any_result(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   content: bytes) -> None:
    with tree(tmp_path) as root:
        path = plant(root, "result", content)
        found, problems = read("result", root, "find", "t1")
        assert (found is not None) != named(problems, path)
        code, out, err = ctl(root, capsys, "result", "show", "t1")
        if found is None:
            assert code is None and f"agentctl: skipped {path}: " in err
        else:
            assert code in (0, 1) and json.loads(out) == found and "skipped" not in err


@FUZZ
@given(content=files("result", id="t1", worker="marie"))
@example(content=json.dumps({**RESULT, "finished": 10**400}).encode())
def test_fleet_results_and_agentctl_results_survive_any_result(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               content: bytes) -> None:
    with tree(tmp_path) as root:
        path = plant(root, "result", content)
        listed, problems = read("result", root, "results")
        accepted = any(item["worker"] == "marie" for item in listed)
        assert accepted != named(problems, path) and len(listed) == 1 + accepted
        code, out, err = ctl(root, capsys, "result", "results")
        lines = out.splitlines()
        assert code == 0 and len(lines) == len(listed) and any(line.startswith("anga  t2  ") for line in lines)
        assert any(line.startswith("marie  t1  ") for line in lines) == accepted
        assert (f"agentctl: skipped {path}: " in err) != accepted


def snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(path.relative_to(root)): None if path.is_dir() else path.read_bytes() for path in root.rglob("*")}


@FUZZ
@given(content=files("result", id="t1", worker="marie"))
@example(content=json.dumps({**RESULT, "finished": 10**400}).encode())
def test_the_monitor_archives_any_result_only_under_its_own_workers_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    with tree(tmp_path) as root:
        path, now = plant(root, "result", content), time.time()
        accepted, before = fleet(root).result("marie", "t1.json"), snapshot(root)
        log, after = monitor(root, capsys, "result", now), snapshot(root)
        changed = {name for name in before.keys() | after.keys() if before.get(name) != after.get(name)}
        assert before.keys() <= after.keys() and changed <= {
            "archive/anga", "archive/anga/t2.json", "archive/marie", "archive/marie/t1.json",
            "heartbeats/monitor/heartbeat.json"}
        assert json.loads(after["archive/anga/t2.json"] or b"") == ANGA_RESULT
        due = accepted is not None and accepted["finished"] <= now
        assert ("archive/marie/t1.json" in after) == due and (str(path) in log) == (accepted is None)
        assert not due or json.loads(after["archive/marie/t1.json"] or b"") == accepted


def gateway_usage(at: Path) -> GatewayUsage:
    return GatewayUsage(at / "logs/monitor/gateway-usage.json")


@FUZZ
@given(content=files("gateway-usage"))
def test_the_usage_report_is_read_safely_by_fleet_agentctl_and_the_monitor(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    with tree(tmp_path) as root:
        path = root / "logs/monitor/gateway-usage.json"
        path.write_bytes(content)
        report, problems = read("gateway-usage", root, "usage_report")
        assert (report is not None) != named(problems, path)
        code, out, err = ctl(root, capsys, "gateway-usage", "usage")
        if report is None:
            assert code is None and f"agentctl: skipped {path}: " in err
        else:  # one line per agent: no name breaks the table
            assert code == 0 and len(out.splitlines()) == 1 + len(report["agents"]) and "skipped" not in err
        usage = bounded("gateway-usage", root, gateway_usage)
        if report is None:  # the monitor starts again from nothing, and says why
            assert usage.lost.startswith(f"{path}: ") and usage.document() == {"agents": {}, "since": [0, 0]}
        else:
            assert not usage.lost and usage.document() == report


@FUZZ
@given(content=files("task", id="t1", backend="command"))
def test_read_task_turns_any_task_file_into_a_task_or_a_reason(tmp_path: Path, content: bytes) -> None:
    with tree(tmp_path) as root:
        (root / "inbox/marie/t1.json").write_bytes(content)
        task, reason = bounded("task", root, READERS["task"][1])
        assert (task is None) == bool(reason) and (task is None or task["id"] == "t1")


FILLS = [pytest.param('"', "\U0001f600", id="astral-string"),
         *(pytest.param("[", unit, id=f"array-of-{unit[:-1]}") for unit in ["0,", "{},", "[],"]),
         pytest.param('"', '\\"', id="unclosed-escaped-quotes"),
         pytest.param('"', "\\\\", id="escaped-backslashes"),
         pytest.param('"', "\\u001b", id="unicode-escapes"),
         *(pytest.param("[", unit, id=f"array-of-{unit[:-1]}") for unit in ["1.5,", "999,", '{"b":0},'])]


@pytest.mark.parametrize(("head", "unit"), FILLS)
def test_every_reader_stays_fast_and_small_on_a_file_filled_to_its_cap(tmp_path: Path, head: str, unit: str) -> None:
    for kind, (where, reader) in READERS.items():
        with tree(tmp_path) as root:
            (root / where).write_bytes((head + unit * ((MAX_BYTES[kind] - len(head)) // len(unit.encode()))).encode())
            bounded(kind, root, reader)
