"""Our JSON Schema subset gives the verdict of the real jsonschema (Draft 2020-12) on every schema we ship.

One deliberate difference: jsonschema searches with Python's re, whose $ also matches before a final
newline; JSON Schema names ECMA 262's $, the end of the string, and so does ours ("abc\\n" fails ^abc$).
The reference is therefore jsonschema on the schema with each pattern's final $ written \\Z, and the
difference itself is pinned by a test, so a jsonschema that starts to agree with ECMA shows up here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agentfleet import schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "runtime" / "schemas"
SCHEMAS = {path.name.removesuffix(".schema.json"): json.loads(path.read_text())
           for path in sorted(SCHEMA_DIR.glob("*.schema.json"))}
NAMES = sorted(SCHEMAS)
# Words that only document: neither validator reads them.
ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "default", "examples"}
# Where a real document is most likely to fool a type check, a length or an anchor.
TRICKY: list[Any] = [None, True, False, 0, 1, -1, 1.0, 0.5, -0.0, 1e300, 2**64, "", "x", "abc\n", "\n", "x" * 65,
                     [], [1], {}, {"x": 1}]
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8)
                    | st.floats(allow_nan=False, allow_infinity=False),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def children(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from node.get("properties", {}).values()
    yield from (node[key] for key in ("items", "additionalProperties") if isinstance(node.get(key), dict))


def ecma(node: dict[str, Any]) -> dict[str, Any]:
    """node with ECMA 262's $ spelled so Python's re means it too."""
    rewritten = dict(node)
    pattern = node.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
        assert "$" not in pattern[:-1], f"teach ecma() the pattern {pattern!r}"
        rewritten["pattern"] = pattern[:-1] + r"\Z"
    if "properties" in node:
        rewritten["properties"] = {key: ecma(value) for key, value in node["properties"].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            rewritten[key] = ecma(node[key])
    return rewritten


REFERENCE = {name: Draft202012Validator(ecma(SCHEMAS[name])) for name in NAMES}
ANY_VALUE = st.sampled_from(TRICKY) | JSON


def agree(name: str, document: Any) -> bool:
    """Both verdicts, asserted equal; the verdict."""
    ours, theirs = schema.errors(document, SCHEMAS[name]) == [], REFERENCE[name].is_valid(document)
    assert ours == theirs, f"{name}: ours says {ours}, jsonschema {theirs} for {document!r:.300}"
    return ours


def without(document: dict[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in document.items() if name != key}


def valid(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Documents node accepts, for the keywords our schemas use."""
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kinds = node.get("type", ["null", "boolean", "integer", "number", "string", "array", "object"])
    return st.one_of([_valid(kind, node) for kind in ([kinds] if isinstance(kinds, str) else kinds)])


def _valid(kind: str, node: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind in ("null", "boolean"):
        return st.none() if kind == "null" else st.booleans()
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        skip = "exclusiveMinimum" in node
        whole = st.integers(min_value=None if low is None else math.floor(low) + 1 if skip else math.ceil(low),
                            max_value=2**60)
        if kind == "integer":  # jsonschema counts 3.0 as an integer
            return whole | whole.map(float)
        return whole | st.floats(min_value=low, exclude_min=skip, allow_nan=False, allow_infinity=False)
    if kind == "string":
        shortest, longest = node.get("minLength", 0), node.get("maxLength", node.get("minLength", 0) + 20)
        if "pattern" in node:  # the pattern bounds the length itself unless maxLength says less
            most = node.get("maxLength", 10 ** 9)
            return st.from_regex(node["pattern"], fullmatch=True).filter(lambda text: shortest <= len(text) <= most)
        return st.text(min_size=shortest, max_size=min(longest, shortest + 20))
    if kind == "array":
        fewest = node.get("minItems", 0)
        return st.lists(valid(node.get("items", {})), min_size=fewest, max_size=node.get("maxItems", fewest + 3))
    properties, extra = node.get("properties", {}), node.get("additionalProperties", True)
    required = set(node.get("required", []))
    optional = {key: valid(value) for key, value in properties.items() if key not in required}
    known = st.fixed_dictionaries({key: valid(properties.get(key, {})) for key in required}, optional=optional)
    if extra is False:
        return known
    others = st.dictionaries(st.text(max_size=8).filter(lambda key: key not in properties),
                             JSON if extra is True else valid(extra), max_size=3)
    return st.builds(lambda first, second: {**second, **first}, known, others)


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    """document with one value replaced, one entry dropped or one added, somewhere inside."""
    if isinstance(document, dict) and document and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(document)))
        return {**document, key: draw(mutated(document[key]))}
    if isinstance(document, list) and document and draw(st.booleans()):
        index = draw(st.integers(0, len(document) - 1))
        return [*document[:index], draw(mutated(document[index])), *document[index + 1:]]
    change = draw(st.sampled_from(["replace", "drop", "add"]))
    if change == "drop" and isinstance(document, dict) and document:
        return without(document, draw(st.sampled_from(sorted(document))))
    if change == "drop" and isinstance(document, list) and document:
        return document[:-1]
    if change == "add" and isinstance(document, dict):
        return {**document, draw(st.text(max_size=8)): draw(JSON)}
    if change == "add" and isinstance(document, list):
        return [*document, draw(JSON)]
    near: list[Any] = []
    if isinstance(document, str):
        near = [document + "\n", "\n" + document, document[:-1], document + "x", document.upper(), document * 3]
    elif isinstance(document, (int, float)) and not isinstance(document, bool):
        near = [float(document), -document, document - 1, document + 0.5, bool(document)]
    if draw(st.booleans()) and near:
        return draw(st.sampled_from(near))
    return draw(ANY_VALUE)


