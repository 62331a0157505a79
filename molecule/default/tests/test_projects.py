"""Projects: the host's mirror, readable by the project's workers only, and a project task that
ends in a proposal the trusted side imports (the first part of team work)."""

from __future__ import annotations

import json
import shlex
from typing import Any

import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
MIRROR = "/srv/agentfleet/projects/shop"
INSIDE = "/agentfleet/projects/shop"
READERS = ("anga", "lea", "marie", "orchestrator")
OTHERS = ("fabien", "monitor", "olga")
IMPORT = """
import sys
sys.path.insert(0, "/opt/agentfleet/runtime")
from pathlib import Path
from agentfleet.proposals import import_proposal
bundle, uid, repo, worker, ident, base = sys.argv[1:]
print(import_proposal(Path(bundle), int(uid), Path(repo), worker, ident, base))
"""


def mounts(host: testinfra.host.Host, agent: str) -> dict[str, Any]:
    found = json.loads(host.check_output(f"docker inspect agentfleet-{agent}-1"))[0]["Mounts"]
    return {mount["Destination"]: mount for mount in found}


def base(host: testinfra.host.Host) -> str:
    return str(host.check_output(f"git -C {MIRROR} rev-parse refs/heads/main")).strip()


def test_the_mirror_is_the_projects_and_only_its_group_may_read_it(host: testinfra.host.Host) -> None:
    mirror = host.file(MIRROR)
    assert (mirror.user, mirror.group, mirror.mode) == ("root", "agentfleet-project-shop", 0o750)
    assert base(host) == host.check_output("git -C /opt/agentfleet-test/shop.git rev-parse refs/heads/main").strip()
    members = host.check_output("getent group agentfleet-project-shop").split(":")[3].split(",")
    assert sorted(members) == ["agent-anga", "agent-lea", "agent-marie", "agent-orchestrator"]


def test_the_mirror_is_mounted_read_only_into_its_readers_and_nowhere_else(host: testinfra.host.Host) -> None:
    for agent in READERS:
        assert mounts(host, agent)[INSIDE]["RW"] is False, agent
    for agent in OTHERS:
        assert INSIDE not in mounts(host, agent), agent


def test_a_project_task_ends_in_a_proposal_the_host_imports(host: testinfra.host.Host) -> None:
    start = base(host)
    submitted = host.run(f"agentctl submit --to lea --project shop --base {start} --wait 120 'add a discount'")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    ident, result = submitted.stdout.split()[1], json.loads(submitted.stdout.split("\n", 1)[1])
    assert result["status"] == "ok" and result["proposal"] == f"{ident}.proposal.json", result
    manifest = json.loads(host.file(f"/srv/agentfleet/results/lea/{ident}.proposal.json").content_string)
    assert [entry["path"] for entry in manifest["files"]] == ["lea-was-here.txt"] and manifest["base"] == start
    repo = f"/tmp/agentfleet-integration-{ident}"
    host.check_output(f"git clone --quiet --bare {MIRROR} {repo}")
    imported = host.run(f"python3 -I -c {shlex.quote(IMPORT)} /srv/agentfleet/results/lea/{ident}.bundle 10005 "
                        f"{repo} lea {ident} {start}")
    assert imported.rc == 0, imported.stderr
    head = imported.stdout.strip()
    assert host.check_output(f"git -C {repo} show {head}:lea-was-here.txt").strip() == "add a discount"
    assert host.check_output(f"git -C {repo} rev-parse refs/proposals/lea/{ident}").strip() == head
    host.run(f"rm -rf {repo}")


def test_a_worker_cannot_write_or_push_to_the_mirror(host: testinfra.host.Host) -> None:
    # A push is a write of objects and a ref file: both refused, by the read-only mount or (under
    # gVisor, which checks the modes first) by the root-owned 0750 mirror, never for another reason.
    attempts = {"a file": f"touch {INSIDE}/planted",
                "a ref": f"echo {'0' * 40} > {INSIDE}/refs/heads/evil"}
    for label, command in attempts.items():
        done = host.run(f"docker exec agentfleet-lea-1 sh -c {shlex.quote(command)}")
        refused = "Read-only file system" in done.stderr or "Permission denied" in done.stderr
        assert done.rc != 0 and refused, (label, done.stderr)
    assert host.run(f"git -C {MIRROR} rev-parse --verify --quiet refs/heads/evil").rc != 0
    # File modes alone hold too: the mirror mounted read-write into lea's uid and groups is still not hers.
    image = host.check_output("docker inspect -f '{{.Config.Image}}' agentfleet-lea-1")
    rw = f"docker run --rm --entrypoint '' -v {MIRROR}:/m:rw --group-add 10950 {image}"
    as_lea = host.run(f"{rw.replace('docker run', 'docker run --user 10005:10005')} touch /m/planted")
    assert as_lea.rc != 0 and "Permission denied" in as_lea.stderr, as_lea.stderr
    # The control: the same mount as root writes, so the refusal above was the file modes'.
    assert host.run(f"{rw.replace('docker run', 'docker run --user 0:0')} sh -c 'touch /m/planted && rm /m/planted'").rc == 0


def test_a_worker_outside_the_project_has_no_checkout_of_it(host: testinfra.host.Host) -> None:
    submitted = host.run(f"agentctl submit --to fabien --project shop --base {base(host)} --wait 60 'look around'")
    result = json.loads(submitted.stdout.split("\n", 1)[1])
    assert result["status"] == "rejected" and "not one of this worker's projects []" in result["reason"], result
