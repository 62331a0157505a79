"""The host's relay between the fleet's NATS JetStream and this host's file protocol.

Agents never talk to NATS: the relay is the host's only client. It
- publishes the tasks the dispatcher put in its outbox (outbox/<id>.json, {"to": worker} or
  {"role": role}) to fleet.task.worker.<name> / fleet.task.role.<role>, de-duplicated by task id,
  with the task's base (outbox/<id>.base.bundle, commits the other hosts' mirrors lack) sent first,
  and keeps the task as sent (fleet/<id>.sent.json);
- pulls a task from its workers' consumers and its roles' consumers only while a worker of that
  name or role here is idle (for a project task, one with that project), and writes it into that
  worker's inbox (as the inboxes' owner), its base bundle beside it (inbox/<worker>/<id>.base.bundle);
- holds the task's lease while the worker runs it (in-progress acknowledgements), publishes the
  result (with its proposal's manifest and bundle sent first) under fleet.result.<node>.<origin>.<id>
  with the task id as message id, and acknowledges the task
  only once its result exists; a result the stream already has (another host finished the task
  after this one lost its lease) is recorded as a duplicate attempt, not a second completion;
- keeps the ids it delivered (state/delivered/<id>), so after a restart it finishes what it took;
- writes its workers' heartbeats into the fleet's key-value bucket, and every 10 s its host's
  latest goals (<node>._goals), and copies every host's into the dispatcher's fleet/_workers.json;
- takes the results of the tasks it sent (subject fleet.result.<runner>.<this node>.<id>, its own
  consumer results-<node>) into the dispatcher's <root>/fleet/<id>.json, where agentctl finds them,
  and a proposal's manifest and bundle beside it (fleet/<id>.proposal.json, fleet/<id>.bundle).
Everything read from the tree is agent-written: read by the runtime's checked readers only.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import pwd
import re
import signal
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentfleet import schema
from agentfleet.fleet import VIEW, Fleet, is_real_dir
from agentfleet.goals import goal_rows
from agentfleet.proposals import Caps
from agentfleet.untrusted import ID, MAX_BYTES, MAX_ITEMS, NAME, Refused, names, parse, read_bytes, read_document
from agentfleet_files import CHUNK, FileRefused, get_file, put_file

TASKS, RESULTS, WORKERS = "AGENTFLEET_TASKS", "AGENTFLEET_RESULTS", "agentfleet_workers"
MAX_OUTBOX = 64
MAX_VIEW = 1024  # workers of the whole fleet shown in agentctl status
GOALS_KEY, MAX_GOALS = "_goals", 20  # each host's latest goals, under a key no worker's name can take
GOALS_EVERY = 10.0  # seconds: listing goals reads every result on the host
ORIGIN = "Agentfleet-Origin"  # the node that sent a task: where its result goes back to
NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
BUNDLE_BYTES = Caps().bundle_bytes  # a base or a proposal's bundle, as a proposal's importer takes it


@dataclass(frozen=True)
class Dispatcher:
    """The tree's dispatcher, whom the relay acts as in the tree (inboxes are its). The service starts
    as root holding CAP_SETUID/CAP_SETGID only and, before anything else, becomes its own account for
    good with the dispatcher's ids as its saved ones: from then on it can swap its effective ids
    between the two, and reach no other (root's included)."""

    uid: int
    gid: int
    groups: tuple[int, ...]

    def become(self, uid: int, gid: int) -> None:
        """Real and effective ids uid/gid, saved ids the dispatcher's, groups what both need; every
        capability is gone after (the kernel clears them once no id is root's)."""
        if 0 in (uid, gid, self.uid, self.gid):
            raise SystemExit("agentfleet-relay: neither the relay nor the dispatcher may be root")
        os.setgroups(sorted(set(self.groups) | {gid}))
        os.setresgid(gid, gid, self.gid)
        os.setresuid(uid, uid, self.uid)
        if capabilities() != {"CapPrm": 0, "CapEff": 0, "CapAmb": 0}:
            raise SystemExit(f"agentfleet-relay: still holds capabilities {capabilities()}")

    @contextlib.contextmanager
    def acting(self) -> Iterator[None]:
        own = (os.geteuid(), os.getegid())
        if own[0] == self.uid:
            yield
            return
        os.setegid(self.gid)
        os.seteuid(self.uid)
        try:
            yield
        finally:
            os.seteuid(own[0])
            os.setegid(own[1])


def capabilities() -> dict[str, int]:
    """This process's permitted, effective and ambient capability sets."""
    status = Path("/proc/self/status").read_bytes().decode().splitlines()  # no codec to import: ids may have changed
    return {key: int(value, 16) for key, _tab, value in (line.partition(":\t") for line in status)
            if key in ("CapPrm", "CapEff", "CapAmb")}


@dataclass
class Local:
    """This host's side: its tree, its workers and their roles, and the relay's own state directory."""

    fleet: Fleet
    roles: dict[str, str]
    state: Path
    dispatcher_uid: int | None = None
    duplicates: list[str] = field(default_factory=list)
    dispatcher: Dispatcher | None = None
    beats_read: tuple[float, dict[str, dict[str, Any]]] = (0.0, {})
    projects: dict[str, list[str]] = field(default_factory=dict)  # worker -> the projects it may check out
    dispatcher_name: str | None = None

    def tree(self) -> contextlib.AbstractContextManager[None]:
        """Where the relay reads and writes the tree: as its dispatcher (when it is someone else)."""
        return self.dispatcher.acting() if self.dispatcher else contextlib.nullcontext()

    def idle(self, candidates: list[str]) -> list[str]:
        """Of candidates, the workers here with a fresh heartbeat and nothing pending, least busy first."""
        with self.tree():
            beats = self.heartbeats()
            ready = [name for name in candidates if name in beats and not self.fleet.is_stale(beats[name])
                     and beats[name]["status"] != "busy" and not self.fleet.pending(name)]
        return sorted(ready)

    def heartbeats(self, fresh_for: float = 0.05) -> dict[str, dict[str, Any]]:
        """The workers' heartbeats, read at most once per fresh_for (each consumer's loop asks)."""
        if time.monotonic() - self.beats_read[0] > fresh_for:
            self.beats_read = (time.monotonic(), self.fleet.heartbeats())
        return self.beats_read[1]

    def deliver(self, worker: str, task: dict[str, Any], origin: str = "unknown", base: bytes | None = None) -> None:
        """Into worker's inbox, its base bundle first; a task already there (a redelivery after a restart)
        is left as it is."""
        problems = schema.errors(task, schema.load("task"))
        if problems:
            raise Refused("; ".join(problems))
        with self.tree():
            inbox = self.fleet.root / "inbox" / worker
            if base is not None:
                schema.write_bytes_atomic(inbox / f"{task['id']}.base.bundle", base, replace=False)
            schema.write_atomic(inbox / f"{task['id']}.json", task, replace=False)
        self.mark("delivered", str(task["id"]), f"{worker} {origin}")

    def mark(self, kind: str, ident: str, text: str = "") -> None:
        (self.state / kind).mkdir(parents=True, exist_ok=True)
        (self.state / kind / ident).write_text(text)

    def delivered(self) -> dict[str, tuple[str, str]]:
        """Task id -> (worker, origin node) of what this host took and has not settled."""
        directory, found = self.state / "delivered", {}
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            worker, _space, origin = path.read_text().partition(" ")
            found[path.name] = (worker, origin or "unknown")
        return found

    def was_sent(self, ident: str) -> bool:
        return bool(ID.match(ident)) and (self.state / "sent" / ident).is_file()

    def received(self, ident: str, document: dict[str, Any], files: dict[str, bytes] | None = None) -> None:
        """A result of a task this host sent, for agentctl: written as the dispatcher, once, after
        its proposal's files (name in fleet/ -> bytes), so whoever sees the result finds them."""
        with self.tree():
            for name, data in sorted((files or {}).items()):
                schema.write_bytes_atomic(self.fleet.root / "fleet" / name, data)
            schema.write_atomic(self.fleet.root / "fleet" / f"{ident}.json", document, replace=False)
        (self.state / "sent" / ident).unlink(missing_ok=True)

    def settle(self, ident: str) -> None:
        (self.state / "delivered" / ident).unlink(missing_ok=True)

    def result(self, worker: str, ident: str) -> dict[str, Any] | None:
        with self.tree():
            if not os.path.lexists(self.fleet.root / "results" / worker / f"{ident}.json"):
                return None
            return self.fleet.result(worker, f"{ident}.json")

    def proposal(self, worker: str, ident: str) -> tuple[bytes, bytes | None]:
        """The manifest and bundle (None when it made no commit) worker wrote for ident: its files only."""
        owner, results = self.fleet.agents[worker], self.fleet.root / "results" / worker
        with self.tree():
            manifest = read_bytes(results / f"{ident}.proposal.json", owner, MAX_BYTES["proposal"])
            bundle = results / f"{ident}.bundle"
            return manifest, read_bytes(bundle, owner, BUNDLE_BYTES) if os.path.lexists(bundle) else None

    def beats(self) -> dict[str, tuple[bool, int]]:
        """Each local worker's (fresh heartbeat, tasks pending)."""
        with self.tree():
            beats = self.fleet.heartbeats()
            return {worker: (worker in beats and not self.fleet.is_stale(beats[worker]), len(self.fleet.pending(worker)))
                    for worker in self.roles}

    def goals(self) -> list[dict[str, Any]]:
        """This host's goals (the dispatcher's tasks), the latest last, as agentctl goals lists them."""
        if self.dispatcher_name is None:
            return []
        with self.tree():
            rows = goal_rows(self.fleet, self.dispatcher_name, None)[1:]
        return [{"goal": goal, "project": project, "status": status, "tasks": int(tasks)}
                for goal, project, status, tasks, _published in rows][-MAX_GOALS:]

    def outbox(self) -> list[tuple[Path, dict[str, Any], bytes | None]]:
        """Each task to send, with its base bundle when the dispatcher left one."""
        with self.tree():
            found = []
            for path, document in self._outbox():
                bundle = path.with_name(f"{document['task']['id']}.base.bundle")
                wanted = os.path.lexists(bundle) and "project" in document["task"]  # a base goes with a project task only
                try:
                    base = read_bytes(bundle, self.dispatcher_uid, BUNDLE_BYTES) if wanted else None
                except Refused as problem:
                    self.fleet.refuse(bundle, str(problem))
                    path.unlink(missing_ok=True)
                    bundle.unlink(missing_ok=True)
                    continue
                found.append((path, document, base))
            return found

    def show(self, view: dict[str, Any]) -> None:
        """The fleet's workers for agentctl status, as the dispatcher (fleet/ is its)."""
        with self.tree():
            if is_real_dir(self.fleet.root / "fleet"):
                schema.write_atomic(self.fleet.root / "fleet" / VIEW, view, replace=True)

    def sent(self, path: Path, document: dict[str, Any]) -> None:
        """Out of the outbox: the task as sent into fleet/<id>.sent.json (for its proposal's import;
        written, not moved: the unit mounts each directory on its own), its base bundle gone."""
        with self.tree():
            if is_real_dir(self.fleet.root / "fleet"):
                schema.write_atomic(self.fleet.root / "fleet" / f"{path.stem}.sent.json", document)
            path.with_name(f"{path.stem}.base.bundle").unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def _outbox(self) -> list[tuple[Path, dict[str, Any]]]:
        """Tasks the dispatcher wrote to send to the fleet: its files only, each a task with a target."""
        directory, found = self.fleet.root / "outbox", []
        if not directory.is_dir():
            return []
        for name in names(directory, self.fleet.problems)[:MAX_OUTBOX]:
            path = directory / name
            if name.startswith(".") or not name.endswith(".json"):
                continue  # a base bundle, read with its task
            try:
                document = read_document(path, "fleet-task", self.dispatcher_uid)
                problems = schema.errors(document["task"], schema.load("task"), "task")
                if problems or ("to" in document) == ("role" in document):
                    raise Refused("; ".join(problems) or "exactly one of to and role")
                if f"{document['task']['id']}.json" != path.name:
                    raise Refused("the task's id does not match the file name")
                found.append((path, document))
            except Refused as problem:
                self.fleet.refuse(path, str(problem))
                path.unlink(missing_ok=True)
                path.with_name(f"{path.stem}.base.bundle").unlink(missing_ok=True)
        return found


def task_subject(document: dict[str, Any]) -> str:
    return f"fleet.task.worker.{document['to']}" if document.get("to") else f"fleet.task.role.{document['role']}"


class Relay:
    """Each duty in its own loop, so none waits for another: the outbox and the workers' results are
    looked at every tick; each consumer long-polls (up to poll seconds) while a worker of it is idle."""

    def __init__(self, js: Any, kv: Any, local: Local, node: str, lease: float = 30.0, poll: float = 1.0,
                 max_payload: int = 1_048_576, tick: float = 0.05) -> None:
        self.js, self.kv, self.local, self.node, self.lease, self.poll = js, kv, local, node, lease, poll
        self.max_payload, self.tick = max_payload, tick
        self.chunk = min(CHUNK, max_payload // 2)  # a file's chunk and its headers fit in one message
        self.said: set[str] = set()  # bucket entries already refused: said once, not every beat
        self.goals_sent = 0.0
        self.running: dict[str, asyncio.Task[None]] = {}

    async def publish_outbox(self) -> bool:
        sent = 0
        for path, document, base in self.local.outbox():
            task = document["task"]
            self.local.mark("sent", task["id"])
            if base is not None:
                await put_file(self.js, self.node, "base", f"{task['project']}.{task['id']}", base, self.chunk)
            await self.js.publish(task_subject(document), json.dumps(task).encode(),
                                  headers={"Nats-Msg-Id": task["id"], ORIGIN: self.node})
            self.local.sent(path, document)
            sent += 1
        return sent > 0

    async def heartbeat(self) -> bool:
        beats = self.local.beats()
        for worker, role in sorted(self.local.roles.items()):
            fresh, pending = beats[worker]
            entry = {"node": self.node, "worker": worker, "role": role, "updated": time.time(),
                     "fresh": fresh, "pending": pending, "projects": sorted(self.local.projects.get(worker, []))}
            await self.kv.put(f"{self.node}.{worker}", json.dumps(entry).encode())
        if time.monotonic() - self.goals_sent > GOALS_EVERY:
            goals = self.local.goals()
            while len(value := json.dumps({"goals": goals}).encode()) > 4096:  # the bucket's largest value
                goals = goals[1:]
            await self.kv.put(f"{self.node}.{GOALS_KEY}", value)
            self.goals_sent = time.monotonic()
        self.local.show(await self.fleet_view())
        return False

    async def fleet_view(self) -> dict[str, Any]:
        """Every host's workers as the bucket holds them: other hosts' bytes, each entry checked (one
        that is not is said once and left out); its node and name are its key's (each host may write
        only its own keys), never what it says."""
        from nats.js.errors import KeyNotFoundError  # pylint: disable=import-outside-toplevel

        prefix = f"$KV.{WORKERS}."
        info = await self.js.stream_info(f"KV_{WORKERS}", subjects_filter=f"{prefix}>")
        workers, goals = [], []
        for subject in sorted(info.state.subjects or {})[:MAX_VIEW]:
            node, _dot, worker = subject[len(prefix):].partition(".")
            try:
                value = parse((await self.kv.get(f"{node}.{worker}")).value or b"", 5 * MAX_GOALS + 80)
                if not isinstance(value, dict):
                    raise Refused("not a JSON object")
                if worker == GOALS_KEY:
                    goals += self.goals_of(node, value)
                    continue
                row = {"node": node, "worker": worker, **{key: value.get(key) for key in ("role", "fresh", "pending", "updated")},
                       "projects": value.get("projects", [])}
                problems = schema.errors({"updated": 0, "workers": [row]}, schema.load("fleet-workers"))
                if problems:
                    raise Refused("; ".join(problems[:3]))
            except KeyNotFoundError:
                continue
            except (ValueError, Refused, TypeError) as problem:
                if subject not in self.said:
                    self.said.add(subject)
                    self.local.fleet.refuse(Path(f"nats:{subject}"), str(problem))
                continue
            workers.append(row)
        return {"updated": time.time(), "workers": workers, "goals": goals}

    @staticmethod
    def goals_of(node: str, value: dict[str, Any]) -> list[dict[str, Any]]:
        """A host's goals from its bucket entry, each with the key's node; Refused when out of shape."""
        listed = value.get("goals")
        if not isinstance(listed, list) or len(listed) > MAX_GOALS or not all(isinstance(row, dict) for row in listed):
            raise Refused(f"goals: a list of at most {MAX_GOALS} objects")
        rows = [{"node": node, **{key: row.get(key) for key in ("goal", "project", "status", "tasks")}} for row in listed]
        problems = schema.errors({"updated": 0, "workers": [], "goals": rows}, schema.load("fleet-workers"))
        if problems:
            raise Refused("; ".join(problems[:3]))
        return rows

    async def take(self, subscription: Any, candidates: list[str], by_role: bool = False) -> bool:
        """One task from subscription while one of candidates is idle here; False when none was taken.
        A role's project task goes only to a worker with that project (else back to the fleet);
        a task for one worker goes to it whatever it holds (its result says what it lacks)."""
        if not self.idle_here(candidates):
            return False
        try:
            messages = await subscription.fetch(1, timeout=self.poll)
        except asyncio.TimeoutError:
            return False
        for message in messages:
            origin = (message.headers or {}).get(ORIGIN, "")
            origin = origin if NODE.match(origin) else "unknown"
            try:
                task = parse(message.data, MAX_ITEMS["task"])  # another host's bytes: shape-capped
                if not isinstance(task, dict):
                    raise Refused("not a JSON object")
                # A redelivery of a task a worker here already holds (a restart lost its lease) stays with it.
                held = self.local.delivered().get(str(task.get("id")))
                idle = [held[0]] if held else self.idle_here(candidates)  # another consumer may have fed it
                if by_role and not held and "project" in task:
                    idle = [name for name in idle if task["project"] in self.local.projects.get(name, [])]
                if not idle:
                    # Back to the fleet, for a worker that is idle: at once, or a second later for a
                    # project no worker here has (no host then takes it over and over).
                    await message.nak(delay=1.0 if by_role and "project" in task else None)
                    continue
                base = None if held else await self.base_of(task, origin)  # a timeout here: redelivered
                if not held:
                    self.local.deliver(idle[0], task, origin, base)
            except (ValueError, Refused, TypeError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError) as problem:
                self.local.fleet.refuse(Path(f"nats:{message.subject}"), str(problem))
                await message.term()  # a task no worker can run is never redelivered
                continue
            self.track(message, idle[0], str(task["id"]), origin)
        return bool(messages)

    async def base_of(self, task: dict[str, Any], origin: str) -> bytes | None:
        """The base bundle the task's origin sent with it, if any (a base its mirror has needs none);
        one that does not match its index is said and left out (the worker then says what it lacks)."""
        if "base" not in task or origin == "unknown" or not ID.match(str(task.get("id"))) \
                or not NAME.match(str(task.get("project"))):
            return None  # an id or project out of shape is refused with the task, never put in a subject
        if not any(task["project"] in names for names in self.local.projects.values()):
            return None  # no worker here takes it: the worker says so; this host may not read its base
        scoped = f"{task['project']}.{task['id']}"
        try:
            return await get_file(self.js, origin, "base", scoped, BUNDLE_BYTES)
        except FileRefused as problem:
            self.local.fleet.refuse(Path(f"nats:fleet.file.{origin}.base.{scoped}"), str(problem))
            return None

    def idle_here(self, candidates: list[str]) -> list[str]:
        return self.local.idle([name for name in candidates if name not in self.busy_workers()])

    def busy_workers(self) -> set[str]:
        return {worker for worker, _origin in self.local.delivered().values()}

    def track(self, message: Any, worker: str, ident: str, origin: str) -> None:
        """Follow ident with message; one followed since a restart without it gets the message now."""
        if ident in self.running:
            self.running[ident].cancel()
        self.running[ident] = asyncio.get_running_loop().create_task(self.follow(message, worker, ident, origin))

    def forget_published(self, older_than: float) -> None:
        """Marks of results published before the stream's duplicate window: it has forgotten them too."""
        directory = self.local.state / "published"
        for path in directory.iterdir() if directory.is_dir() else []:
            if path.stat().st_mtime < time.time() - older_than:
                path.unlink(missing_ok=True)

    async def follow(self, message: Any, worker: str, ident: str, origin: str) -> None:
        """Hold the lease until the result exists; publish it, then acknowledge. A failure on the
        way (the cluster electing a leader, a timeout) is said and tried again: a follower that
        gave up would leave its worker busy for good."""
        last = time.monotonic()
        while True:
            try:
                while (result := self.local.result(worker, ident)) is None:
                    if message is not None and time.monotonic() - last > self.lease / 3:
                        await message.in_progress()
                        last = time.monotonic()
                    await asyncio.sleep(self.tick)
                await self.publish_result(worker, ident, result, origin)
                if message is not None:
                    await message.ack_sync(timeout=10)
                break
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - whatever the client raised, the task is not given up
                print(f"agentfleet-relay: {ident}: {ascii(type(error).__name__ + ': ' + str(error))}; trying again",
                      file=sys.stderr, flush=True)
                await asyncio.sleep(1)
        self.local.settle(ident)
        self.running.pop(ident, None)

    async def publish_result(self, worker: str, ident: str, result: dict[str, Any], origin: str) -> None:
        if "proposal" in result:  # its files first: the origin that reads the result finds them
            try:
                manifest, bundle = self.local.proposal(worker, ident)
            except Refused as problem:
                self.local.fleet.refuse(Path(f"results/{worker}/{ident}.proposal.json"), str(problem))
                result = {key: value for key, value in result.items() if key != "proposal"}
            else:
                await put_file(self.js, self.node, "manifest", f"{origin}.{ident}", manifest, self.chunk)
                if bundle is not None:
                    await put_file(self.js, self.node, "bundle", f"{origin}.{ident}", bundle, self.chunk)
        payload = json.dumps({"node": self.node, "worker": worker, "result": result}).encode()
        if len(payload) > self.max_payload - 4096:  # the rest stays on this host, where the fleet can fetch it
            kept = f"(output of {len(payload)} bytes, over the fleet's message size: kept on {self.node} in results/{worker}/{ident}.json)"
            payload = json.dumps({"node": self.node, "worker": worker, "result": {**result, "output": kept}}).encode()
        ack = await self.js.publish(f"fleet.result.{self.node}.{origin}.{ident}", payload, headers={"Nats-Msg-Id": ident})
        ours = (self.local.state / "published" / ident).is_file()
        self.local.mark("published", ident)
        if ack.duplicate and not ours:  # the stream holds another host's result: this one came late
            self.local.duplicates.append(ident)
            duplicates = self.local.state / "duplicates.jsonl"
            with duplicates.open("a", encoding="utf-8") as log:
                log.write(json.dumps({"task": ident, "worker": worker, "status": result.get("status"),
                                      "recorded": time.time()}) + "\n")

    def resume(self) -> None:
        """After a restart: follow what was delivered and not settled (its message, if any, is
        redelivered to whoever pulls next; this host publishes its result all the same)."""
        for ident, (worker, origin) in sorted(self.local.delivered().items()):
            if ident not in self.running:
                self.running[ident] = asyncio.get_running_loop().create_task(self.follow(None, worker, ident, origin))

    async def consumers(self) -> list[tuple[Any, list[str], bool]]:
        """A pull subscription per local worker and per local role, with the workers it may feed."""
        subscriptions = []
        for worker in sorted(self.local.roles):
            subscriptions.append((await self.js.pull_subscribe_bind(f"worker-{worker}", stream=TASKS), [worker], False))
        for role in sorted(set(self.local.roles.values()) - {""}):
            workers = sorted(name for name, own in self.local.roles.items() if own == role)
            subscriptions.append((await self.js.pull_subscribe_bind(f"role-{role}", stream=TASKS), workers, True))
        return subscriptions

    async def collect(self, subscription: Any) -> bool:
        """Results of the tasks this host sent, into the dispatcher's fleet/ directory; any other
        (a task another relay claimed to be ours) is acknowledged and dropped."""
        try:
            messages = await subscription.fetch(16, timeout=self.poll)
        except asyncio.TimeoutError:
            return False
        for message in messages:
            _fleet, _result, runner, _origin, ident = message.subject.split(".", 4)
            try:
                if self.local.was_sent(ident):
                    document = parse(message.data, MAX_ITEMS["result"] + 8)
                    if not isinstance(document, dict) or not isinstance(document.get("result"), dict):
                        raise Refused("not a fleet result")
                    problems = schema.errors(document["result"], schema.load("result"), "result")
                    if problems or document["result"]["id"] != ident:
                        raise Refused("; ".join(problems) or "the result's id is not the subject's")
                    if not isinstance(document.get("worker"), str) or not NAME.match(document["worker"]):
                        raise Refused("the worker is not a name")
                    # Who ran it is the subject's node (each host publishes only under its own).
                    result, files = await self.proposal_files(runner, ident, document["result"], document["worker"])
                    self.local.received(ident, {"node": runner, "worker": document["worker"], "result": result}, files)
            except OSError as problem:  # not stored: redelivered after its ack wait, tried again
                self.local.fleet.refuse(Path(f"nats:{message.subject}"), str(problem))
                continue
            except (ValueError, Refused, TypeError, KeyError) as problem:
                self.local.fleet.refuse(Path(f"nats:{message.subject}"), str(problem))
            await message.ack()
        return bool(messages)

    async def proposal_files(self, runner: str, ident: str, result: dict[str, Any],
                             worker: str) -> tuple[dict[str, Any], dict[str, bytes]]:
        """A result's proposal as runner sent it: the manifest (checked: this task, this worker) and
        its bundle, by their names in fleet/. One that is missing or out of shape is said, and the
        result is kept without its proposal (nothing to integrate)."""
        if "proposal" not in result:
            return result, {}
        try:
            raw = await get_file(self.js, runner, "manifest", f"{self.node}.{ident}", MAX_BYTES["proposal"])
            manifest = parse(raw or b"", MAX_ITEMS["proposal"])
            problems = schema.errors(manifest, schema.load("proposal")) if isinstance(manifest, dict) else ["not an object"]
            if problems or (manifest["id"], manifest["worker"]) != (ident, worker):
                raise FileRefused("; ".join(problems[:3]) or "the manifest names another task or worker")
            bundle = await get_file(self.js, runner, "bundle", f"{self.node}.{ident}", BUNDLE_BYTES)
            if bundle is None and manifest["commits"]:
                raise FileRefused("commits without a bundle")
        except (FileRefused, ValueError, Refused) as problem:
            self.local.fleet.refuse(Path(f"nats:fleet.file.{runner}.manifest.{self.node}.{ident}"), str(problem))
            return {key: value for key, value in result.items() if key != "proposal"}, {}
        files = {f"{ident}.proposal.json": json.dumps(manifest, sort_keys=True).encode()}
        return {**result, "proposal": f"{ident}.proposal.json"}, files | ({f"{ident}.bundle": bundle} if bundle else {})

    async def run(self, stop: asyncio.Event, beat_every: float = 2.0, window: float = 86400.0) -> None:
        self.resume()
        self.forget_published(window)
        results = await self.js.pull_subscribe_bind(f"results-{self.node}", stream=RESULTS)
        steps: list[tuple[Callable[[], Awaitable[bool]], float]] = [
            (self.publish_outbox, self.tick), (self.heartbeat, beat_every), (lambda: self.collect(results), self.tick)]
        steps += [(functools.partial(self.take, subscription, workers, by_role), self.tick)
                  for subscription, workers, by_role in await self.consumers()]
        duties = [asyncio.get_running_loop().create_task(self.duty(step, pause)) for step, pause in steps]
        await stop.wait()
        for duty in duties:
            duty.cancel()  # a pull cut short leaves its task to be redelivered: nothing is lost
        await asyncio.gather(*duties, return_exceptions=True)

    async def duty(self, step: Callable[[], Awaitable[bool]], pause: float) -> None:
        """step again and again, pause between unless it found work; a failure on the way (a leader
        election, a timeout) is said and tried again a second later: a duty never gives up."""
        while True:
            wait = pause
            try:
                busy = await step()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - whatever the client raised, the duty goes on
                print(f"agentfleet-relay: {ascii(type(error).__name__ + ': ' + str(error))}; trying again",
                      file=sys.stderr, flush=True)
                busy, wait = False, max(pause, 1.0)
            self.report()
            if not busy:
                await asyncio.sleep(wait)

    def report(self) -> None:
        """Each refused file once, to the journal; escaped, since names and reasons quote agents' bytes."""
        for problem in self.local.fleet.problems:
            print(f"agentfleet-relay: refused {ascii(problem)}", file=sys.stderr, flush=True)
        self.local.fleet.problems.clear()


SETTINGS: dict[str, type | tuple[type, ...]] = {
    "url": str, "ca": str, "cert": str, "key": str, "node": str, "root": str, "state": str, "roles": dict, "agents": dict,
    "lease": (int, float), "dispatcher_uid": int, "dispatcher_gid": int, "dispatcher_groups": list}


def load_settings(path: str) -> dict[str, Any]:
    """The relay's settings file (written by the nats role, root's): every field checked, each named."""
    with open(path, encoding="utf-8") as handle:
        settings: dict[str, Any] = json.load(handle)
    problems = [f"{key}: required, a {kind}" for key, kind in SETTINGS.items()
                if not isinstance(settings.get(key), kind) or isinstance(settings.get(key), bool)]
    if problems:
        raise SystemExit(f"agentfleet-relay: {path}: " + "; ".join(problems))
    return settings


def projects_of(settings: dict[str, Any]) -> dict[str, list[str]]:
    """worker -> its projects (settings of a relay older than projects have none)."""
    given = settings.get("projects", {})
    if not isinstance(given, dict) or not all(isinstance(names, list) and all(isinstance(name, str) for name in names)
                                              for names in given.values()):
        raise SystemExit("agentfleet-relay: projects: a mapping of worker to a list of project names")
    return {str(worker): list(names) for worker, names in given.items()}


def dispatcher(settings: dict[str, Any]) -> Dispatcher:
    return Dispatcher(settings["dispatcher_uid"], settings["dispatcher_gid"],
                      tuple(int(gid) for gid in settings["dispatcher_groups"]))


async def serve(settings: dict[str, Any]) -> None:
    import nats  # pylint: disable=import-outside-toplevel  # only the service needs the client library

    context = ssl.create_default_context(cafile=settings["ca"])
    context.load_cert_chain(settings["cert"], settings["key"])
    client = await nats.connect(settings["url"], tls=context, inbox_prefix=f"_INBOX_{settings['node']}",
                                max_reconnect_attempts=-1, name=f"agentfleet-relay-{settings['node']}")
    js = client.jetstream(timeout=10)
    fleet = Fleet(Path(settings["root"]), {name: int(uid) for name, uid in settings["agents"].items()},
                  interval=float(settings.get("interval", 5)))
    name = next((agent for agent, uid in sorted(settings["agents"].items()) if uid == settings["dispatcher_uid"]), None)
    local = Local(fleet, dict(settings["roles"]), Path(settings["state"]), settings["dispatcher_uid"],
                  dispatcher=dispatcher(settings), projects=projects_of(settings), dispatcher_name=name)
    relay = Relay(js, await js.key_value(WORKERS), local, settings["node"], lease=float(settings["lease"]),
                  max_payload=int(settings.get("max_payload", 1_048_576)))
    window = float(settings.get("duplicate_window", 86400))
    stop = asyncio.Event()
    for sign in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sign, stop.set)
    try:
        await relay.run(stop, window=window)
    finally:
        for follower in relay.running.values():
            follower.cancel()  # what was delivered and not settled is resumed at the next start
        await client.close()  # nothing to drain: every message not acknowledged is redelivered


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        raise SystemExit("usage: agentfleet_relay.py SETTINGS.json ACCOUNT")
    settings = load_settings(argv[1])
    if os.geteuid() == 0:  # the service: never runs a step of its work as root
        account = pwd.getpwnam(argv[2])
        dispatcher(settings).become(account.pw_uid, account.pw_gid)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
