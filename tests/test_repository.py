"""What a clone gets: no tracked link points outside the repository (a link to one checkout's
virtualenv, committed by mistake, once replaced the toolchain of every other checkout)."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_tracked_link_stays_inside_the_repository() -> None:
    listing = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s"], capture_output=True, text=True, check=True).stdout
    links = [line.split("\t", 1)[1] for line in listing.splitlines() if line.startswith("120000 ")]
    outside = [path for path in links if not (ROOT / path).resolve().is_relative_to(ROOT.resolve())]
    assert links and not outside, outside
