"""Everything an agent writes is hostile input: a real worker (olga, on runc) plants bad files in
her own results, heartbeat, logs, workspace and the shared common directory, and the trusted side
(monitor, agentctl on the host and in the orchestrator, the audit, the healthcheck) survives it.

Each attack has its control: the same planted file does what it was made to do to the way the
trusted side read it before (python3 without -I in an agent-writable directory).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
ROOT = Path(__file__).resolve().parents[3]
# The filters import the collection's module_utils: collections/ holds the repository as agentfleet.fleet.
sys.path[:0] = [str(ROOT / "plugins" / "filter"), str(ROOT / "collections")]
from agent_audit import agent_audit_reports  # noqa: E402

TREE = "/srv/agentfleet"
HOSTILE = "olga"
CONTAINER = f"agentfleet-{HOSTILE}-1"
PROBE = "/opt/agentfleet-test/agentfleet_probe.py"
ESCAPES = "\x1b]0;pwned\x07\x1b[2J"
# Bad results, each refused for its reason (file name -> the reason agentctl and the monitor give).
REFUSED = {"hostile-zero.json": "a symlink", "hostile-link.json": "a symlink", "hostile-fifo.json": "a FIFO",
           "hostile-socket.json": "a socket", "hostile-deep.json": "nested deeper than",
           "hostile-wide.json": "items, over the limit",
           "hostile-big.json": "over the limit", "hostile-list.json": "expected object",
           "hostile-typed.json": "finished: expected number", "hostile-impersonate.json": "is not the directory's agent",
           "hostile-traversal.json": "id:", "\x1b[31mhostile-name.json": "not <id>.json"}
PLANT_RESULTS = f"""
import json, os, socket
results = "/agentfleet/results/{HOSTILE}"
def put(name, data):
    with open(os.path.join(results, name), "wb") as handle:
        handle.write(data)
def result(ident, **fields):
    return json.dumps({{"id": ident, "worker": "{HOSTILE}", "status": "ok", "output": "", "reason": "", "attempt": 1,
                       "started": 0.0, "finished": 0.0, **fields}}).encode()
os.symlink("/dev/zero", results + "/hostile-zero.json")
os.symlink("/agentfleet/heartbeats/anga/heartbeat.json", results + "/hostile-link.json")
os.mkfifo(results + "/hostile-fifo.json")
socket.socket(socket.AF_UNIX).bind(results + "/hostile-socket.json")
put("hostile-deep.json", b"[" * 100 + b"]" * 100)
put("hostile-wide.json", b"[" + b"0," * 500000 + b"0]")
put("hostile-big.json", b" " * (9 * 1024 * 1024))
put("hostile-list.json", b"[1, 2]")
put("hostile-typed.json", result("hostile-typed", finished="x"))
put("hostile-impersonate.json", result("hostile-impersonate", worker="anga"))
put("hostile-traversal.json", result("../../common/pwned"))
put("\\x1b[31mhostile-name.json", result("hostile-name"))
put("hostile-escape.json", result("hostile-escape", reason={ESCAPES!r}))
with open("/agentfleet/logs/{HOSTILE}/gateway-usage.json", "w") as handle:
    json.dump({{"agents": {{"{HOSTILE}": {{"requests": 987654, "sent": 0, "received": 0, "status": {{}}, "last": ""}}}},
               "since": [0, 0]}}, handle)
"""
# Rewrites her own heartbeat with a bad one every 20 ms for a while (her runtime rewrites it too).
BAD_HEARTBEATS = f"""
import os, time
beat, scratch = "/agentfleet/heartbeats/{HOSTILE}/heartbeat.json", "/agentfleet/heartbeats/{HOSTILE}/.bad"
bad = [b"[" * 100000, b"[1]", b'{{"agent": "anga"}}', b'{{"updated": "x"}}', b"\\xff"]
end = time.time() + 12
while time.time() < end:
    for content in bad:
        with open(scratch, "wb") as handle:
            handle.write(content)
        os.replace(scratch, beat)
        time.sleep(0.02)
    os.mkfifo(scratch)
    os.replace(scratch, beat)
    time.sleep(0.02)
