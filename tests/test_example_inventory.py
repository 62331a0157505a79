"""The shipped example inventory passes the checks a deploy runs on it, host by host (its vault
variables stay unresolved: they are secrets the example cannot hold)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from agent_model import agent_model_errors, agent_model_stack
from agent_stack import agent_stack_input_errors

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {**yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text()),
            **yaml.safe_load((ROOT / "roles" / "agent_stack" / "defaults" / "main.yml").read_text())}


def hostvars() -> dict[str, dict[str, Any]]:
    command = shutil.which("ansible-inventory")
    if command is None:
        pytest.skip("ansible-inventory is not on PATH (run inside the toolchain's venv)")
    listed = subprocess.run([command, "-i", str(ROOT / "inventories" / "example"), "--list"], capture_output=True,
                            text=True, check=True, cwd=ROOT)
    found: dict[str, dict[str, Any]] = json.loads(listed.stdout)["_meta"]["hostvars"]
    return found


@pytest.mark.parametrize("host", ["agents-1.example.test", "agents-2.example.test", "agents-air.example.test"])
def test_each_example_host_passes_the_model_and_stack_checks(host: str) -> None:
    values = {**DEFAULTS, **hostvars()[host]}
    model = {name.removeprefix("agent_model_"): value for name, value in values.items() if name.startswith("agent_model_")}
    assert agent_model_errors(model) == []
    stack = agent_model_stack(model)
    settings = {name.removeprefix("agent_stack_"): value for name, value in values.items() if name.startswith("agent_stack_")}
    settings["ollama_socket_dir"] = "/run/agentfleet-ollama" if values.get("agentfleet_ollama") else ""
    assert agent_stack_input_errors(settings, "sk-ant-from-vault", "p" * 16, settings["gateway_upstream"], stack) == []


def test_the_vault_example_works_as_the_readme_says(tmp_path: Path) -> None:
    """Copy vault.example.yml into group_vars/agentfleet_hosts/vault.yml, encrypt it: the inventory
    then resolves the model key from it (and only with the vault password)."""
    vault, inventory = shutil.which("ansible-vault"), shutil.which("ansible-inventory")
    if vault is None or inventory is None:
        pytest.skip("the Ansible commands are not on PATH (run inside the toolchain's venv)")
    copy = tmp_path / "example"
    shutil.copytree(ROOT / "inventories" / "example", copy)
    secret_file = copy / "group_vars" / "agentfleet_hosts" / "vault.yml"
    shutil.copy(copy / "vault.example.yml", secret_file)
    password = tmp_path / "vault-password"
    password.write_text("correct horse battery staple\n")
    subprocess.run([vault, "encrypt", "--vault-password-file", str(password), str(secret_file)], check=True,
                   capture_output=True, cwd=ROOT)
    assert secret_file.read_text().startswith("$ANSIBLE_VAULT;")
    listed = subprocess.run([inventory, "-i", str(copy), "--vault-password-file", str(password), "--host",
                             "agents-1.example.test"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(listed.stdout)["vault_agent_stack_api_key"] == "sk-ant-REPLACE-ME"
    locked = subprocess.run([inventory, "-i", str(copy), "--host", "agents-1.example.test"], capture_output=True,
                            text=True, check=False, cwd=ROOT)
    assert locked.returncode != 0 and "vault" in locked.stderr.lower()


def validate_example(*extra: str) -> subprocess.CompletedProcess[str]:
    """The validation play on the example fleet's three hosts, each played by this machine: every
    input is checked; what depends on the real host (its distribution, its accounts) is skipped."""
    playbook = shutil.which("ansible-playbook")
    if playbook is None:
        pytest.skip("ansible-playbook is not on PATH (run inside the toolchain's venv)")
    if os.geteuid() != 0:
        pytest.skip("the validation play reads root-only state (become); run as root")
    here = {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
            "vault_webshop_deploy_key": "-----BEGIN OPENSSH PRIVATE KEY-----\nexample\n-----END OPENSSH PRIVATE KEY-----\n",
            "vault_ollama_archive_sha256_amd64": "0" * 64}
    return subprocess.run([playbook, "-i", str(ROOT / "inventories" / "example"), str(ROOT / "playbooks" / "validate.yml"),
                           "--check", "--skip-tags", "agentfleet_host_state", "-e", json.dumps(here), *extra],
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})


def test_the_example_fleet_passes_the_validation_play() -> None:
    done = validate_example()
    assert done.returncode == 0, done.stdout[-3000:]
    assert all(f"{host}" in done.stdout for host in ("agents-1.example.test", "agents-2.example.test", "agents-air.example.test"))


def test_control_a_bad_input_in_the_example_fleet_is_refused_by_name() -> None:
    done = validate_example("-e", json.dumps({"agent_stack_subnet": "8.8.8.0/24"}))
    assert done.returncode != 0 and "agent_stack_subnet: 8.8.8.0/24" in done.stdout, done.stdout[-3000:]
