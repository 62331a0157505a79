"""agentctl secret set model-key: root sets the model API key on the host, read from stdin (never
an argument, which every process on the host can read), written only where the gateway reads it,
and the gateway restarted to use it. The deploy keeps a key set this way when its inventory holds
none."""

from __future__ import annotations

import argparse
import getpass
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

KEY = re.compile(r"^[A-Za-z0-9_-]{1,512}$")


def gateway_conf(key: str) -> str:
    return f'proxy_set_header x-api-key "{key}";\n'


def write_atomic(path: Path, text: str, uid: int, gid: int, mode: int) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".agentfleet-")
    try:
        os.fchmod(descriptor, mode)
        os.fchown(descriptor, uid, gid)
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise


def set_model_key(stack_dir: Path, owner: tuple[int, int], key: str, state: Path) -> None:
    """Refuses anything but letters, digits, _ and -, which also keeps it a single nginx string.
    state is what agentctl status reads, readable by all (the key file is the gateway's only)."""
    if not KEY.fullmatch(key):
        raise SystemExit("agentctl secret: the model key must be letters, digits, _ and - only (read from stdin)")
    write_atomic(stack_dir / "secrets" / "gateway_key.conf", gateway_conf(key), owner[0], owner[1], 0o400)
    write_atomic(state, "set\n", 0, 0, 0o644)


def key_missing(state: Path) -> bool:
    """True unless the host's state file (root's, written with the key) says the key is set."""
    try:
        status = state.lstat()
        if not state.is_file() or state.is_symlink() or status.st_uid != 0 or status.st_size > 64:
            return True
        return state.read_text(encoding="ascii", errors="replace").strip() != "set"
    except OSError:
        return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="agentctl secret", description=__doc__)
    parser.add_argument("action", choices=["set"])
    parser.add_argument("name", choices=["model-key"])
    parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("agentctl secret: only root sets secrets")
    stack_dir = Path(os.environ["AGENTFLEET_STACK_DIR"])
    uid, gid = (int(part) for part in os.environ["AGENTFLEET_GATEWAY_OWNER"].split(":"))
    key = getpass.getpass("model key: ") if sys.stdin.isatty() else sys.stdin.readline()
    set_model_key(stack_dir, (uid, gid), key.strip(), Path(os.environ["AGENTFLEET_MODEL_KEY_STATE"]))
    restarted = subprocess.run(["docker", "compose", "--project-directory", str(stack_dir), "restart", "gateway"],
                               capture_output=True, text=True, check=False)
    if restarted.returncode != 0:
        raise SystemExit(f"agentctl secret: the key is set, but the gateway did not restart: {restarted.stderr.strip()}")
    print("model key set; the gateway restarted with it")
    return 0
