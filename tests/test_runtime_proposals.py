"""Proposals: a worker's commits as a bundle and manifest; the trusted side imports them as data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from agentfleet import agentctl, schema
from agentfleet.backends import Backend
from agentfleet.config import Config
from agentfleet.fleet import Fleet
from agentfleet.proposals import Caps, clone, git, import_proposal, propose
from agentfleet.untrusted import Refused
from agentfleet.worker import Worker
from runtime_helpers import git_run as run, make_tree, put_task, result, source_repository

ME = os.getuid()




@pytest.fixture(name="project")
def fixture_project(tmp_path: Path) -> tuple[Path, Path, str]:
    """A project with one commit (its base), the integration repository and a worker's checkout."""
    source = tmp_path / "source"
    base = source_repository(source, "app.py", "print('v1')\n")
    integration, checkout = tmp_path / "integration.git", tmp_path / "checkout"
    subprocess.run(["git", "clone", "--quiet", "--bare", str(source), str(integration)], check=True)
    subprocess.run(["git", "clone", "--quiet", str(source), str(checkout)], check=True)
    (tmp_path / "results").mkdir()
    return integration, checkout, base


def test_a_proposal_carries_exactly_the_commits_on_its_base_and_imports_into_its_namespace(
        tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    integration, checkout, base = project
    (checkout / "app.py").write_text("print('v2')\n")
    run(checkout, "commit", "--quiet", "-am", "v2")
    (checkout / "new.txt").write_text("left uncommitted by the backend\n")
    manifest = propose(checkout, base, "marie", "t1", "made v2", tmp_path / "results")
    assert [commit["subject"] for commit in manifest["commits"]] == ["marie: uncommitted work of task t1", "v2"]
    assert sorted(entry["path"] for entry in manifest["files"]) == ["app.py", "new.txt"]
    assert run(checkout, "log", "-1", "--format=%an <%ae>").strip() == "marie <marie@agentfleet.invalid>"
    saved = json.loads((tmp_path / "results" / "t1.proposal.json").read_text())
    assert saved == manifest and schema.errors(saved, schema.load("proposal")) == []
    head = import_proposal(tmp_path / "results" / "t1.bundle", ME, integration, "marie", "t1", base)
    assert head == manifest["head"]
    assert run(integration, "rev-parse", "refs/proposals/marie/t1").strip() == head
    assert run(integration, "for-each-ref", "--format=%(refname)").split() == [
        "refs/heads/main", "refs/proposals/marie/t1"]


def test_a_rename_lists_both_paths_and_a_retry_replaces_the_manifest(tmp_path: Path,
                                                                     project: tuple[Path, Path, str]) -> None:
    _, checkout, base = project
    run(checkout, "mv", "app.py", "main.py")
    first = propose(checkout, base, "marie", "t1", "renamed", tmp_path / "results")
    assert sorted(entry["path"] for entry in first["files"]) == ["app.py", "main.py"]
    commit(checkout, "more.txt")  # the retried attempt goes on from the same checkout
    second = propose(checkout, base, "marie", "t1", "renamed and more", tmp_path / "results")
    assert json.loads((tmp_path / "results" / "t1.proposal.json").read_text()) == second != first


def test_no_commits_means_a_manifest_without_a_bundle(tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    _, checkout, base = project
    manifest = propose(checkout, base, "marie", "t1", "nothing to do", tmp_path / "results")
    assert manifest["commits"] == [] and not (tmp_path / "results" / "t1.bundle").exists()


def hostile_bundle(checkout: Path, base: str, out: Path, *refs: str) -> Path:
    for ref in refs:
        run(checkout, "update-ref", ref, "HEAD")
    run(checkout, "bundle", "create", "--quiet", str(out), f"{base}..HEAD", *refs)
    return out


def commit(checkout: Path, name: str, content: str = "x\n") -> None:
    (checkout / name).parent.mkdir(parents=True, exist_ok=True)
    (checkout / name).write_text(content)
    run(checkout, "add", "--all")
    run(checkout, "commit", "--quiet", "-m", name)


def test_refs_outside_the_proposal_are_refused(tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    integration, checkout, base = project
    commit(checkout, "a.txt")
    bundle = hostile_bundle(checkout, base, tmp_path / "x.bundle", "refs/heads/agentfleet-proposal", "refs/heads/main")
    with pytest.raises(Refused, match="not exactly refs/heads/agentfleet-proposal"):
        import_proposal(bundle, ME, integration, "marie", "t1", base)
    assert run(integration, "rev-parse", "refs/heads/main").strip() == base  # main untouched


def test_a_symlink_out_of_the_checkout_is_refused_and_nothing_stays(tmp_path: Path,
                                                                     project: tuple[Path, Path, str]) -> None:
    integration, checkout, base = project
    for target, name in (("/etc/passwd", "abs"), ("../../secret", "deep/up")):
        (checkout / name).parent.mkdir(parents=True, exist_ok=True)
        (checkout / name).symlink_to(target)
        run(checkout, "add", "--all")
        run(checkout, "commit", "--quiet", "-m", name)
        propose(checkout, base, "marie", f"t-{name[:3]}", "", tmp_path / "results")
        with pytest.raises(Refused, match="symlink out of the checkout"):
            import_proposal(tmp_path / "results" / f"t-{name[:3]}.bundle", ME, integration, "marie", f"t-{name[:3]}", base)
        run(checkout, "reset", "--quiet", "--hard", base)
    assert run(integration, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]


def test_caps_and_a_broken_bundle_are_refused(tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    integration, checkout, base = project
    commit(checkout, "big.bin", "y" * 5000)
    propose(checkout, base, "marie", "t1", "", tmp_path / "results")
    bundle = tmp_path / "results" / "t1.bundle"
    broken = tmp_path / "broken.bundle"  # first: a refused import leaves its objects (unreferenced)
    broken.write_bytes(bundle.read_bytes()[:-40])
    with pytest.raises(Refused, match="git"):
        import_proposal(broken, ME, integration, "marie", "t1", base)
    with pytest.raises(Refused, match="over the limit of 1000"):
        import_proposal(bundle, ME, integration, "marie", "t1", base, Caps(file_bytes=1000))
    with pytest.raises(Refused, match="over the limit of 100"):
        import_proposal(bundle, ME, integration, "marie", "t1", base, Caps(bundle_bytes=100))
    (tmp_path / "link.bundle").symlink_to(bundle)
    with pytest.raises(Refused, match="a symlink"):
        import_proposal(tmp_path / "link.bundle", ME, integration, "marie", "t1", base)


def test_a_bundle_whose_objects_fail_fsck_is_refused_whatever_gits_version(tmp_path: Path,
                                                                          project: tuple[Path, Path, str]) -> None:
    """git fetch from a bundle does not fsck before git 2.46 (Debian 12 has 2.39): the import must."""
    integration, checkout, base = project
    tree = run(checkout, "write-tree").strip()
    bad = subprocess.run(["git", "-C", str(checkout), "hash-object", "-t", "commit", "--literally", "-w", "--stdin"],
                         input=f"tree {tree}\nparent {base}\nauthor nobody\ncommitter nobody\n\nbad\n",
                         capture_output=True, text=True, check=True).stdout.strip()
    run(checkout, "branch", "--force", "agentfleet-proposal", bad)
    run(checkout, "bundle", "create", "--quiet", str(tmp_path / "bad.bundle"), f"{base}..agentfleet-proposal")
    with pytest.raises(Refused, match="git index-pack: .*(bad|missing|author|ident)"):
        import_proposal(tmp_path / "bad.bundle", ME, integration, "marie", "t1", base)
    assert run(integration, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]


def test_a_proposal_that_does_not_build_on_its_base_is_refused(tmp_path: Path,
                                                               project: tuple[Path, Path, str]) -> None:
    integration, checkout, base = project
    run(checkout, "checkout", "--quiet", "--orphan", "other")
    commit(checkout, "other.txt")
    run(checkout, "branch", "--force", "agentfleet-proposal", "HEAD")
    run(checkout, "bundle", "create", "--quiet", str(tmp_path / "o.bundle"), "refs/heads/agentfleet-proposal")
    with pytest.raises(Refused, match="does not build on its base"):
        import_proposal(tmp_path / "o.bundle", ME, integration, "marie", "t1", base)


def test_git_runs_without_the_repositorys_hooks_or_the_users_configuration(tmp_path: Path,
                                                                        project: tuple[Path, Path, str]) -> None:
    _, checkout, _ = project
    hook = checkout / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path / 'hook-ran'}\n")
    hook.chmod(0o755)
    (checkout / "a.txt").write_text("x\n")
    git(checkout, "add", "a.txt")
    git(checkout, "-c", "user.name=m", "-c", "user.email=m@m.invalid", "commit", "--quiet", "-m", "a")
    assert not (tmp_path / "hook-ran").exists()


def test_a_repository_config_smuggled_as_a_dot_git_directory_is_refused(tmp_path: Path,
                                                                        project: tuple[Path, Path, str]) -> None:
    integration, checkout, base = project
    hook = _blob(checkout, "[core]\n\thooksPath = /tmp\n")
    inner = _mktree(checkout, f"100644 blob {hook}\tconfig\n")
    outer = _mktree(checkout, f"040000 tree {inner}\t.git\n")
    smuggled = run(checkout, "commit-tree", outer, "-p", base, "-m", "smuggle").strip()
    run(checkout, "update-ref", "refs/heads/agentfleet-proposal", smuggled)
    run(checkout, "bundle", "create", "--quiet", str(tmp_path / "s.bundle"), f"{base}..refs/heads/agentfleet-proposal")
    with pytest.raises(Refused, match="hasDotgit|inside a .git directory"):
        import_proposal(tmp_path / "s.bundle", ME, integration, "marie", "t1", base)
    assert run(integration, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]


def _blob(repo: Path, text: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "hash-object", "-w", "--stdin"], input=text, capture_output=True,
                          text=True, check=True).stdout.strip()


def _mktree(repo: Path, listing: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "mktree"], input=listing, capture_output=True, text=True,
                          check=True).stdout.strip()


def project_worker(root: Path, mirror: Path, script: str) -> Worker:
    backend = Backend(type="command", argv=["sh", "-c", script])
    return Worker(Config(name="marie", kind="worker", root=root, backend=backend, projects={"shop": mirror}))


def test_a_project_task_runs_in_a_checkout_of_its_base_and_ends_in_a_proposal(
        tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    integration, _, base = project
    root = make_tree(tmp_path / "tree", ["marie"])
    put_task(root, "marie", "t1", project="shop", base=base)
    work = project_worker(root, integration, "echo v2 > app.py; pwd")
    assert work.run_once() == 1
    answer = result(root, "marie", "t1")
    assert answer["status"] == "ok", answer["reason"]
    assert answer["output"].strip() == str(root / "workspaces" / "marie" / "projects" / "shop")
    assert answer["proposal"] == "t1.proposal.json" and schema.errors(answer, schema.load("result")) == []
    head = import_proposal(root / "results" / "marie" / "t1.bundle", ME, integration, "marie", "t1", base)
    assert run(integration, "show", f"{head}:app.py") == "v2\n"
    assert Fleet(root, {"marie": ME}).results()[0]["id"] == "t1"  # manifest and bundle are not results


def test_the_mirror_may_belong_to_another_account(tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    """As in a container: the host's mirror is not the worker's (git refuses such a repository
    unless told it is safe)."""
    if ME != 0:
        pytest.skip("changing the mirror's owner needs root, as on our CI")
    integration, _, base = project
    for path in [integration, *integration.rglob("*")]:
        os.lchown(path, 65534, 65534)
    root = make_tree(tmp_path / "tree", ["marie"])
    put_task(root, "marie", "t1", project="shop", base=base)
    project_worker(root, integration, "echo v3 > app.py").run_once()
    answer = result(root, "marie", "t1")
    assert answer["status"] == "ok" and answer["proposal"] == "t1.proposal.json", answer["reason"]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"project": "shop"}, "project and base go together"),
    ({"project": "other", "base": "a" * 40}, "not one of this worker's projects ['shop']"),
    ({"project": "shop", "base": "a" * 40}, "git checkout"),
])
def test_a_bad_project_task_is_rejected_with_its_reason(tmp_path: Path, project: tuple[Path, Path, str],
                                                         fields: dict[str, str], reason: str) -> None:
    integration, _, _ = project
    root = make_tree(tmp_path / "tree", ["marie"])
    put_task(root, "marie", "t1", **fields)
    project_worker(root, integration, "touch ran").run_once()
    answer = result(root, "marie", "t1")
    assert answer["status"] == "rejected" and reason in answer["reason"], answer["reason"]


