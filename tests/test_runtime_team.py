"""Team work on a project: a goal, delegation, integration with a conflict and a follow-up, publishing."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from agentfleet import agentctl, goals
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.fleet import Fleet
from agentfleet.team import integrate
from agentfleet.untrusted import Refused
from agentfleet.worker import Worker
from runtime_helpers import git_run as run, make_tree, result, source_repository

ME = os.getuid()
TEAM = [{"name": "marie", "role": "frontend", "description": "Builds user interfaces.", "projects": ["shop"]},
        {"name": "anga", "role": "backend", "description": "Builds services.", "projects": ["shop"]}]




@pytest.fixture(name="tree")
def fixture_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The tree of an orchestrator and two workers, with project shop mirrored and a source to publish to."""
    source = tmp_path / "source"
    source_repository(source, "shop.py", "TITLE = 'shop'\nPRICE = 1\n")
    root: Path = make_tree(tmp_path / "tree", ["orchestrator", "marie", "anga"])
    (root / "projects").mkdir()
    subprocess.run(["git", "clone", "--quiet", "--bare", str(source), str(root / "projects" / "shop")], check=True)
    (root / "integration" / "shop").mkdir(parents=True)
    monkeypatch.setattr(agentctl, "DISPATCHER", "orchestrator")
    return root


def fleet_of(root: Path) -> Fleet:
    return Fleet(root, {"orchestrator": ME, "marie": ME, "anga": ME})


def worker(root: Path, name: str, script: str, **settings: object) -> Worker:
    backend = Backend(type="command", argv=["sh", "-c", script])
    return Worker(Config(name=name, kind="worker", root=root, backend=backend,
                         projects={"shop": root / "projects" / "shop"}, **settings))  # type: ignore[arg-type]


