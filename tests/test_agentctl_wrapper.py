"""The host's agentctl wrapper (agent_stack's agentctl.sh.j2), rendered and run with a stand-in
python3 that reports its limits: every command that reads agents' files runs under the memory
bound; `secret` (root's stdin only) does not, because the docker CLI it runs to restart the
gateway could not always create a thread under it (a CI failure: pthread_create EAGAIN)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml
from agent_model import agent_model_stack
from agent_stack import agent_stack_fleet_env
from role_defaults import role_default

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "roles" / "agent_stack" / "templates" / "agentctl.sh.j2"
BOUND_KB = "1048576"


@pytest.fixture(name="agentctl")
def fixture_agentctl(tmp_path: Path) -> Path:
    model = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())
    stack = agent_model_stack({name.removeprefix("agent_model_"): value for name, value in model.items()})
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True)
    environment.filters["agentfleet.fleet.agent_stack_fleet_env"] = agent_stack_fleet_env
    environment.filters["agentfleet.fleet.role_default"] = role_default
    script = environment.from_string(TEMPLATE.read_text()).render(
        ansible_managed="test", agent_model_stack=stack, __agent_stack_dispatcher="", agent_stack_heartbeat_interval=5,
        __agent_stack_key_state="/nonexistent/state", agent_stack_dir="/nonexistent/stack",
        __agent_stack_services={"gateway": {"uid": 1, "gid": 1}}, agent_stack_project="agentfleet",
        __agent_stack_compose={"services": {"gateway": {}, "marie": {}}}, agent_stack_gateway_upstream="https://api.test",
        agent_stack_gateway_ca_bundle="")
    (tmp_path / "agentctl").write_text(script)
    stand_in = tmp_path / "bin" / "python3"
    stand_in.parent.mkdir()
    stand_in.write_text("#!/bin/sh\nulimit -v\n")
    stand_in.chmod(0o755)
    return tmp_path


def limit_seen(agentctl: Path, *args: str) -> str:
    environment = {**os.environ, "PATH": f"{agentctl / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", str(agentctl / "agentctl"), *args], capture_output=True, text=True, check=True,
                          env=environment)
    return done.stdout.strip()


@pytest.mark.parametrize("command", [["status"], ["results"], ["show", "t1"], ["publish", "g1"]])
def test_commands_that_read_agents_files_run_under_the_memory_bound(agentctl: Path, command: list[str]) -> None:
    assert limit_seen(agentctl, *command) == BOUND_KB


@pytest.mark.parametrize("command", [["secret", "set", "model-key"], ["doctor"]])
def test_commands_that_run_the_docker_cli_run_without_the_bound_that_starved_it(agentctl: Path, command: list[str]) -> None:
    assert limit_seen(agentctl, *command) != BOUND_KB
