"""Goals for people: list them, show one with its delegated tasks, diff a proposal, publish.

A goal is a task in the dispatcher's inbox; its result's proposal is the integration branch.
Publishing runs on the host as root: the goal's bundle is imported as data into a repository
only root reads (<state>/<project>.git), and pushed, never forced, to the project's source
with the deploy key only the host holds. The record of each publication or rejection is
<state>/records/<goal>.json.
"""

from __future__ import annotations

import json
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any

from . import schema
from .fleet import Fleet
from .proposals import git, import_proposal
from .untrusted import ID, Refused, printable, read_document

MAX_DIFF = 4 * 2 ** 20  # what `agentctl diff` prints at most


def load_config(path: str | None) -> dict[str, Any]:
    """The host's publishing settings (written by the agent_projects role, root only)."""
    if not path:
        raise Refused("no publishing settings (AGENTFLEET_PUBLISH_CONFIG); run agentctl on the host as root")
    try:
        with open(path, encoding="utf-8") as handle:
            config: dict[str, Any] = json.load(handle)
    except OSError as error:
        raise Refused(f"cannot read the publishing settings {path}: {error.strerror}; only root publishes") from None
    return config


def refresh(config: dict[str, Any], name: str) -> str:
    """Fetch the project's source into its mirror now (as the role does), with the host's key."""
    project = config["projects"].get(name)
    if project is None:
        raise Refused(f"project {printable(name)} is not in this host's model")
    git(Path(project["mirror"]), "fetch", "--quiet", "--prune", project["source"], "+refs/heads/*:refs/heads/*",
        "+refs/tags/*:refs/tags/*", ssh=_ssh(project))
    return git(Path(project["mirror"]), "rev-parse", f"refs/heads/{project['branch']}").strip()


def goal_rows(fleet: Fleet, dispatcher: str, state: Path | None) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = [("GOAL", "PROJECT", "STATUS", "TASKS", "PUBLISHED")]
    done = {item["id"]: item for item in fleet.results(dispatcher)}
    delegated: dict[str, int] = {}
    for item in fleet.results():
        if "goal" in item:
            delegated[item["goal"]] = delegated.get(item["goal"], 0) + 1
    for ident in sorted(set(fleet.pending(dispatcher)) | set(done)):
        item = done.get(ident, {})
        record = read_record(state, ident) if state else None
        rows.append((ident, str(item.get("project", "-")), str(item.get("status", "pending")), str(delegated.get(ident, 0)),
                     f"{record['action']} {record.get('branch', '')}".strip() if record else "-"))
    return rows


def show_goal(fleet: Fleet, goal: dict[str, Any], state: Path | None) -> dict[str, Any]:
    """The goal's result with each task delegated for it (summaries) and its publication."""
    tasks = [item for item in fleet.results() if item.get("goal") == goal["id"]]
    record = read_record(state, goal["id"]) if state else None
    return {**goal, "delegated": tasks, "publication": record}


def read_record(state: Path, goal: str) -> dict[str, Any] | None:
    path = state / "records" / f"{goal}.json"
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as handle:
        record: dict[str, Any] = json.load(handle)  # written by root only, below
    return record


def proposal_of(fleet: Fleet, ident: str) -> tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(worker, result, manifest, task) of task ident: the result and manifest where the worker the
    task went to keeps them, the task (project, base) as the dispatcher wrote it."""
    found = fleet.find(ident)
    if found is None:
        raise Refused(f"no valid result for {ident}")
    worker = str(found["worker"])
    task = fleet.sent_task(worker, ident)
    if "proposal" not in found or "base" not in task:
        raise Refused(f"{ident} has no proposal (status {found['status']})")
    directory, owner = fleet.proposal_place(worker, ident)
    manifest = read_document(directory / f"{ident}.proposal.json", "proposal", owner)
    if (manifest["id"], manifest["worker"], manifest["base"]) != (ident, worker, task["base"]):
        raise Refused(f"the manifest of {ident} names another task, worker or base")
    return worker, found, manifest, task


def import_checked(fleet: Fleet, worker: str, manifest: dict[str, Any], repo: Path) -> str:
    """Import the proposal the manifest describes into repo; its head, which must be the manifest's."""
    ident = manifest["id"]
    directory, owner = fleet.proposal_place(worker, ident)
    head = import_proposal(directory / f"{ident}.bundle", owner, repo, worker, ident, manifest["base"])
    if head != manifest["head"]:
        raise Refused(f"the bundle's head {head[:12]} is not the manifest's {manifest['head'][:12]}")
    return head


