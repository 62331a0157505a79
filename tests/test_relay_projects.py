"""Project work across hosts, on a real nats-server with real runtime workers: a goal's task goes to a
worker of another host with its base (a commit no mirror has) and comes back with its proposal,
which the goal's host integrates; a role's project task goes only to a worker with the project;
a proposal whose files are not what they claim is never stored."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import nats
import pytest
from agentfleet import agentctl
from agentfleet.fleet import Fleet
from agentfleet.proposals import has_commit
from agentfleet.team import integrate
from agentfleet_files import put_file
from agentfleet_relay import Local, Relay
from runtime_helpers import git_run, make_tree, source_repository, start_worker
from test_relay import fixture_server, run_relays, stop  # noqa: F401  # pylint: disable=unused-import

ME = os.getuid()
pytestmark = pytest.mark.skipif(subprocess.run(["sh", "-c", "command -v nats-server"], capture_output=True,
                                               check=False).returncode != 0,
                                reason="Debian's nats-server is not installed (scripts/test installs it)")


def host(root: Path, node: str, workers: dict[str, str], projects: dict[str, list[str]], source: Path) -> Local:
    """A host of the fleet with an orchestrator, workers (name -> role) and the project shop mirrored."""
    tree = make_tree(root / node, list(workers), ("orchestrator", "monitor"))
    for name in ("outbox", "fleet", "projects", "integration/shop"):
        (tree / name).mkdir(parents=True)
    subprocess.run(["git", "clone", "--quiet", "--bare", str(source), str(tree / "projects" / "shop")], check=True)
    agents = {name: ME for name in [*workers, "orchestrator", "monitor"]}
    return Local(Fleet(tree, agents, interval=0.5), workers, root / f"{node}-state", ME, projects=projects)


def worker(local: Local, name: str, script: str, log: Path) -> subprocess.Popen[str]:
    mirrors = {"shop": str(local.fleet.root / "projects" / "shop")}
    return start_worker(local.fleet.root, name, ["sh", "-c", script], log=log, AGENTFLEET_STOP_GRACE="1",
                        AGENTFLEET_PROJECTS=json.dumps(mirrors))


def done(local: Local, ident: str) -> object:
    async def back() -> bool:
        return (local.fleet.root / "fleet" / f"{ident}.json").exists()
    return back


def test_a_goals_task_crosses_hosts_with_its_base_and_its_proposal_is_integrated_at_home(
        server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "source"
    source_repository(source, "shop.py", "TITLE = 'shop'\nPRICE = 1\n")
    alpha = host(tmp_path, "alpha", {"marie": "frontend"}, {"marie": ["shop"]}, source)
    beta = host(tmp_path, "beta", {"lea": "frontend"}, {"lea": ["shop"]}, source)
    # The goal's checkout on alpha has a commit no mirror has: the base of the delegated task.
    checkout = tmp_path / "checkout"
    git_run(tmp_path, "clone", "--quiet", str(alpha.fleet.root / "projects" / "shop"), str(checkout))
    (checkout / "shop.py").write_text("TITLE = 'shop'\nPRICE = 2\n")
    git_run(checkout, "commit", "--quiet", "-am", "the goal's own work")
    base = git_run(checkout, "rev-parse", "HEAD").strip()
    assert not has_commit(beta.fleet.root / "projects" / "shop", base)  # without its bundle lea could not start
    monkeypatch.setenv("AGENTFLEET_GOAL", "goal-1")
    monkeypatch.chdir(checkout)
    target, ident = agentctl.submit(alpha.fleet, "title case", "lea", {"project": "shop", "base": base})
    assert target == "fleet:lea" and (alpha.fleet.root / "outbox" / f"{ident}.base.bundle").is_file()
    processes = [worker(beta, "lea", "sed -i s/shop/Shop/ shop.py", tmp_path / "lea.log")]
    try:
        asyncio.run(run_relays(server, {"alpha": alpha, "beta": beta}, done(alpha, ident)))
    finally:
        stop(processes)
    assert (beta.fleet.root / "inbox" / "lea" / f"{ident}.base.bundle").is_file()
    back = json.loads((alpha.fleet.root / "fleet" / f"{ident}.json").read_text())
    assert (back["node"], back["worker"], back["result"]["status"]) == ("beta", "lea", "ok"), back
    assert back["result"]["proposal"] == f"{ident}.proposal.json"
    assert not list((alpha.fleet.root / "outbox").iterdir())
    assert json.loads((alpha.fleet.root / "fleet" / f"{ident}.sent.json").read_text())["task"]["base"] == base
    # agentctl diff finds the task's project (and so the base's commits) from the task as sent.
    assert agentctl.main(["--root", str(alpha.fleet.root), "diff", ident]) == 0
    shown = capsys.readouterr().out
    assert f"proposal {ident} of lea" in shown and "-TITLE = 'shop'" in shown and "+TITLE = 'Shop'" in shown, shown
    merged = integrate(alpha.fleet, checkout, ident, "orchestrator")
    assert git_run(checkout, "show", f"{merged}:shop.py") == "TITLE = 'Shop'\nPRICE = 2\n"
    assert git_run(checkout, "log", "--format=%an", "-1", f"{merged}^2") == "lea\n"


def test_a_roles_project_task_goes_only_to_a_worker_with_the_project(server: str, tmp_path: Path) -> None:
    source = tmp_path / "source"
    head = source_repository(source, "shop.py", "TITLE = 'shop'\n")
    alpha = host(tmp_path, "alpha", {"marie": "frontend"}, {"marie": []}, source)
    beta = host(tmp_path, "beta", {"lea": "frontend"}, {"lea": ["shop"]}, source)
    outbox = alpha.fleet.root / "outbox"
    for ident, extra in (("with-shop", {"project": "shop", "base": head}), ("plain", {})):
        task = {"id": ident, "prompt": "x", **extra}
        (outbox / f"{ident}.json").write_text(json.dumps({"role": "frontend", "task": task}))
    processes = [worker(alpha, "marie", "true", tmp_path / "marie.log"), worker(beta, "lea", "true", tmp_path / "lea.log")]
    results = alpha.fleet.root / "fleet"
    try:
        # alpha alone first: marie, idle, takes the plain task (the control) and never the project task.
        seen: list[float] = []

        async def plain_then_two_seconds() -> bool:
            if (results / "plain.json").exists():
                seen.append(time.monotonic())
            return bool(seen) and time.monotonic() - seen[0] > 2
        asyncio.run(run_relays(server, {"alpha": alpha}, plain_then_two_seconds, timeout=30))
        assert (results / "plain.json").exists() and not (results / "with-shop.json").exists()
        asyncio.run(run_relays(server, {"alpha": alpha, "beta": beta}, done(alpha, "with-shop")))
    finally:
        stop(processes)
    ran = {ident: json.loads((results / f"{ident}.json").read_text())["worker"] for ident in ("with-shop", "plain")}
    assert ran == {"with-shop": "lea", "plain": "marie"}
    assert not (alpha.fleet.root / "inbox" / "marie" / "with-shop.json").exists()


def test_agentctl_refuses_a_project_task_no_worker_of_the_fleet_can_take(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "alpha", ["marie"])
    for name in ("outbox", "fleet"):
        (root / name).mkdir()
    view = {"updated": 1.0, "workers": [{"node": "beta", "worker": "lea", "role": "frontend", "fresh": True, "pending": 0,
                                         "updated": 1.0, "projects": ["shop"]}]}
    (root / "fleet" / "_workers.json").write_text(json.dumps(view))
    fleet = Fleet(root, {"marie": ME})
    project = {"project": "crm", "base": "0" * 40}
    with pytest.raises(SystemExit, match="--project crm: no worker of role frontend in the fleet has it"):
        agentctl.submit_to_fleet(fleet, "x", {"role": "frontend"}, project)
    with pytest.raises(SystemExit, match="--project crm: no worker named lea in the fleet has it"):
        agentctl.submit_to_fleet(fleet, "x", {"to": "lea"}, project)
    assert agentctl.submit_to_fleet(fleet, "x", {"to": "lea"}, {"project": "shop", "base": "0" * 40})[0] == "fleet:lea"


def test_a_proposal_whose_files_are_not_what_they_claim_is_never_stored(
        server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Another host's bytes: a manifest naming another worker, a bundle under its digest, a missing
    bundle: each result is kept without its proposal, and said."""
    source = tmp_path / "source"
    head = source_repository(source, "shop.py", "x\n")
    alpha = host(tmp_path, "alpha", {"marie": "frontend"}, {}, source)
    result = {"worker": "lea", "status": "ok", "output": "x", "reason": "", "attempt": 1, "started": 1.0, "finished": 2.0}
    manifest = {"base": head, "head": head, "summary": "", "commits": [{"id": head, "subject": "s"}], "files": []}
    cases = {"other-worker": {**manifest, "worker": "eve"}, "no-bundle": {**manifest, "worker": "lea"},
             "bad-digest": {**manifest, "worker": "lea"}}

    async def publish() -> None:
        client = await nats.connect(server)
        js = client.jetstream()
        for ident, document in cases.items():
            alpha.mark("sent", ident)
            await put_file(js, "beta", "manifest", f"alpha.{ident}", json.dumps({**document, "id": ident}).encode())
            if ident == "bad-digest":
                await put_file(js, "beta", "bundle", f"alpha.{ident}", b"a bundle")
                await js.publish(f"fleet.file.beta.bundle.alpha.{ident}.0", b"a bundlX")  # as long, other bytes: the newest wins
            payload = {"node": "beta", "worker": "lea", "result": {**result, "id": ident, "proposal": f"{ident}.proposal.json"}}
            await js.publish(f"fleet.result.beta.alpha.{ident}", json.dumps(payload).encode())
        await client.close()
    asyncio.run(publish())

    async def all_back() -> bool:
        return all((alpha.fleet.root / "fleet" / f"{ident}.json").exists() for ident in cases)
    asyncio.run(run_relays(server, {"alpha": alpha}, all_back))
    said = capsys.readouterr().err
    for ident, reason in (("other-worker", "names another task or worker"), ("no-bundle", "commits without a bundle"),
                          ("bad-digest", "its bytes do not match its index")):
        kept = json.loads((alpha.fleet.root / "fleet" / f"{ident}.json").read_text())["result"]
        assert "proposal" not in kept and not (alpha.fleet.root / "fleet" / f"{ident}.bundle").exists()
        assert f"fleet.file.beta.manifest.alpha.{ident}" in said and reason in said, said


def test_no_base_is_asked_for_a_project_no_worker_here_takes(tmp_path: Path) -> None:
    """The host may not read such a base (its NATS permissions name its projects only): asking would
    time out and redeliver the task for ever; the worker's result says what it lacks instead."""
    source = tmp_path / "source"
    head = source_repository(source, "shop.py", "x\n")
    beta = host(tmp_path, "beta", {"lea": "frontend"}, {"lea": ["crm"]}, source)

    class NoServer:
        async def get_msg(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("asked for a base")
    relay = Relay(NoServer(), None, beta, "beta")
    task = {"id": "t1", "prompt": "x", "project": "shop", "base": head}
    assert asyncio.run(relay.base_of(task, "alpha")) is None
