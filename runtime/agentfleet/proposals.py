"""Proposals: a worker's commits on top of a base, as data the trusted side imports safely.

The worker side (`propose`) commits what the backend left uncommitted, in the agent's name, and
writes <id>.bundle (exactly the commits base..HEAD under one ref) and <id>.proposal.json (the
manifest) into its own results directory. The trusted side (`import_proposal`) never runs
anything from the proposal: git runs with no system or global configuration and no hooks, the
bundle is checked for size and for its one ref, its objects are fsck'ed into the integration
repository and its head set as refs/proposals/<worker>/<id>, and its history and tree are checked:
built on the base, no .git directory, no submodule, no symlink that leaves the checkout, no file
over a size cap. Anything else is refused with a reason.
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import schema
from .untrusted import ID, NAME, Refused, read_bytes

REF = "refs/heads/agentfleet-proposal"  # the one ref a proposal bundle may carry
MAX_COMMITS = 200
MAX_SUBJECT = 200


@dataclass(frozen=True)
class Caps:
    bundle_bytes: int = 64 * 2 ** 20
    file_bytes: int = 16 * 2 ** 20
    files: int = 50_000


def git(repo: Path, *args: str, stdin: bytes | None = None, timeout: float = 120, settings: Path | None = None,
        ssh: str | None = None) -> str:
    """git in repo, isolated from every configuration but the repository's own (and settings, as
    the global file: git 2.39 takes safe.directory from nowhere else) and from hooks. Only local
    paths are reachable, unless ssh (a GIT_SSH_COMMAND, "" for none: the host publishing) opens the network."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": str(settings or "/dev/null"), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    network = ["-c", "protocol.allow=user"] if ssh is not None else ["-c", "protocol.allow=never"]
    env |= {"GIT_SSH_COMMAND": ssh or "ssh", "GIT_PROTOCOL_FROM_USER": "1"} if ssh is not None else {}
    command = ["git", "-C", str(repo), "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "gc.auto=0",
               "-c", "maintenance.auto=false", *network, "-c", "protocol.file.allow=always", *args]
    done = subprocess.run(command, input=stdin, capture_output=True, env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise Refused(f"git {args[0]}: {done.stderr.decode('utf-8', 'replace').strip()[:300]}")
    return done.stdout.decode("utf-8", "replace")


@contextmanager
def trusting(*repositories: Path) -> Iterator[Path]:
    """A settings file that lets git read repositories another account owns (safe.directory)."""
    with tempfile.NamedTemporaryFile("w", prefix="agentfleet-git-", suffix=".conf") as settings:
        settings.write("[safe]\n" + "".join(f"\tdirectory = {path}\n\tdirectory = {path}/.git\n" for path in repositories))
        settings.flush()
        yield Path(settings.name)


def clone(mirror: Path, target: Path, branch: str, base: str, shared: tuple[tuple[Path, str], ...] = ()) -> None:
    """target on a new branch at base, cleaned of everything else: a clone of a mirror another
    account owns (the host's, mounted read-only) made once, then moved from task to task, which
    rewrites only the files that differ. A base the mirror lacks is fetched from the first of shared
    (a repository or a bundle, and its ref) that exists: the integration repository, then the bundle
    a task from another host of the fleet came with. A target already on branch (a retried task) is kept."""
    with trusting(mirror, *(source for source, _ref in shared)) as settings:
        if not (target / ".git").is_dir():
            git(target.parent, "clone", "--quiet", "--no-checkout", str(mirror), target.name, settings=settings)
        elif git(target, "symbolic-ref", "--quiet", "HEAD").strip() == f"refs/heads/{branch}":
            return
        if not has_commit(target, base):
            git(target, "fetch", "--quiet", "--no-tags", str(mirror), "+refs/heads/*:refs/remotes/origin/*",
                settings=settings)
        for source, ref in shared:
            if not has_commit(target, base) and ((source / "HEAD").exists() or source.is_file()):
                git(target, "fetch", "--quiet", "--no-tags", str(source), f"+{ref}:refs/agentfleet/base", settings=settings)
    git(target, "checkout", "--quiet", "--force", "-B", branch, base)
    git(target, "clean", "--quiet", "-ffdx")


def has_commit(repo: Path, commit: str, settings: Path | None = None) -> bool:
    try:
        git(repo, "cat-file", "-e", f"{commit}^{{commit}}", settings=settings)
    except Refused:
        return False
    return True


def propose(checkout: Path, base: str, agent: str, ident: str, summary: str, out: Path) -> dict[str, Any]:
    """Commit what is left uncommitted, then write <ident>.bundle and <ident>.proposal.json in out."""
    if not NAME.match(agent) or not ID.match(ident):
        raise ValueError("agent or task id is not a name")
    identity = ["-c", f"user.name={agent}", "-c", f"user.email={agent}@agentfleet.invalid"]
    git(checkout, "add", "--all")
    if git(checkout, "status", "--porcelain"):
        git(checkout, *identity, "commit", "--quiet", "--no-verify", "-m", f"{agent}: uncommitted work of task {ident}")
    head = git(checkout, "rev-parse", "HEAD").strip()
    commits = git(checkout, "log", "--format=%H %s", f"{base}..{head}").splitlines()
    manifest: dict[str, Any] = {"id": ident, "worker": agent, "base": base, "head": head, "summary": summary[:20_000],
                                "commits": [{"id": line[:40], "subject": line[41:41 + MAX_SUBJECT]}
                                            for line in commits[:MAX_COMMITS]],
                                "files": _changed(checkout, base, head)}
    if commits:
        git(checkout, "branch", "--force", "agentfleet-proposal", head)
        git(checkout, "bundle", "create", "--quiet", str(out / f".{ident}.bundle"), f"{base}..agentfleet-proposal")
        os.replace(out / f".{ident}.bundle", out / f"{ident}.bundle")
    # Replaced on a retried task, with its bundle: the result, written once, names the final pair.
    schema.write_atomic(out / f"{ident}.proposal.json", manifest)
    return manifest


def _changed(checkout: Path, base: str, head: str) -> list[dict[str, Any]]:
    files = []
    # --no-renames: a rename is a deletion and an addition, each with its own path.
    for line in git(checkout, "diff", "--numstat", "--no-renames", "-z", base, head).split("\0"):
        added, _tab, rest = line.partition("\t")
        deleted, _tab, path = rest.partition("\t")
        if path:
            files.append({"path": path[:4096], "added": int(added) if added.isdigit() else None,
                          "deleted": int(deleted) if deleted.isdigit() else None})
    return files


def import_proposal(bundle: Path, owner: int | None, repo: Path, worker: str, ident: str, base: str,
                    caps: Caps = Caps()) -> str:
    """Fetch a worker's bundle into refs/proposals/<worker>/<ident> of repo; its head commit.

    bundle must be results/<worker>/<ident>.bundle owned by the worker (owner): where it lives
    says whose it is, as for results."""
    if not NAME.match(worker) or not ID.match(ident):
        raise Refused("worker or task id is not a name")
    data = read_bytes(bundle, owner, caps.bundle_bytes)
    scratch = repo / f".agentfleet-import-{worker}-{ident}.bundle"
    scratch.write_bytes(data)  # the bytes checked above, not whatever the path holds by now
    try:
        heads = [line.split(" ", 1) for line in git(repo, "bundle", "list-heads", str(scratch)).splitlines()]
        if [name for _sha, name in heads] != [REF]:
            raise Refused(f"the bundle carries {sorted(name for _sha, name in heads)[:5]}, not exactly {REF}")
        git(repo, "bundle", "verify", "--quiet", str(scratch))
        target = f"refs/proposals/{worker}/{ident}"
        head = heads[0][0]
        # Not `git fetch`: git before 2.46 does not fsck what it takes from a bundle. index-pack
        # --strict checks every object of the pack (the bytes after the header) before any ref moves.
        pack = data.partition(b"\n\n")[2]
        git(repo, "index-pack", "--stdin", "--fix-thin", "--strict", stdin=pack)
        git(repo, "update-ref", target, head)
        try:
            _check_history(repo, base, head)
            _check_tree(repo, head, caps)
        except Refused:
            git(repo, "update-ref", "-d", target)
            raise
        return head
    finally:
        scratch.unlink(missing_ok=True)


def _check_history(repo: Path, base: str, head: str) -> None:
    count = int(git(repo, "rev-list", "--count", f"{base}..{head}").strip())
    if count > MAX_COMMITS:
        raise Refused(f"{count} commits, over the limit of {MAX_COMMITS}")
    try:
        git(repo, "merge-base", "--is-ancestor", base, head)
    except Refused:
        raise Refused(f"the proposal does not build on its base {base[:12]}") from None


def _check_tree(repo: Path, head: str, caps: Caps) -> None:
    """No file over the cap, no more files than the cap, no symlink that points out of the checkout."""
    entries = git(repo, "ls-tree", "-r", "-l", "-z", head).split("\0")
    if len(entries) > caps.files:
        raise Refused(f"more than {caps.files} files")
    for entry in filter(None, entries):
        meta, _tab, path = entry.partition("\t")
        mode, kind, blob, size = meta.split()
        # index-pack's fsck checks objects, not paths a checkout would write: those checks are here.
        if any(part.lower().rstrip(" .") in (".git", "git~1") for part in path.split("/")):
            raise Refused(f"{path[:200]!r} is inside a .git directory")
        if kind == "commit":
            raise Refused(f"{path[:200]!r} is a submodule")
        if size != "-" and int(size) > caps.file_bytes:
            raise Refused(f"{path[:200]!r} is {size} bytes, over the limit of {caps.file_bytes}")
        if mode == "120000":
            target = git(repo, "cat-file", "blob", blob)
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise Refused(f"{path[:200]!r} is a symlink out of the checkout ({target[:200]!r})")