"""
# Imported instead of the real module wherever the agent's directory is on sys.path.
SHADOW = ("import sys\n"
          "open('{marker}', 'a').write(' '.join(sys.orig_argv) + '\\n')\n"
          "print({output!r}, flush=True)\n"
          "import os\nos._exit(0)\n")


def sh(host: testinfra.host.Host, command: str) -> Any:
    return host.run(command)


def as_hostile(host: testinfra.host.Host, code: str) -> None:
    result = host.run(f"docker exec {CONTAINER} python3 -I -c {shlex.quote(code)}")
    assert result.rc == 0, result.stderr


def write_as_hostile(host: testinfra.host.Host, path: str, text: str) -> None:
    as_hostile(host, f"import os, sys\nos.makedirs(os.path.dirname({path!r}), exist_ok=True)\n"
                     f"open({path!r}, 'w').write({text!r})")


def state(host: testinfra.host.Host, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(host.check_output(f"docker inspect agentfleet-{name}-1"))[0]["State"]
    return document


@pytest.fixture(scope="module")
def planted(host: testinfra.host.Host) -> Iterator[dict[str, Any]]:
    """The monitor's state before the attack; the bad results planted and archived by the time it yields."""
    before = state(host, "monitor")
    as_hostile(host, PLANT_RESULTS)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and host.run(f"test -f {TREE}/archive/{HOSTILE}/hostile-escape.json").rc:
        time.sleep(1)
    yield before
    host.run(f"docker exec {CONTAINER} sh -c 'rm -rf /agentfleet/results/{HOSTILE}/*hostile-* "
             f"/agentfleet/logs/{HOSTILE}/gateway-usage.json /agentfleet/common/agentfleet'")


def test_the_monitor_survives_and_archives_only_under_the_directorys_agent(host: testinfra.host.Host,
                                                                         planted: dict[str, Any]) -> None:
    after = state(host, "monitor")
    assert after["Running"] and not after["OOMKilled"] and after["StartedAt"] == planted["StartedAt"]
    archived = host.check_output(f"cd {TREE}/archive && find . -name '*hostile*'").split()
    assert archived == [f"./{HOSTILE}/hostile-escape.json"]  # the one valid result, under her name
    assert host.check_output(f"find {TREE} /tmp -name '*pwned*'") == ""
    events = [json.loads(line) for line in host.check_output("docker logs agentfleet-monitor-1 2>&1").splitlines()]
    refused = reasons([event["problem"] for event in events if event["event"] == "invalid-file"],
                      f"/agentfleet/results/{HOSTILE}/")
    for name, reason in REFUSED.items():
        assert reason in refused.get(name, ""), (name, refused)


@pytest.mark.parametrize("where", ["host", "orchestrator"])
def test_agentctl_names_the_bad_files_and_prints_no_raw_escapes(host: testinfra.host.Host, planted: dict[str, Any],
                                                                where: str) -> None:
    prefix, tree = ("", TREE) if where == "host" else ("docker exec agentfleet-orchestrator-1 ", "/agentfleet")
    results = host.run(f"{prefix}agentctl results")
    assert results.rc == 0, results.stderr
    assert f"{HOSTILE}  hostile-escape  ok  \\x1b]0;pwned\\x07\\x1b[2J" in results.stdout
    skipped = reasons([line.removeprefix("agentctl: skipped ") for line in results.stderr.splitlines()],
                      f"{tree}/results/{HOSTILE}/")
    for name, reason in REFUSED.items():
        assert reason in skipped.get(name.encode("unicode_escape").decode(), ""), (name, skipped)
    usage = host.run(f"{prefix}agentctl usage")
    assert usage.rc == 0 and "987654" not in usage.stdout, usage.stdout + usage.stderr
    status = host.run(f"{prefix}agentctl status")
    assert status.rc == 0 and HOSTILE in status.stdout
    for output in (results, usage, status):
        assert not [char for char in output.stdout + output.stderr if not char.isprintable() and char != "\n"]


