#!/usr/bin/env python3
"""Benchmark: accounts and tree for 3 / 30 / 100 agents on a fresh Debian 13 host container.

    bench/agent_tree.py [count ...]     (default 3 30 100; run inside the venv: scripts/lib.sh)

For each count: a new container from agentfleet-test/host:trixie (scripts/build-test-images),
then the agents scenario's playbook three times: first run, second run, --check. Prints wall
time and the changed count of each; the second run and --check must report changed=0.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from table import print_table

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "molecule" / "agents" / "converge.yml"
IMAGE = "agentfleet-test/host:trixie"
CHANGED = re.compile(r"^\S+\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+).*failed=(?P<failed>\d+)", re.M)


def playbook(inventory: Path, count: int, *extra: str) -> tuple[float, int]:
    command = ["ansible-playbook", "-i", str(inventory), str(PLAYBOOK), "-e", f"agentfleet_test_agent_count={count}",
               *extra]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = time.monotonic() - started
    match = CHANGED.search(result.stdout)
    if result.returncode != 0 or match is None:
        sys.exit(f"playbook failed for {count} agents:\n{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return elapsed, int(match["changed"])


def bench(count: int) -> list[str]:
    name = f"agentfleet-bench-agents-{count}"
    subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    subprocess.run(["docker", "run", "-d", "--name", name, IMAGE, "sleep", "infinity"], capture_output=True, check=True)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            inventory = Path(scratch) / "hosts.json"
            host = {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"}
            inventory.write_text(json.dumps({"agentfleet_hosts": {"hosts": {name: host}}}))
            first, second, check = (playbook(inventory, count), playbook(inventory, count),
                                    playbook(inventory, count, "--check"))
        users = subprocess.run(["docker", "exec", name, "sh", "-c", "getent passwd | grep -c '^agent-'"],
                               capture_output=True, text=True, check=True).stdout.strip()
        dirs = subprocess.run(["docker", "exec", name, "sh", "-c", "find /srv/agentfleet -type d | wc -l"],
                              capture_output=True, text=True, check=True).stdout.strip()
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)
    return [str(count), users, dirs, f"{first[0]:.1f} s ({first[1]})", f"{second[0]:.1f} s ({second[1]})",
            f"{check[0]:.1f} s ({check[1]})"]


def main() -> None:
    counts = [int(arg) for arg in sys.argv[1:]] or [3, 30, 100]
    header = ["agents", "accounts", "directories", "first run (changed)", "second run (changed)", "--check (changed)"]
    rows = [bench(count) for count in counts]
    print_table(header, rows)


if __name__ == "__main__":
    main()
