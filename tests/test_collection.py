"""The repository is the collection agentfleet.fleet: it builds, and the artifact holds the roles,
playbooks, runtime and license but none of the development tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_the_collection_builds_with_what_users_need_and_nothing_else(tmp_path: Path) -> None:
    command = shutil.which("ansible-galaxy")
    if command is None:
        pytest.skip("ansible-galaxy is not on PATH (run inside the toolchain's venv)")
    subprocess.run([command, "collection", "build", "--output-path", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    with tarfile.open(tmp_path / "agentfleet-fleet-0.1.0.tar.gz") as artifact:
        names = set(artifact.getnames())
    for needed in ("LICENSE", "CHANGELOG.md", "meta/runtime.yml", "playbooks/site.yml", "roles/agent_stack/files/gateway.js",
                   "runtime/agentfleet/worker.py", "runtime/schemas/task.schema.json"):
        assert needed in names, needed
    tops = {name.split("/")[0] for name in names}
    assert not tops & {".venv", "molecule", "tests", "bench", "scripts", "collections", ".hypothesis", ".git"}, tops
    assert not any("__pycache__" in name for name in names)


def test_the_installed_collection_offers_its_site_playbook(tmp_path: Path) -> None:
    """Installed from the built artifact, agentfleet.fleet.site resolves every role, module and filter."""
    galaxy, playbook = shutil.which("ansible-galaxy"), shutil.which("ansible-playbook")
    if galaxy is None or playbook is None:
        pytest.skip("the Ansible commands are not on PATH (run inside the toolchain's venv)")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    user = tmp_path / "user"
    user.mkdir()
    environment = {"PATH": str(Path(playbook).parent), "HOME": str(tmp_path), "ANSIBLE_CONFIG": "",
                   "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "installed")}
    subprocess.run([galaxy, "collection", "install", "--force", "-p", str(tmp_path / "installed"),
                    str(tmp_path / "agentfleet-fleet-0.1.0.tar.gz")], cwd=user, env=environment, check=True,
                   capture_output=True)
    checked = subprocess.run([playbook, "-i", str(ROOT / "inventories" / "example"), "agentfleet.fleet.site",
                              "--syntax-check"], cwd=user, env=environment, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr[-2000:]


@pytest.mark.parametrize("role", sorted(path.name for path in (ROOT / "roles").iterdir()))
def test_every_roles_argument_specs_render_with_ansible_doc(role: str) -> None:
    """Each role documents its entry point's every variable, as ansible-doc shows it to users."""
    command = shutil.which("ansible-doc")
    if command is None:
        pytest.skip("ansible-doc is not on PATH (run inside the toolchain's venv)")
    shown = subprocess.run([command, "-t", "role", "--json", f"agentfleet.fleet.{role}"], cwd=ROOT, capture_output=True,
                           text=True, check=False)
    assert shown.returncode == 0, shown.stderr[-2000:]
    entry = json.loads(shown.stdout)[f"agentfleet.fleet.{role}"]["entry_points"]["main"]
    assert entry["short_description"] and entry.get("options"), entry.keys()
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    assert set(defaults) <= set(entry["options"]), set(defaults) - set(entry["options"])