def shaped(node: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Objects with the schema's own keys holding random values: past the top-level type check, at least."""
    names = sorted(node.get("properties", {})) or ["x"]
    return st.dictionaries(st.sampled_from(names) | st.text(max_size=4), JSON, max_size=len(names) + 1)


# Built once: Hypothesis checks a strategy each time one is made, which costs more than drawing from it.
VALID = {name: valid(SCHEMAS[name]) for name in NAMES}
SHAPED = {name: JSON | shaped(SCHEMAS[name]) for name in NAMES}

# The hand-written corpus: a valid document per schema, and what each change to it must do.
BASE: dict[str, dict[str, Any]] = {
    "task": {"id": "t1", "prompt": "x"},
    "fleet-task": {"role": "frontend", "task": {"id": "t1", "prompt": "x"}},
    "fleet-result": {"node": "beta", "worker": "lea", "result": {"id": "t1"}},
    "fleet-workers": {"updated": 1.5, "workers": [{"node": "beta", "worker": "lea", "role": "frontend", "fresh": True,
                                                   "pending": 0, "updated": 1.5}]},
    "result": {"id": "t1", "worker": "marie", "status": "ok", "output": "hi", "reason": "", "attempt": 1,
               "started": 1.5, "finished": 2},
    "heartbeat": {"agent": "marie", "kind": "worker", "status": "idle", "task": None, "updated": 1.5, "interval": 5,
                  "completed": 0, "pid": 123},
    "gateway-usage": {"agents": {"marie": {"requests": 3, "sent": 10, "received": 20, "status": {"200": 3},
                                           "last": "2026-01-01T00:00:00Z"}}, "since": [1700000000, 5]},
    "egress-usage": {"agents": {"fabien": {"tunnels": 2, "refused": {"private": 1}, "last": "2026-01-01T00:00:00"}},
                     "since": [1700000000, 5]},
    "disk-usage": {"updated": 1.5, "complete": True, "agents": {"lea": {
        "bytes": 4096, "files": 2, "bound_bytes": 67108864, "bound_files": 100, "over": False, "stopped": False}}},
    "proposal": {"id": "t1", "worker": "marie", "base": "a" * 40, "head": "b" * 40, "summary": "did it",
                 "commits": [{"id": "b" * 40, "subject": "v2"}], "files": [{"path": "app.py", "added": 1, "deleted": 1}]},
}
CHANGES: dict[str, list[tuple[str, dict[str, Any], bool]]] = {
    "fleet-result": [
        ("a node with - and _", {"node": "host-2_b"}, True),
        ("a node with a subject separator", {"node": "beta.x"}, False),
        ("a node of 64 characters", {"node": "n" * 64}, False),
        ("a worker of 31 characters", {"worker": "w" * 31}, True),
        ("a worker of 32 characters", {"worker": "w" * 32}, False),
        ("a worker with a terminal escape", {"worker": "lea\x1b[2J"}, False),
        ("a result that is a string", {"result": "ok"}, False),
        ("no node", {"node": None}, False),
        ("an extra property", {"submitted_by": "beta"}, False),
    ],
    "fleet-workers": [
        ("no worker at all", {"workers": []}, True),
        ("a worker without a role", {"workers": [{"node": "b", "worker": "lea", "role": "", "fresh": False, "pending": 2,
                                                  "updated": 1}]}, True),
        ("a role with a terminal escape", {"workers": [{"node": "b", "worker": "lea", "role": "\x1b[2J", "fresh": True,
                                                        "pending": 0, "updated": 1}]}, False),
        ("fresh as a string", {"workers": [{"node": "b", "worker": "lea", "role": "", "fresh": "yes", "pending": 0,
                                            "updated": 1}]}, False),
        ("a negative backlog", {"workers": [{"node": "b", "worker": "lea", "role": "", "fresh": True, "pending": -1,
                                             "updated": 1}]}, False),
        ("1025 workers", {"workers": [{"node": "b", "worker": "lea", "role": "", "fresh": True, "pending": 0,
                                       "updated": 1}] * 1025}, False),
        ("a worker missing its node", {"workers": [{"worker": "lea", "role": "", "fresh": True, "pending": 0,
                                                    "updated": 1}]}, False),
    ],
    "fleet-task": [
        ("to a worker (the relay refuses both to and role)", {"to": "marie"}, True),
        ("a role of 32 characters", {"role": "r" * 32}, True),
        ("a role of 33 characters", {"role": "r" * 33}, False),
        ("a worker in capitals", {"to": "Marie"}, False),
        ("a role with a subject wildcard", {"role": "front.>"}, False),
        ("a task that is a string", {"task": "t1"}, False),
        ("an extra property", {"node": "beta"}, False),
    ],
    "task": [
        ("every optional field", {"backend": "ollama", "submitted": 1.5, "submitted_by": "ops"}, True),
        ("an id of 64 characters with . _ -", {"id": "a._-" * 16}, True),
        ("a prompt of exactly maxLength", {"prompt": "p" * 200000}, True),
        ("submitted as an integer", {"submitted": 17}, True),
        ("an id with a trailing newline", {"id": "t1\n"}, False),
        ("an id with a leading newline", {"id": "\nt1"}, False),
        ("an empty id", {"id": ""}, False),
        ("an id of 65 characters", {"id": "a" * 65}, False),
        ("an id starting with a dot", {"id": ".t1"}, False),
        ("an id with a path separator", {"id": "../t1"}, False),
        ("an id that is a number", {"id": 5}, False),
        ("an empty prompt", {"prompt": ""}, False),
        ("a prompt over maxLength", {"prompt": "p" * 200001}, False),
        ("a prompt that is a list", {"prompt": ["x"]}, False),
        ("a prompt of null", {"prompt": None}, False),
        ("an unknown backend", {"backend": "gpt"}, False),
        ("a backend in the wrong case", {"backend": "Claude"}, False),
        ("submitted as a string", {"submitted": "now"}, False),
        ("submitted as a boolean", {"submitted": True}, False),
        ("submitted_by over maxLength", {"submitted_by": "u" * 65}, False),
        ("an extra property", {"shell": "rm -rf /"}, False),
    ],
    "result": [
        ("attempt 0 and a task", {"attempt": 0, "task": {"id": "t1", "prompt": "x"}}, True),
        ("attempt as 1.0", {"attempt": 1.0}, True),
        ("a worker name of 31 characters", {"worker": "m" * 31}, True),
        ("attempt as true", {"attempt": True}, False),
        ("attempt as 1.5", {"attempt": 1.5}, False),
        ("attempt below minimum", {"attempt": -1}, False),
        ("attempt as a string", {"attempt": "1"}, False),
        ("a worker name of 32 characters", {"worker": "m" * 32}, False),
        ("a worker name in capitals", {"worker": "Marie"}, False),
        ("a worker name with a trailing newline", {"worker": "marie\n"}, False),
        ("an unknown status", {"status": "done"}, False),
        ("a task that is a list", {"task": []}, False),
        ("a task that is a string", {"task": "t1"}, False),
        ("started of null", {"started": None}, False),
        ("an extra property", {"tokens": 5}, False),
    ],
    "heartbeat": [
        ("a task and the monitor's stale list", {"task": "t1", "stale": ["bob", "x-1"]}, True),
        ("an empty stale list", {"stale": []}, True),
        ("a fractional interval", {"interval": 0.5}, True),
        ("pid as 7.0", {"pid": 7.0}, True),
        ("interval 0", {"interval": 0}, False),
        ("interval negative", {"interval": -1}, False),
        ("completed below minimum", {"completed": -1}, False),
        ("completed as false", {"completed": False}, False),
        ("pid as 7.5", {"pid": 7.5}, False),
        ("a task that is a number", {"task": 5}, False),
        ("an agent name with a trailing newline", {"agent": "marie\n"}, False),
        ("stale as a string", {"stale": "bob"}, False),
        ("stale holding a number", {"stale": [1]}, False),
        ("a status with a trailing space", {"status": "idle "}, False),
        ("updated as a string", {"updated": "1.5"}, False),
        ("an extra property", {"load": 0.1}, False),
    ],
    "gateway-usage": [
        ("no agents", {"agents": {}}, True),
        ("a caller that is not an agent", {"agents": {"(not an agent)": {"requests": 0, "sent": 0, "received": 0,
                                                                          "status": {}, "last": ""}}}, True),
        ("since as whole floats", {"since": [1.0, 2.0]}, True),
        ("since with one item", {"since": [1]}, False),
        ("since with three items", {"since": [1, 2, 3]}, False),
        ("since with a negative item", {"since": [1, -1]}, False),
        ("since with a fraction", {"since": [1, 2.5]}, False),
        ("since with a boolean", {"since": [1, True]}, False),
        ("agents as a list", {"agents": []}, False),
        ("an agent that is a number", {"agents": {"marie": 3}}, False),
        ("an agent without last", {"agents": {"marie": {"requests": 3, "sent": 1, "received": 2, "status": {}}}},
         False),
        ("an agent with an extra field", {"agents": {"marie": {**BASE["gateway-usage"]["agents"]["marie"], "x": 1}}},
         False),
        ("a negative status count", {"agents": {"marie": {**BASE["gateway-usage"]["agents"]["marie"],
                                                          "status": {"200": -1}}}}, False),
        ("a status count as a string", {"agents": {"marie": {**BASE["gateway-usage"]["agents"]["marie"],
                                                            "status": {"200": "3"}}}}, False),
        ("last over maxLength", {"agents": {"marie": {**BASE["gateway-usage"]["agents"]["marie"], "last": "l" * 65}}},
         False),
        ("tokens and refusals by rule", {"agents": {"marie": {**BASE["gateway-usage"]["agents"]["marie"], "tokens": 13,
                                                              "refused": {"rate": 1}}}}, True),
        ("negative tokens", {"agents": {"marie": {**BASE["gateway-usage"]["agents"]["marie"], "tokens": -1}}}, False),
    ],
    "egress-usage": [
        ("no agents", {"agents": {}}, True),
        ("an agent without refusals", {"agents": {"fabien": {"tunnels": 0, "refused": {}, "last": ""}}}, True),
        ("an agent without tunnels", {"agents": {"fabien": {"refused": {}, "last": ""}}}, False),
        ("a negative refusal count", {"agents": {"fabien": {"tunnels": 0, "refused": {"private": -1}, "last": ""}}}, False),
        ("a refusal count as a string", {"agents": {"fabien": {"tunnels": 0, "refused": {"private": "1"}, "last": ""}}},
         False),
        ("an agent with an extra field", {"agents": {"fabien": {**BASE["egress-usage"]["agents"]["fabien"], "x": 1}}},
         False),
        ("last over maxLength", {"agents": {"fabien": {**BASE["egress-usage"]["agents"]["fabien"], "last": "l" * 65}}},
         False),
        ("since with three items", {"since": [1, 2, 3]}, False),
    ],
    "disk-usage": [
        ("no agents", {"agents": {}}, True),
        ("an incomplete count", {"complete": False}, True),
        ("complete as a string", {"complete": "true"}, False),
        ("an agent without stopped", {"agents": {"lea": {k: v for k, v in BASE["disk-usage"]["agents"]["lea"].items()
                                                         if k != "stopped"}}}, False),
        ("negative bytes", {"agents": {"lea": {**BASE["disk-usage"]["agents"]["lea"], "bytes": -1}}}, False),
        ("over as a number", {"agents": {"lea": {**BASE["disk-usage"]["agents"]["lea"], "over": 1}}}, False),
        ("an extra field", {"note": "x"}, False),
    ],
    "proposal": [
        ("no commits and no files", {"commits": [], "files": []}, True),
        ("a binary file (no line counts)", {"files": [{"path": "a.bin", "added": None, "deleted": None}]}, True),
        ("a base that is not a commit id", {"base": "main"}, False),
        ("a head in capitals", {"head": "B" * 40}, False),
        ("a head with a trailing newline", {"head": "b" * 40 + "\n"}, False),
        ("a commit without a subject", {"commits": [{"id": "b" * 40}]}, False),
        ("a subject over maxLength", {"commits": [{"id": "b" * 40, "subject": "s" * 201}]}, False),
        ("201 commits", {"commits": [{"id": "b" * 40, "subject": ""}] * 201}, False),
        ("a negative line count", {"files": [{"path": "a", "added": -1, "deleted": 0}]}, False),
        ("a worker with a path", {"worker": "../anga"}, False),
    ],
}


# Every base also loses each field in turn (invalid only when required) and is replaced by a non-object.
LABELLED = [pytest.param(name, document, verdict, id=f"{name}: {label}") for name in NAMES if name in BASE
            for label, document, verdict in [
                ("the base document", BASE[name], True),
                *[(label, {**BASE[name], **change}, verdict) for label, change, verdict in CHANGES.get(name, [])],
                *[(f"without {key}", without(BASE[name], key), key not in SCHEMAS[name].get("required", []))
                  for key in SCHEMAS[name].get("properties", {})],
                *[(f"top level {value!r}", value, False) for value in (None, True, 1, 1.0, "x", [], [BASE[name]])
                  if SCHEMAS[name].get("type") == "object"],
            ]]
# Crosscheck only: each field of each base holding each tricky value.
DERIVED = [pytest.param(name, {**BASE[name], key: value}, id=f"{name}: {key} = {value!r:.20}")
           for name in NAMES if name in BASE for key in SCHEMAS[name].get("properties", {}) for value in TRICKY]


@pytest.mark.parametrize(("name", "document", "verdict"), LABELLED)
def test_a_hand_written_document_gets_its_verdict_from_both_validators(name: str, document: Any, verdict: bool) -> None:
    assert agree(name, document) is verdict


@pytest.mark.parametrize(("name", "document"), DERIVED)
def test_a_field_holding_a_tricky_value_gets_the_same_verdict_from_both_validators(name: str, document: Any) -> None:
    agree(name, document)


@pytest.mark.parametrize("name", NAMES)
def test_every_schema_has_a_hand_written_corpus(name: str) -> None:
    if name not in BASE:
        pytest.skip(f"{name}.schema.json has no hand-written documents here yet; Hypothesis still checks it")


@pytest.mark.parametrize("name", NAMES)
def test_every_keyword_a_schema_uses_is_one_our_validator_implements(name: str) -> None:
    def used(node: dict[str, Any]) -> set[str]:
        return set(node).union(*(used(child) for child in children(node)))
    assert used(SCHEMAS[name]) - ANNOTATIONS <= schema.KEYWORDS


def test_jsonschema_alone_lets_a_trailing_newline_past_a_dollar_anchor() -> None:
    anchored = {"type": "string", "pattern": "^[a-z]+$"}
    assert Draft202012Validator(anchored).is_valid("abc\n"), "jsonschema now follows ECMA 262: drop ecma()"
    assert not Draft202012Validator(ecma(anchored)).is_valid("abc\n")
    assert schema.errors("abc\n", anchored) == ["document: 'abc\\n' does not match ^[a-z]+$"]


OTHER: list[tuple[dict[str, Any], Any, bool]] = [
    ({"type": "boolean"}, True, True), ({"type": "boolean"}, 0, False), ({"type": "number"}, False, False),
    ({"type": ["integer", "null"]}, 1e300, True), ({"type": "integer"}, 0.5, False),
    ({"enum": [1, "a"]}, True, False), ({"enum": [1, "a"]}, 1.0, True), ({"enum": [[0]]}, [False], False),
    ({"enum": [{"a": 1}]}, {"a": 1.0}, True), ({"enum": [None]}, 0, False),
    ({"pattern": "^[$]x$"}, "$x", True), ({"pattern": "^[$]x$"}, "$x\n", False), ({"pattern": r"\$$"}, "a$", True),
    ({"pattern": r"\$$"}, "a$\n", False), ({"pattern": "a$|^b"}, "a\n", False), ({"pattern": "a$|^b"}, "b\n", True),
]


@pytest.mark.parametrize(("node", "value", "verdict"), OTHER, ids=[f"{node} {value!r}" for node, value, _ in OTHER])
def test_keywords_and_values_the_schema_files_lack_yet_get_jsonschemas_verdict(node: dict[str, Any], value: Any,
                                                                                verdict: bool) -> None:
    assert (schema.errors(value, node) == []) is verdict
    if not (isinstance(value, str) and value.endswith("\n")):  # else ECMA's $ decides, not Python's
        assert Draft202012Validator(node).is_valid(value) is verdict


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_a_random_json_value_gets_the_same_verdict(name: str, data: st.DataObject) -> None:
    agree(name, data.draw(SHAPED[name]))


@pytest.mark.parametrize("name", NAMES)
@FAST
@given(data=st.data())
def test_a_generated_valid_document_and_the_same_with_one_change_get_the_same_verdict(name: str,
                                                                                       data: st.DataObject) -> None:
    document = data.draw(VALID[name])
    assert agree(name, document), "the generator made an invalid document"
    agree(name, data.draw(mutated(document)))
