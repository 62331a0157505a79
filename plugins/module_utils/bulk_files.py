"""The one writer of agentfleet's modules: directories and files with numeric owners, each written
through a temporary file in its directory (checked by an optional validate command first) and
renamed into place, so a reader never sees a partial or invalid file; an entry that already has
its content, owner and mode is left alone. Nothing is ever deleted."""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from typing import Any, Callable

Spec = dict[str, Any]
# Runs an argv and returns (rc, stdout, stderr): AnsibleModule.run_command in a module.
Runner = Callable[[list[str]], tuple[int, str, str]]
# A longer file (a CA bundle) is shown in a diff by its size only: a diff of it helps nobody.
DIFF_LIMIT = 16384


class ValidationError(Exception):
    """The validate command refused a file; the live file was left as it was."""


def data(spec: Spec) -> bytes:
    """What the file must hold: content (a secret) or text (shown under --diff)."""
    value = spec["content"] if spec.get("content") is not None else spec["text"]
    return value if isinstance(value, bytes) else str(value).encode()


def current(path: str) -> bytes | None:
    """The file's bytes, None when it is missing or not a regular file (a link is never followed)."""
    try:
        status = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(status.st_mode):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def _owned(status: os.stat_result, spec: Spec) -> bool:
    return (status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode)) == (spec["uid"], spec["gid"], int(spec["mode"], 8))


def stale_directories(directories: list[Spec]) -> list[str]:
    """Directories that are missing, links, or differ in owner or mode."""
    stale = []
    for spec in directories:
        try:
            status = os.lstat(spec["path"])
        except FileNotFoundError:
            stale.append(spec["path"])
            continue
        if not stat.S_ISDIR(status.st_mode) or not _owned(status, spec):
            stale.append(spec["path"])
    return stale


def ensure_directories(directories: list[Spec], stale: list[str]) -> None:
    for spec in directories:
        if spec["path"] in stale:
            if os.path.islink(spec["path"]):
                raise OSError(f"{spec['path']} is a symbolic link; move it away")
            os.makedirs(spec["path"], mode=0o700, exist_ok=True)
            os.lchown(spec["path"], spec["uid"], spec["gid"])
            os.chmod(spec["path"], int(spec["mode"], 8))


def stale_files(files: list[Spec]) -> list[str]:
    """Paths whose file is missing, is not a regular file, or differs in content, owner or mode."""
    return [spec["path"] for spec in files
            if current(spec["path"]) != data(spec) or not _owned(os.lstat(spec["path"]), spec)]


def prepare(spec: Spec, run: Runner | None = None) -> str:
    """The new file as a temporary file next to the live one, with its owner and mode, checked by
    spec['validate'] (a command where %s is the new file) when it has one; removed on any failure."""
    descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(spec["path"]), prefix=".agentfleet-")
    try:
        os.fchmod(descriptor, int(spec["mode"], 8))
        os.fchown(descriptor, spec["uid"], spec["gid"])
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data(spec))
        if spec.get("validate"):
            check(spec["path"], str(spec["validate"]), temporary, run)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    return temporary


def write_all(specs: list[Spec], run: Runner | None = None) -> None:
    """Files without a validate command first (a check may read them: nginx.conf loads gateway.js),
    then every checked file prepared and checked before any of them is renamed into place: a file
    its command refuses leaves every checked live file as it was."""
    for spec in specs:
        if not spec.get("validate"):
            os.replace(prepare(spec), spec["path"])
    prepared: list[tuple[str, str]] = []
    try:
        for spec in specs:
            if spec.get("validate"):
                prepared.append((prepare(spec, run), spec["path"]))
    except BaseException:
        for temporary, _path in prepared:
            os.unlink(temporary)
        raise
    for temporary, path in prepared:
        os.replace(temporary, path)


def write(spec: Spec, run: Runner | None = None) -> None:
    """One file, atomically (write_all of one)."""
    write_all([spec], run)


def check(path: str, command: str, temporary: str, run: Runner | None) -> None:
    if "%s" not in command or run is None:
        raise ValidationError(f"{path}: validate must name the file as %s and needs a runner: {command!r}")
    rc, out, err = run([part.replace("%s", temporary) for part in shlex.split(command)])
    if rc != 0:
        raise ValidationError(f"{path}: refused by {command!r} (exit {rc}), the live file is unchanged: "
                              f"{(err or out).strip()[-2000:]}")


def diff(spec: Spec) -> dict[str, str]:
    before, after = (current(spec["path"]) or b"").decode(errors="replace"), data(spec).decode(errors="replace")
    if max(len(before), len(after)) > DIFF_LIMIT:
        before, after = f"({len(before)} characters)\n", f"({len(after)} characters)\n"
    return {"before_header": spec["path"], "after_header": spec["path"], "before": before, "after": after}