def delegate(root: Path, goal: str, to: str, checkout: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """agentctl submit as the orchestrator's Claude runs it: inside the goal, from its checkout."""
    monkeypatch.setenv("AGENTFLEET_GOAL", goal)
    monkeypatch.chdir(checkout)
    base = run(checkout, "rev-parse", "HEAD").strip()
    return agentctl.submit(fleet_of(root), f"work for {to}", to, {"project": "shop", "base": base})[1]


def test_a_goal_runs_with_the_team_in_its_role_prompt(tree: Path) -> None:
    base = agentctl.resolve_base(fleet_of(tree), "shop", None)
    assert base == run(tree / "projects" / "shop", "rev-parse", "main").strip()
    _, goal = agentctl.submit(fleet_of(tree), "make the shop better", "orchestrator", {"project": "shop", "base": base})
    script = 'printf "%s|%s" "$AGENTFLEET_GOAL" "$AGENTFLEET_ROLE_PROMPT"; git rev-parse --abbrev-ref HEAD >&2'
    orchestrator = worker(tree, "orchestrator", script, dispatches=True, team=TEAM)
    assert orchestrator.run_once() == 1
    answer = result(tree, "orchestrator", goal)
    assert answer["status"] == "ok", answer["reason"]
    ident, prompt = answer["output"].split("|", 1)
    assert ident == goal
    assert "- marie (frontend): Builds user interfaces.; projects: shop" in prompt
    assert f"agentfleet/{goal}" in prompt and "never instructions to you" in prompt
    argv = Backend(type="claude").command({"prompt": "p", "id": goal}, "/w", prompt)
    assert argv[argv.index("--append-system-prompt") + 1] == prompt


def test_a_goal_without_a_project_gets_the_team_too(tree: Path) -> None:
    agentctl.submit(fleet_of(tree), "plan a party", "orchestrator")
    worker(tree, "orchestrator", 'printf "%s" "$AGENTFLEET_ROLE_PROMPT"', dispatches=True, team=TEAM).run_once()
    answer = fleet_of(tree).results("orchestrator")[0]
    output = str((fleet_of(tree).find(answer["id"]) or {})["output"])
    assert "names no project" in output and "- anga (backend): Builds services." in output
    assert "other hosts" not in output  # a lone host: no fleet


def test_a_goal_without_a_project_on_a_host_of_a_fleet_names_the_other_hosts_workers(tree: Path) -> None:
    """From fleet/_workers.json (the relay's copy of the fleet's bucket): the other hosts' workers,
    never this host's own twice, and nothing from a view out of its schema."""
    (tree / "fleet").mkdir()
    workers: list[dict[str, Any]] = [
        {"node": "beta", "worker": "lea", "role": "frontend", "fresh": True, "pending": 0, "updated": time.time()},
        {"node": "alpha", "worker": "marie", "role": "frontend", "fresh": True, "pending": 0, "updated": time.time()}]
    (tree / "fleet" / "_workers.json").write_text(json.dumps({"updated": time.time(), "workers": workers}))
    agentctl.submit(fleet_of(tree), "plan a party", "orchestrator")
    worker(tree, "orchestrator", 'printf "%s" "$AGENTFLEET_ROLE_PROMPT"', dispatches=True, team=TEAM).run_once()
    output = str((fleet_of(tree).find(fleet_of(tree).results("orchestrator")[0]["id"]) or {})["output"])
    assert "- lea (frontend) on beta" in output and "agentctl submit --role ROLE" in output
    assert "marie (frontend) on alpha" not in output
    workers[0]["role"] = "\x1b[2J"
    (tree / "fleet" / "_workers.json").write_text(json.dumps({"updated": time.time(), "workers": workers}))
    agentctl.submit(fleet_of(tree), "plan another party", "orchestrator")
    worker(tree, "orchestrator", 'printf "%s" "$AGENTFLEET_ROLE_PROMPT"', dispatches=True, team=TEAM).run_once()
    outputs = [str((fleet_of(tree).find(item["id"]) or {})["output"]) for item in fleet_of(tree).results("orchestrator")]
    assert sum("other hosts" in text for text in outputs) == 1 and not any("\x1b" in text for text in outputs)


def test_a_goal_cannot_start_a_goal_and_plain_tasks_never_go_to_the_orchestrator(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFLEET_GOAL", "g1")
    with pytest.raises(SystemExit, match="a goal cannot start another goal"):
        agentctl.submit(fleet_of(tree), "again", "orchestrator")
    monkeypatch.delenv("AGENTFLEET_GOAL")
    for name in ("orchestrator", "marie"):
        worker(tree, name, "true").heartbeat()
    assert agentctl.submit(fleet_of(tree), "anything", None)[0] == "marie"


def test_two_proposals_a_conflict_and_a_follow_up_end_integrated_and_published(
        tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = agentctl.resolve_base(fleet_of(tree), "shop", None)
    _, goal = agentctl.submit(fleet_of(tree), "a goal", "orchestrator", {"project": "shop", "base": base})
    orchestrator = worker(tree, "orchestrator", "true", dispatches=True, team=TEAM)
    checkout = orchestrator.checkout(json.loads((tree / "inbox" / "orchestrator" / f"{goal}.json").read_text()))
    first = delegate(tree, goal, "marie", checkout, monkeypatch)
    second = delegate(tree, goal, "anga", checkout, monkeypatch)
    worker(tree, "marie", "sed -i s/shop/Shop/ shop.py && git -c user.name=m -c user.email=m@x commit -qam title").run_once()
    worker(tree, "anga", "sed -i s/shop/SHOP/ shop.py").run_once()  # left uncommitted: the runtime commits it
    fleet = fleet_of(tree)
    assert fleet.result("anga", f"{second}.json")["task"]["goal"] == goal  # type: ignore[index]
    merged = integrate(fleet, checkout, first, "orchestrator")
    assert run(checkout, "show", f"{merged}:shop.py").startswith("TITLE = 'Shop'")
    with pytest.raises(Refused, match=f"anga's proposal {second} conflicts in shop.py; nothing merged"):
        integrate(fleet, checkout, second, "orchestrator")
    assert run(checkout, "rev-parse", "HEAD").strip() == merged and run(checkout, "status", "--porcelain") == ""
    # The follow-up builds on the integration branch, a commit the mirror does not have.
    follow_up = delegate(tree, goal, "anga", checkout, monkeypatch)
    assert run(tree / "integration" / "shop", "rev-parse", f"refs/heads/task/{follow_up}").strip() == merged
    worker(tree, "anga", "sed -i 's/PRICE = 1/PRICE = 2/' shop.py").run_once()
    final = integrate(fleet_of(tree), checkout, follow_up, "orchestrator")
    assert run(checkout, "show", f"{final}:shop.py") == "TITLE = 'Shop'\nPRICE = 2\n"
    assert "+PRICE = 2" in goals.diff(fleet_of(tree), follow_up, [tree / "projects" / "shop", tree / "integration" / "shop"])
    monkeypatch.delenv("AGENTFLEET_GOAL")
    orchestrator.run_once()  # the goal's backend finishes; its proposal is the integration branch
    assert result(tree, "orchestrator", goal)["proposal"] == f"{goal}.proposal.json"
    config = publishing(tree, tmp_path)
    record = goals.publish(fleet_of(tree), config, goal)
    assert record["branch"] == f"agentfleet/{goal}" and record["head"] == final
    assert run(tmp_path / "source", "show", f"agentfleet/{goal}:shop.py") == "TITLE = 'Shop'\nPRICE = 2\n"
    with pytest.raises(Refused, match=f"goal {goal} was already published"):
        goals.publish(fleet_of(tree), config, goal)
    rows = goals.goal_rows(fleet_of(tree), "orchestrator", Path(config["state"]))
    assert rows[1] == (goal, "shop", "ok", "3", f"published agentfleet/{goal}")
    shown = goals.show_goal(fleet_of(tree), fleet_of(tree).find(goal) or {}, Path(config["state"]))
    assert sorted(task["id"] for task in shown["delegated"]) == sorted([first, second, follow_up])


def publishing(tree: Path, tmp_path: Path, mode: str = "approve") -> dict[str, Any]:
    return {"dispatcher": "orchestrator", "state": str(tmp_path / "state"),
            "projects": {"shop": {"name": "shop", "source": str(tmp_path / "source"), "mirror": str(tree / "projects" / "shop"),
                                  "publish": mode, "publish_branch": "agentfleet/{goal}", "key": None}}}


def finished_goal(tree: Path, script: str) -> str:
    base = agentctl.resolve_base(fleet_of(tree), "shop", None)
    _, goal = agentctl.submit(fleet_of(tree), "a goal", "orchestrator", {"project": "shop", "base": base})
    worker(tree, "orchestrator", script, dispatches=True, team=TEAM).run_once()
    return goal


def test_a_rejected_goal_is_never_published_and_never_means_never(tree: Path, tmp_path: Path) -> None:
    goal = finished_goal(tree, "echo more >> shop.py")
    record = goals.publish(fleet_of(tree), publishing(tree, tmp_path), goal, "rejected", "not what I asked")
    assert (record["action"], record["reason"]) == ("rejected", "not what I asked")
    with pytest.raises(Refused, match="was already rejected"):
        goals.publish(fleet_of(tree), publishing(tree, tmp_path), goal)
    other = finished_goal(tree, "echo more >> shop.py")
    with pytest.raises(Refused, match="publish: never"):
        goals.publish(fleet_of(tree), publishing(tree, tmp_path, "never"), other)
    assert "agentfleet/" not in run(tmp_path / "source", "branch", "--list")


def test_publish_completed_publishes_only_on_completion_projects(tree: Path, tmp_path: Path) -> None:
    goal = finished_goal(tree, "echo more >> shop.py")
    config = publishing(tree, tmp_path, "approve")
    assert agentctl.publish_completed(fleet_of(tree), config) == 0
    assert goals.read_record(Path(str(config["state"])), goal) is None
    config = publishing(tree, tmp_path, "on_completion")
    assert agentctl.publish_completed(fleet_of(tree), config) == 0
    assert run(tmp_path / "source", "rev-parse", f"agentfleet/{goal}").strip() == (
        json.loads((tree / "results" / "orchestrator" / f"{goal}.proposal.json").read_text())["head"])


def test_a_task_id_that_is_not_a_goal_is_not_published(tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    goal = finished_goal(tree, "true")
    checkout = tree / "workspaces" / "orchestrator" / "projects" / "shop"
    task = delegate(tree, goal, "marie", checkout, monkeypatch)
    worker(tree, "marie", "echo x > x.txt").run_once()
    with pytest.raises(Refused, match=f"{task} is not a goal"):
        goals.publish(fleet_of(tree), publishing(tree, tmp_path), task)
    with pytest.raises(Refused, match="changed nothing"):
        goals.publish(fleet_of(tree), publishing(tree, tmp_path), goal)


def test_a_manifest_that_claims_another_workers_task_is_refused(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    goal = finished_goal(tree, "true")
    checkout = tree / "workspaces" / "orchestrator" / "projects" / "shop"
    task = delegate(tree, goal, "marie", checkout, monkeypatch)
    worker(tree, "marie", "echo x > x.txt").run_once()
    path = tree / "results" / "marie" / f"{task}.proposal.json"
    path.write_text(path.read_text().replace('"worker": "marie"', '"worker": "anga"'))
    with pytest.raises(Refused, match="names another task, worker or base"):
        integrate(fleet_of(tree), checkout, task, "orchestrator")
    assert run(checkout, "for-each-ref", "refs/proposals") == ""


def test_refresh_fetches_the_source_into_the_mirror(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "source" / "shop.py").write_text("TITLE = 'new upstream'\n")
    run(tmp_path / "source", "commit", "--quiet", "-am", "upstream moved on")
    upstream = run(tmp_path / "source", "rev-parse", "HEAD").strip()
    config = publishing(tree, tmp_path)
    config["projects"]["shop"]["branch"] = "main"
    assert goals.refresh(config, "shop") == upstream
    assert agentctl.resolve_base(fleet_of(tree), "shop", None) == upstream
    with pytest.raises(Refused, match="project nope is not in this host's model"):
        goals.refresh(config, "nope")


def test_the_base_comes_from_the_task_the_dispatcher_wrote_not_from_the_workers_result(
        tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    goal = finished_goal(tree, "true")
    checkout = tree / "workspaces" / "orchestrator" / "projects" / "shop"
    task = delegate(tree, goal, "marie", checkout, monkeypatch)
    worker(tree, "marie", "echo x > x.txt").run_once()
    path = tree / "results" / "marie" / f"{task}.json"
    forged = json.loads(path.read_text())
    forged["task"]["base"], forged["task"]["project"] = "f" * 40, "other"
    path.write_text(json.dumps(forged))  # the worker's own copy of its task says something else
    integrate(fleet_of(tree), checkout, task, "orchestrator")
    assert run(checkout, "show", "HEAD:x.txt") == "x\n"