def diff(fleet: Fleet, ident: str, sources: list[Path]) -> str:
    """The proposal of task ident as a diff against its base, escaped for a terminal.

    The bundle is imported as data into a scratch repository that borrows the objects of
    sources (the mirror, the integration repository) for the base."""
    worker, _result, manifest, _task = proposal_of(fleet, ident)
    if not manifest["commits"]:
        return f"{worker} made no change in {ident}\n"
    with tempfile.TemporaryDirectory(prefix="agentfleet-diff-") as scratch:
        repo = Path(scratch)
        git(repo, "init", "--quiet", "--bare")
        alternates = [str(path / "objects") for path in sources if (path / "objects").is_dir()]
        (repo / "objects" / "info" / "alternates").write_text("\n".join(alternates) + "\n")
        head = import_checked(fleet, worker, manifest, repo)
        log = git(repo, "log", "--no-color", "--format=commit %H%nAuthor: %an <%ae>%n%n    %s%n", f"{manifest['base']}..{head}")
        text = git(repo, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--stat", "--patch", manifest["base"], head)
    header = f"proposal {ident} of {worker}: {len(manifest['commits'])} commit(s) on {manifest['base'][:12]}\n\n"
    body = (log + text)[:MAX_DIFF]
    return header + "\n".join(printable(line) for line in body.split("\n"))


def publish(fleet: Fleet, config: dict[str, Any], goal: str, action: str = "published", reason: str = "") -> dict[str, Any]:
    """Push goal's integration branch to its project's source (action published), or record that a
    person rejected it (action rejected); a goal is published or rejected once."""
    if not ID.match(goal):
        raise Refused(f"{printable(goal)!r} is not a goal id")
    state, dispatcher = Path(config["state"]), config["dispatcher"]
    earlier = read_record(state, goal)
    if earlier is not None:
        raise Refused(f"goal {goal} was already {earlier['action']} ({time.ctime(earlier['time'])})")
    if fleet.dispatcher_of(goal) != dispatcher:
        raise Refused(f"{goal} is not a goal: no task of that id in {dispatcher}'s inbox")
    record: dict[str, Any] = {"goal": goal, "action": action, "time": time.time()}
    if action == "rejected":  # whatever its state: a rejected goal is never published
        record["reason"] = reason[:2000]
    else:
        worker, found, manifest, task = proposal_of(fleet, goal)
        if found["status"] != "ok":
            raise Refused(f"goal {goal} ended {found['status']}; nothing to publish")
        name = str(task["project"])
        project = config["projects"].get(name)
        if project is None:
            raise Refused(f"project {name} is not in this host's model")
        record |= {"project": name, "head": manifest["head"]}
        if project["publish"] == "never":
            raise Refused(f"project {name} is set to publish: never")
        if not manifest["commits"]:
            raise Refused(f"goal {goal} changed nothing; nothing to publish")
        record["branch"] = project["publish_branch"].replace("{goal}", goal)
        _push(fleet, state, project, worker, manifest, record["branch"])
    (state / "records").mkdir(parents=True, exist_ok=True, mode=0o755)
    schema.write_atomic(state / "records" / f"{goal}.json", record, replace=False)
    return record


def _push(fleet: Fleet, state: Path, project: dict[str, Any], worker: str, manifest: dict[str, Any], branch: str) -> None:
    repo = state / f"{project['name']}.git"
    if not (repo / "HEAD").exists():
        repo.mkdir(parents=True, mode=0o700, exist_ok=True)
        git(repo, "init", "--quiet", "--bare")
    git(repo, "fetch", "--quiet", "--no-tags", project["mirror"], "+refs/heads/*:refs/mirror/*")
    import_checked(fleet, worker, manifest, repo)
    git(repo, "push", "--quiet", project["source"], f"refs/proposals/{worker}/{manifest['id']}:refs/heads/{branch}",
        ssh=_ssh(project))


def _ssh(project: dict[str, Any]) -> str | None:
    """The ssh command with the project's deploy key; None (no network at all) for a path on the host."""
    if project["source"].startswith("/"):
        return None
    key, checking = project.get("key"), "accept-new" if project.get("accept_newhostkey") else "yes"
    return shlex.join(["ssh", *(["-i", key] if key else []), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                       "-o", f"StrictHostKeyChecking={checking}"])