def test_a_bad_heartbeat_is_named_and_everyone_goes_on(host: testinfra.host.Host, planted: dict[str, Any]) -> None:
    host.check_output(f"docker exec -d {CONTAINER} python3 -I -c {shlex.quote(BAD_HEARTBEATS)}")
    named = []
    for _ in range(5):
        time.sleep(1)
        status = host.run("agentctl status")
        assert status.rc == 0 and "anga" in status.stdout, status.stderr
        named.append(f"skipped {TREE}/heartbeats/{HOSTILE}/heartbeat.json: " in status.stderr)
    assert any(named)
    time.sleep(12)
    assert state(host, "monitor")["StartedAt"] == planted["StartedAt"]
    assert "heartbeats/olga/heartbeat.json" in host.check_output("docker logs agentfleet-monitor-1 2>&1")


def test_an_admin_running_agentctl_inside_the_tree_runs_no_agent_code(host: testinfra.host.Host) -> None:
    shadow = SHADOW.format(marker="/tmp/agentfleet-shadow-ran", output="SHADOWED")
    for module in ("__init__.py", "__main__.py"):
        write_as_hostile(host, f"/agentfleet/common/agentfleet/{module}", shadow)
    status = host.run(f"cd {TREE}/common && PYTHONPATH=. PYTHONSTARTUP=agentfleet/__init__.py agentctl status")
    assert status.rc == 0 and "SHADOWED" not in status.stdout and "AGENT" in status.stdout, status.stderr
    # The control: what the host's agentctl ran before, in the same place, runs the agent's code.
    control = host.run(f"cd {TREE}/common && python3 -m agentfleet ctl status")
    assert "SHADOWED" in control.stdout


def test_an_agent_that_shadows_the_probe_and_its_healthcheck_fails_nothing_it_should(host: testinfra.host.Host) -> None:
    marker = f"/agentfleet/workspaces/{HOSTILE}/shadow-ran"
    forged = json.dumps({"agent": HOSTILE, "rows": []})
    usersite = host.check_output(f"docker exec {CONTAINER} python3 -c 'import site; print(site.getusersitepackages())'").strip()
    try:
        write_as_hostile(host, f"/agentfleet/workspaces/{HOSTILE}/json.py", SHADOW.format(marker=marker, output=forged))
        write_as_hostile(host, f"{usersite}/usercustomize.py", SHADOW.format(marker=marker, output=forged))
        audit = subprocess.run(["ansible-playbook", "-i", inventory(), str(ROOT / "playbooks" / "audit.yml"),
                                "-e", json.dumps({"agent_audit_agents": [HOSTILE]})],
                               capture_output=True, text=True, check=False, timeout=600)
        assert audit.returncode == 0, audit.stdout[-3000:]
        assert f"{HOSTILE:<14} agent_files" in audit.stdout
        healthcheck = state_config(host)["Healthcheck"]["Test"][1:]
        assert host.run(f"docker exec {CONTAINER} {shlex.join(healthcheck)}").rc == 0
        assert host.run(f"docker exec {CONTAINER} test -e {marker}").rc != 0, "the shadow ran in trusted code"
        # The control: the probe run as before (python3 without -I in her workspace) runs her code,
        # and the controller refuses what it printed.
        old = host.run(f"docker exec -i {CONTAINER} python3 - '{{}}' < {PROBE}")
        assert old.stdout.strip() == forged and host.run(f"docker exec {CONTAINER} test -e {marker}").rc == 0
        spec = {"unreachable": {}, "paths": [], "reachable": [], "outside_names": [], "gateway": "", "outside_http": []}
        judged = agent_audit_reports([{"stdout": old.stdout, "rc": old.rc}], [{"agent": HOSTILE, "spec": spec}], "a-nonce")
        assert [row["check"] for row in judged[0]["rows"]] == ["audit_integrity"]
    finally:
        host.run(f"docker exec {CONTAINER} rm -f /agentfleet/workspaces/{HOSTILE}/json.py {marker} {usersite}/usercustomize.py")


def reasons(problems: list[str], directory: str) -> dict[str, str]:
    """file name -> reason, from "PATH: REASON" lines about files in directory."""
    found = {}
    for problem in problems:
        path, _, reason = problem.partition(": ")
        if path.startswith(directory):
            found[path[len(directory):]] = reason
    return found


def inventory() -> str:
    return os.environ.get("MOLECULE_INVENTORY_FILE") or str(Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory")


def state_config(host: testinfra.host.Host) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(host.check_output(f"docker inspect {CONTAINER}"))[0]["Config"]
    return document
