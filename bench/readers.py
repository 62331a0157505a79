#!/usr/bin/env python3
"""Benchmark: what reading agents' files safely costs the monitor and agentctl.

    bench/readers.py [results ...]      (default 1000 10000)

On a scratch tree with 3 workers: N valid results spread over them, plus one hostile file of
each kind per worker (symlink to /dev/zero, FIFO, 8 MiB of nested brackets). Prints the time of
`agentctl results` (every result read and checked), of a monitor check while every result waits
out its retention (lstat only, after the first), of a check that archives them all, and the
peak memory (tracemalloc) of each; then the depth scan and parse of one 8 MiB document.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "runtime"), str(ROOT / "tests")]
from agentfleet import agentctl  # noqa: E402
from agentfleet.backends import Backend  # noqa: E402
from agentfleet.config import Config  # noqa: E402
from agentfleet.fleet import Fleet  # noqa: E402
from agentfleet.monitor import Monitor  # noqa: E402
from agentfleet.untrusted import MAX_BYTES, MAX_ITEMS, Refused, parse  # noqa: E402
from runtime_helpers import make_tree  # noqa: E402
from table import print_table  # noqa: E402

WORKERS = ["anga", "fabien", "marie"]


def measured(action: Callable[[], object]) -> tuple[str, str]:
    """(seconds, peak MiB) of one call, its output discarded."""
    tracemalloc.start()
    started = time.perf_counter()
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        action()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return f"{elapsed:.3f} s", f"{peak / 2 ** 20:.1f} MiB"


def tree(root: Path, count: int) -> Path:
    make_tree(root, WORKERS)
    (root / "heartbeats" / "monitor").mkdir(exist_ok=True)
    for n in range(count):
        worker = WORKERS[n % len(WORKERS)]
        document = {"id": f"t{n}", "worker": worker, "status": "ok", "output": "x" * 2000, "reason": "",
                    "attempt": 1, "started": 1.0, "finished": 2.0, "task": {"id": f"t{n}", "prompt": "p" * 500}}
        (root / "results" / worker / f"t{n}.json").write_text(json.dumps(document))
    for worker in WORKERS:
        results = root / "results" / worker
        (results / "zero.json").symlink_to("/dev/zero")
        os.mkfifo(results / "fifo.json")
        (results / "deep.json").write_bytes(b"[" * (MAX_BYTES["result"] // 2) + b"]" * (MAX_BYTES["result"] // 2))
    return root


def main(counts: list[int]) -> None:
    os.environ["AGENTFLEET_AGENTS"] = json.dumps({name: os.getuid() for name in [*WORKERS, "monitor"]})
    rows = []
    for count in counts:
        with tempfile.TemporaryDirectory() as scratch:
            root = tree(Path(scratch), count)
            config = Config(name="monitor", kind="monitor", root=root, backend=Backend(type="command", argv=["true"]))
            waiting = Monitor(config, retention=10 ** 12, fleet=Fleet.from_env(root))
            rows.append([str(count), "agentctl results", *measured(lambda: agentctl.main(["--root", str(root), "results"]))])
            rows.append([str(count), "monitor check, first", *measured(lambda: waiting.check(time.time()))])
            rows.append([str(count), "monitor check, waiting", *measured(lambda: waiting.check(time.time()))])
            archiving = Monitor(config, retention=0, fleet=Fleet.from_env(root))
            rows.append([str(count), "monitor check, archives all", *measured(lambda: archiving.check(time.time()))])
    deep = b"[" * (MAX_BYTES["result"] // 2) + b"]" * (MAX_BYTES["result"] // 2)
    wide = json.dumps({"output": "x" * (MAX_BYTES["result"] - 100)}).encode()

    def refuse(data: bytes) -> None:
        try:
            parse(data, MAX_ITEMS["result"])
        except Refused:
            pass

    rows.append(["-", "8 MiB of nested brackets refused", *measured(lambda: refuse(deep))])
    rows.append(["-", "8 MiB string parsed", *measured(lambda: refuse(wide))])
    print_table(["RESULTS", "WHAT", "TIME", "PEAK MEMORY"], rows)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [1000, 10000])
