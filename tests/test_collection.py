"""The repository is the collection agentfleet.fleet: it builds, and the artifact holds the roles,
playbooks, runtime and license but none of the development tree."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARTIFACT = f"agentfleet-fleet-{yaml.safe_load((ROOT / 'galaxy.yml').read_text())['version']}.tar.gz"


def test_the_collection_builds_with_what_users_need_and_nothing_else(tmp_path: Path) -> None:
    command = shutil.which("ansible-galaxy")
    if command is None:
        pytest.skip("ansible-galaxy is not on PATH (run inside the toolchain's venv)")
    subprocess.run([command, "collection", "build", "--output-path", str(tmp_path)], cwd=ROOT, check=True,
                   capture_output=True)
    with tarfile.open(tmp_path / ARTIFACT) as artifact:
        names = set(artifact.getnames())
    for needed in ("LICENSE", "CHANGELOG.md", "meta/runtime.yml", "playbooks/site.yml", "roles/agent_stack/files/gateway.js",
                   "runtime/agentfleet/worker.py", "runtime/schemas/task.schema.json"):
        assert needed in names, needed
    tops = {name.split("/")[0] for name in names}
    assert not tops & {".venv", "molecule", "tests", "bench", "scripts", "collections", ".hypothesis", ".git"}, tops
    assert not any("__pycache__" in name for name in names)


def test_the_installed_collection_serves_a_users_own_playbook(tmp_path: Path) -> None:
    """Installed from the built artifact into a collections path of its own, outside this
    repository: agentfleet.fleet.site resolves every role, module and filter, and a user's playbook
    calling the roles by their full names parses and runs the validation play on this machine."""
    galaxy, playbook = shutil.which("ansible-galaxy"), shutil.which("ansible-playbook")
    if galaxy is None or playbook is None:
        pytest.skip("the Ansible commands are not on PATH (run inside the toolchain's venv)")
    subprocess.run([galaxy, "collection", "build", "--output-path", str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    user = tmp_path / "user"
    shutil.copytree(ROOT / "inventories" / "local", user / "inventory")
    (user / "deploy.yml").write_text(
        "- name: Check everything first\n  ansible.builtin.import_playbook: agentfleet.fleet.validate\n"
        "- name: Then the engine and the tree\n  hosts: agentfleet_hosts\n  become: true\n"
        "  roles:\n    - role: agentfleet.fleet.docker_engine\n    - role: agentfleet.fleet.agent_tree\n")
    environment = {"PATH": str(Path(playbook).parent) + ":/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_CONFIG": "",
                   "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "installed"), "ANSIBLE_NOCOLOR": "1"}
    subprocess.run([galaxy, "collection", "install", "--force", "-p", str(tmp_path / "installed"),
                    str(tmp_path / ARTIFACT)], cwd=user, env=environment, check=True,
                   capture_output=True)
    checks = [["-i", str(ROOT / "inventories" / "example"), "agentfleet.fleet.site", "--syntax-check"],
              ["-i", "inventory", "deploy.yml", "--syntax-check"]]
    if os.geteuid() == 0:  # the validation play reads root-only state
        checks.append(["-i", "inventory", "agentfleet.fleet.validate", "--check"])
    for arguments in checks:
        done = subprocess.run([playbook, *arguments], cwd=user, env=environment, capture_output=True, text=True)
        assert done.returncode == 0, (arguments, (done.stdout + done.stderr)[-2000:])


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


OLDEST_CORE = "2.15.13"


def test_the_oldest_core_we_claim_runs_the_validation_play(tmp_path: Path) -> None:
    """meta/runtime.yml claims ansible-core 2.15: under it the site playbook parses and the first
    play (every input checked, the host read) passes on this machine."""
    if os.geteuid() != 0:
        pytest.skip("the validation play reads root-only state (become); run as root")
    venv = tmp_path / "core"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    installed = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
                                f"ansible-core=={OLDEST_CORE}"], capture_output=True, text=True, check=False)
    assert installed.returncode == 0, installed.stderr[-2000:]
    bundled = Path(yaml.__file__).parent.parent  # the toolchain's site-packages: community.docker, ansible.posix
    environment = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                   "ANSIBLE_COLLECTIONS_PATH": f"{ROOT / 'collections'}:{bundled}"}
    playbook = str(venv / "bin" / "ansible-playbook")
    version = subprocess.run([playbook, "--version"], capture_output=True, text=True, check=True).stdout
    assert f"core {OLDEST_CORE}" in version
    for arguments in (["site.yml", "--syntax-check"], ["playbooks/validate.yml", "--check"]):
        done = subprocess.run([playbook, "-i", str(ROOT / "inventories" / "local"), *arguments], cwd=ROOT, env=environment,
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    oldest = ".".join(OLDEST_CORE.split(".")[:2])
    assert yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())["requires_ansible"] == f">={oldest}.0"
    for meta in (ROOT / "roles").glob("*/meta/main.yml"):
        assert yaml.safe_load(meta.read_text())["galaxy_info"]["min_ansible_version"] == oldest, meta


def test_every_role_is_called_by_its_full_name() -> None:
    """A user's roles path may hold its own docker_engine or ollama: ours are always agentfleet.fleet.*."""
    ours = {path.name for path in (ROOT / "roles").iterdir()}
    files = [*ROOT.glob("playbooks/*.yml"), *ROOT.glob("roles/*/meta/main.yml"), *ROOT.glob("roles/*/tasks/*.yml"),
             *ROOT.glob("molecule/*/converge.yml")]
    short = []
    for path in files:
        lines = path.read_text().splitlines()
        for before, line in zip([""] + lines, lines):
            key, _, value = line.strip().removeprefix("- ").partition(": ")
            calls_role = key == "role" or (key == "name" and before.strip().endswith(("include_role:", "import_role:")))
            if calls_role and value in ours:
                short.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert short == []