def test_agentctl_submits_a_project_task_and_checks_its_fields(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "tree", ["marie"])
    fleet = Fleet(root, {"marie": ME})
    _, ident = agentctl.submit(fleet, "fix it", "marie", {"project": "shop", "base": "a" * 40})
    task = json.loads((root / "inbox" / "marie" / f"{ident}.json").read_text())
    assert (task["project"], task["base"]) == ("shop", "a" * 40)
    with pytest.raises(SystemExit, match="base: 'main' does not match"):
        agentctl.submit(fleet, "fix it", "marie", {"project": "shop", "base": "main"})
    with pytest.raises(SystemExit, match="--base needs --project"):
        agentctl.main(["--root", str(root), "submit", "--to", "marie", "--base", "a" * 40, "x"])
    with pytest.raises(SystemExit, match="--project shop: no branch main in"):
        agentctl.main(["--root", str(root), "submit", "--to", "marie", "--project", "shop", "x"])


def test_the_workers_clone_moves_from_task_to_task_fresh_and_a_retry_keeps_its_work(
        tmp_path: Path, project: tuple[Path, Path, str]) -> None:
    integration, _, base = project
    target = tmp_path / "projects" / "shop"
    target.parent.mkdir()
    clone(integration, target, "agentfleet/t1", base)
    (target / "app.py").write_text("half done\n")
    (target / ".gitignore").write_text("*.log\n")
    (target / "debug.log").write_text("ignored, but not the next task's\n")
    clone(integration, target, "agentfleet/t1", base)  # t1 retried after an interruption
    assert (target / "app.py").read_text() == "half done\n"
    clone(integration, target, "agentfleet/t2", base)  # the next task: exactly its base
    assert (target / "app.py").read_text() == "print('v1')\n"
    assert sorted(path.name for path in target.iterdir()) == [".git", "app.py"]
    assert run(target, "symbolic-ref", "HEAD").strip() == "refs/heads/agentfleet/t2"
