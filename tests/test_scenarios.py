"""The Molecule scenarios' hosts are made the same way: the fresh-host scenario copies the host
options of molecule/default (YAML cannot share them across files), and so do the fleet's three
hosts; none must drift from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
OWN = {"name", "groups"}


def platforms(scenario: str) -> list[dict[str, Any]]:
    options: list[dict[str, Any]] = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())["platforms"]
    return options


def test_the_fresh_and_fleet_hosts_are_made_like_the_default_scenarios_hosts() -> None:
    default = platforms("default")[0]
    for fresh in platforms("fresh") + platforms("fleet"):
        assert {key: value for key, value in fresh.items() if key not in OWN} == \
            {key: value for key, value in default.items() if key not in OWN}, fresh["name"]


def test_every_scenarios_tests_import_and_collect(tmp_path: Path) -> None:
    """An import error in a verify test (say a filter that needs the collection on sys.path) would
    otherwise show only after a scenario's converge, half an hour into the run."""
    import os
    import subprocess
    import sys

    groups: dict[str, dict[str, dict[str, object]]] = {}
    for molecule in sorted((ROOT / "molecule").glob("*/molecule.yml")):
        for entry in yaml.safe_load(molecule.read_text())["platforms"]:
            for group in entry.get("groups", []):
                groups.setdefault(group, {"hosts": {}})["hosts"][entry["name"]] = {}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump(groups))
    bin_dir = str(Path(sys.executable).parent)  # testinfra runs ansible-inventory from the toolchain
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    for tests in sorted((ROOT / "molecule").glob("*/tests")):
        done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                               "--ansible-inventory", str(inventory), str(tests)],
                              capture_output=True, text=True, check=False, cwd=ROOT, env=environment)
        assert done.returncode == 0 and "error" not in done.stdout.splitlines()[-1], done.stdout[-3000:]
