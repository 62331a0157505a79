"""The Molecule scenarios' hosts are made the same way: the fresh-host scenario copies the host
options of molecule/default (YAML cannot share them across files), and must not drift from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OWN = {"name", "groups"}


def platform(scenario: str) -> dict[str, Any]:
    options: dict[str, Any] = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())["platforms"][0]
    return options


def test_the_fresh_host_is_made_like_the_default_scenarios_hosts() -> None:
    fresh, default = platform("fresh"), platform("default")
    assert {key: value for key, value in fresh.items() if key not in OWN} == \
        {key: value for key, value in default.items() if key not in OWN}
