"""Reading the shared tree as the orchestrator, the monitor or root on the host sees it.

Identity comes from where a file lives and who owns it, never from what it says: a result is
marie's because it is results/marie/<id>.json and owned by marie's uid in the model; a field
that disagrees makes it invalid. Every file that is refused lands in `problems` with its reason.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import schema
from .untrusted import ID, NAME, Refused, names, printable, read_document

STALE_AFTER = 3  # heartbeat intervals
VIEW = "_workers.json"  # in fleet/: never a task's result (an id starts with a letter or digit)
GONE_AFTER = 10.0  # seconds without a host's relay writing its workers' entries (it does every 2 s)
MAX_PROBLEMS, MAX_REASON = 1_000, 300  # what one run keeps of refused files: bounded, whatever agents write
SUMMARY = ("id", "worker", "status", "reason", "attempt", "started", "finished")


@dataclass
class Fleet:
    """The tree at root and the model's agents (name -> uid) that may write into it."""

    root: Path
    agents: dict[str, int]
    monitor: str | None = None
    interval: float = 5.0
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, root: Path, env: dict[str, str] | None = None) -> Fleet:
        """The model from AGENTFLEET_AGENTS ({"name": uid}); without it, each heartbeat
        directory's owner, which only root (Ansible, from the model) can set."""
        env = dict(os.environ if env is None else env)
        problems: list[str] = []
        try:
            agents = _agents_from_json(env["AGENTFLEET_AGENTS"]) if "AGENTFLEET_AGENTS" in env else _owners(root, problems)
        except ValueError as error:
            raise SystemExit(f"agentfleet: AGENTFLEET_AGENTS: {error}") from None
        return cls(root, agents, env.get("AGENTFLEET_MONITOR") or None,
                   float(env.get("AGENTFLEET_HEARTBEAT_INTERVAL", "5")), problems)

    def refuse(self, path: Path, reason: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{path}: {reason[:MAX_REASON]}")
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append(f"{self.root}: more than {MAX_PROBLEMS} files refused; the rest not listed")

    def heartbeats(self) -> dict[str, dict[str, Any]]:
        beats = {}
        for name, uid in sorted(self.agents.items()):
            path = self.root / "heartbeats" / name / "heartbeat.json"
            if not os.path.lexists(path):
                continue
            try:
                beat = read_document(path, "heartbeat", uid)
                if beat["agent"] != name:
                    raise Refused(f"agent {beat['agent']!r} is not the directory's agent {name!r}")
            except Refused as problem:
                self.refuse(path, str(problem))
                continue
            beats[name] = beat
        return beats

    def is_stale(self, beat: dict[str, Any], now: float | None = None) -> bool:
        """Judged by this reader's interval, never the one the heartbeat claims; a time from the
        future is stale too (a dead agent must not stay fresh by lying once)."""
        age = (now or time.time()) - float(beat["updated"])
        return beat["status"] == "stopping" or not -self.interval <= age <= STALE_AFTER * self.interval

    def workers(self) -> list[str]:
        inbox = self.root / "inbox"
        return [name for name in names(inbox, self.problems) if name in self.agents and is_real_dir(inbox / name)]

    def pending(self, worker: str) -> list[str]:
        """Task ids in a worker's inbox without a result yet."""
        done = set(names(self.root / "results" / worker, self.problems))
        return [name[:-5] for name in names(self.root / "inbox" / worker, self.problems)
                if name.endswith(".json") and ID.match(name[:-5]) and name not in done]

    def result_names(self, worker: str) -> list[str]:
        """<id>.json names in a worker's results directory; anything but those, claims and
        writes in progress (dot-files) is reported."""
        directory, found = self.root / "results" / worker, []
        for name in names(directory, self.problems):
            stem, dot, suffix = name.rpartition(".")
            if suffix == "bundle" and ID.match(stem) or name.endswith(".proposal.json") and ID.match(name[:-14]):
                continue  # a proposal's manifest and bundle (no task id ends in .proposal), read by its importer
            if dot and suffix == "json" and ID.match(stem):
                found.append(name)
            elif not name.startswith(".") and not (dot and suffix == "claim" and ID.match(stem)):
                self.refuse(directory / name, "not <id>.json")
        return found

    def result(self, worker: str, name: str) -> dict[str, Any] | None:
        """results/<worker>/<name> when it is valid and really worker's; else None and a problem."""
        path = self.root / "results" / worker / name
        try:
            document = read_document(path, "result", self.agents[worker])
            if document["worker"] != worker:
                raise Refused(f"worker {document['worker']!r} is not the directory's agent {worker!r}")
            if f"{document['id']}.json" != name:
                raise Refused(f"id {document['id']!r} does not match the file name")
        except Refused as problem:
            self.refuse(path, str(problem))
            return None
        return document

    def results(self, worker: str | None = None) -> list[dict[str, Any]]:
        """Every valid result, oldest first, without its output and task: a listing stays small
        however much the workers wrote (`find` reads one whole)."""
        found = []
        for name in sorted(self.agents) if worker is None else [worker]:
            if name not in self.agents or not is_real_dir(self.root / "results" / name):
                continue
            for entry in self.result_names(name):
                document = self.result(name, entry)
                if document is not None:
                    task = document.get("task") or {}
                    found.append({**{key: document[key] for key in SUMMARY},
                                  **{key: task[key] for key in ("goal", "project") if key in task},
                                  "proposal": "proposal" in document})
        return sorted(found, key=lambda result: float(result["finished"]))

    def find(self, ident: str) -> dict[str, Any] | None:
        """The result of task ident, looked for only where its task was sent: the worker whose
        inbox (which only the dispatcher writes) holds it, so no other worker can answer for it."""
        if not ID.match(ident):
            raise SystemExit(f"agentctl: {printable(ident)!r} is not a task id")
        for worker in sorted(self.agents):
            if os.path.lexists(self.root / "inbox" / worker / f"{ident}.json"):
                if not os.path.lexists(self.root / "results" / worker / f"{ident}.json"):
                    return None
                return self.result(worker, f"{ident}.json")
        return self.fleet_result(ident)

    def fleet_file(self, name: str, kind: str) -> dict[str, Any] | None:
        """A document the host's relay wrote into fleet/: only a file of the directory's owner
        counts; None when there is none, or when it is refused (said once)."""
        directory = self.root / "fleet"
        path = directory / name
        if not is_real_dir(directory) or not os.path.lexists(path):
            return None
        try:
            return read_document(path, kind, os.lstat(directory).st_uid)
        except Refused as problem:
            self.refuse(path, str(problem))
            return None

    def fleet_result(self, ident: str) -> dict[str, Any] | None:
        """The result of a task this host sent to the fleet (fleet/<id>.json, brought back by the
        host's relay), with the node that ran it."""
        document = self.fleet_file(f"{ident}.json", "fleet-result")
        if document is None:
            return None
        result = document["result"]
        problems = schema.errors(result, schema.load("result"), "result")
        if problems or result.get("id") != ident:
            self.refuse(self.root / "fleet" / f"{ident}.json",
                        "; ".join(problems[:3]) or f"id {result.get('id')!r} does not match the file name")
            return None
        return {**result, "node": document["node"]}

    def fleet_results(self) -> list[dict[str, Any]]:
        """Summaries of the results of the tasks this host sent to the fleet (fleet/<id>.json, brought
        back by its relay), each with the node that ran it, oldest first."""
        if not is_real_dir(self.root / "fleet"):
            return []
        found = []
        for name in names(self.root / "fleet", self.problems):
            stem = name[:-5] if name.endswith(".json") else ""
            if ID.match(stem) and not stem.endswith((".sent", ".proposal")):
                document = self.fleet_result(stem)
                if document is not None:
                    found.append({**{key: document[key] for key in SUMMARY}, "node": document["node"]})
        return sorted(found, key=lambda result: float(result["finished"]))

    def fleet_workers(self) -> dict[str, Any] | None:
        """Every host's workers (fleet/_workers.json, the host's relay's copy of the fleet's bucket)."""
        return self.fleet_file(VIEW, "fleet-workers")

    def sent_task(self, worker: str, ident: str) -> dict[str, Any]:
        """Task ident as the dispatcher wrote it into worker's inbox (only the dispatcher writes
        an inbox, by file modes): its project, base and goal, never the worker's copy in its result.
        A task sent to another host of the fleet: as the relay kept it (fleet/<id>.sent.json)."""
        if self.sent_to_fleet(worker, ident):
            directory = self.root / "fleet"
            sent = read_document(directory / f"{ident}.sent.json", "fleet-task", os.lstat(directory).st_uid)["task"]
            if not isinstance(sent, dict):
                raise Refused(f"the task sent to {worker} is not an object")
            task = dict(sent)
        else:
            task = read_document(self.root / "inbox" / worker / f"{ident}.json", "task", None)
        if task.get("id") != ident:
            raise Refused(f"the task sent to {worker} is not {ident}")
        return task

    def sent_to_fleet(self, worker: str, ident: str) -> bool:
        """Whether task ident went to another host (no inbox here holds it)."""
        return not os.path.lexists(self.root / "inbox" / worker / f"{ident}.json") and is_real_dir(self.root / "fleet")

    def proposal_place(self, worker: str, ident: str) -> tuple[Path, int]:
        """Where the proposal of task ident lies and whose its files must be: the worker's results
        directory, or fleet/ (the dispatcher's) for a task another host ran, as its relay brought it."""
        if self.sent_to_fleet(worker, ident):
            return self.root / "fleet", os.lstat(self.root / "fleet").st_uid
        return self.root / "results" / worker, self.agents[worker]

    def dispatcher_of(self, ident: str) -> str | None:
        """The agent whose inbox holds task ident (its result can only come from there)."""
        return next((w for w in sorted(self.agents) if os.path.lexists(self.root / "inbox" / w / f"{ident}.json")), None)

    def usage_report(self, kind: str = "gateway-usage") -> dict[str, Any] | None:
        """One of the monitor's reports (gateway-usage, egress-usage): only the model's monitor writes them."""
        if self.monitor not in self.agents:
            self.problems.append("no monitor in the model (AGENTFLEET_MONITOR); no usage report to read")
            return None
        path = self.root / "logs" / self.monitor / f"{kind}.json"
        if not os.path.lexists(path):
            return None
        try:
            return read_document(path, kind, self.agents[self.monitor])
        except Refused as problem:
            self.refuse(path, str(problem))
            return None


def _agents_from_json(text: str) -> dict[str, int]:
    agents = json.loads(text)

    def valid(name: Any, uid: Any) -> bool:
        return isinstance(name, str) and bool(NAME.match(name)) and isinstance(uid, int) and not isinstance(uid, bool) and uid >= 0

    if not isinstance(agents, dict) or not all(valid(name, uid) for name, uid in agents.items()):
        raise ValueError("expected {\"agent name\": uid, ...}")
    return agents


def _owners(root: Path, problems: list[str]) -> dict[str, int]:
    found = {}
    for name in names(root / "heartbeats", problems):
        try:
            info = os.lstat(root / "heartbeats" / name)
        except OSError:
            continue
        if NAME.match(name) and stat.S_ISDIR(info.st_mode):
            found[name] = info.st_uid
    return found


def is_real_dir(path: Path) -> bool:
    """A directory itself, never a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def table(rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, the first row the header; every cell escaped for a terminal."""
    cells = [[printable(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in cells)
