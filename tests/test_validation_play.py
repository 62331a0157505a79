"""playbooks/validate.yml, the first play of site.yml, on this machine in check mode: each bad
input of any role is refused there, naming its field, before any change; partial overrides of
dict defaults pass and merge field by field over the role's default (one copy, its defaults file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from role_defaults import over_role_default

ROOT = Path(__file__).resolve().parents[1]
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "ulimits not a mapping": ({"docker_engine_default_ulimits": "many"}, "docker_engine_default_ulimits"),
    "log options not a mapping": ({"docker_engine_log_opts": ["max-size=1m"]}, "docker_engine_log_opts"),
    "an image the role does not build": ({"agent_images_repositories": {"agnet": "me/agent"}}, "agnet"),
    "a kind that is not a mapping": ({"agent_model_kinds": {"orchestrator": {"min": 1, "max": 1, "dispatches": True},
                                                            "worker": "many"}}, "agent_model_kinds.worker"),
    "defaults not a mapping": ({"agent_model_defaults": "fast"}, "agent_model_defaults"),
    "a resource of the wrong type": ({"agent_model_defaults": {"resources": {"cpus": "lots"}}}, "resources.cpus"),
    "a gateway field of the wrong type": ({"agent_model_defaults": {"gateway": {"rate_per_minute": "fast"}}},
                                          "gateway.rate_per_minute"),
    "gVisor checksums not a mapping": ({"gvisor_release_sha256": "abc"}, "gvisor_release_sha256"),
    "Sysbox platforms not a mapping": ({"sysbox_supported": ["Debian"]}, "sysbox_supported"),
    "an Ollama method the filter does not know": (
        {"agentfleet_ollama": True, "ollama_archive_sha256": {"amd64": "0" * 64, "arm64": "0" * 64},
         "ollama_agent_endpoints": {"delete": ["/api/delete"]}}, "ollama_agent_endpoints"),
    "redis memory not a size": ({"agent_stack_redis_maxmemory": 5}, "agent_stack_redis_maxmemory"),
    "a stack setting only its argument specs know": ({"agent_stack_log_max_file": "three"}, "agent_stack_log_max_file"),
    "an engine option neither a value nor null": ({"docker_engine_icc": "sometimes"}, "docker_engine_icc"),
    "a CA bundle the controller does not have": ({"agent_stack_gateway_ca_bundle": "/nonexistent/ca.pem"},
                                                 "agent_stack_gateway_ca_bundle"),
    "a model key nginx would not take as one string": ({"agent_stack_api_key": 'k" ; include /etc/shadow'},
                                                        "agent_stack_api_key"),
    "a base from an archive without one": ({"agent_images_base_source": "archive"}, "agent_images_base_archive"),
    "a Debian mirror that is not a URL": ({"agent_images_base_mirror": "deb.debian.org/debian"}, "agent_images_base_mirror"),
    "a refresh of an image the role does not build": ({"agent_images_refresh_images": ["nginx"]},
                                                      "agent_images_refresh_images: nginx not among base, agent"),
    "a refresh and a rollback in one run": ({"agent_images_refresh": True, "agent_images_rollback": True},
                                            "agent_images_refresh and agent_images_rollback"),
    "a status page on a public address": ({"agent_stack_status_address": "0.0.0.0"}, "agent_stack_status_address"),
    "a ulimit above what this host grants": (
        {"docker_engine_default_ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2 ** 40}}},
        "docker_engine_default_ulimits.nofile"),
}
MERGED: dict[str, dict[str, Any]] = {
    "only a backend in the model's defaults": {"agent_model_defaults": {"backend": {"type": "command", "argv": ["true"]}}},
    "no secrets given (key set on the host, redis password made there)": {"agent_stack_api_key": "",
                                                                          "agent_stack_redis_password": ""},
    "one image renamed": {"agent_images_repositories": {"agent": "registry.test/agent"}},
    "one log option": {"docker_engine_log_opts": {"max-size": "20m"}},
    "engine keys left alone (null)": {"docker_engine_icc": None, "docker_engine_log_opts": None,
                                      "docker_engine_default_address_pools": None},
    "one more ulimit": {"docker_engine_default_ulimits": {"nproc": {"Name": "nproc", "Soft": 4096, "Hard": 4096}}},
}


def validate(extra: dict[str, Any], callback: str = "") -> subprocess.CompletedProcess[str]:
    playbook = shutil.which("ansible-playbook")
    if playbook is None:
        pytest.skip("ansible-playbook is not on PATH (run inside the toolchain's venv)")
    if os.geteuid() != 0:
        pytest.skip("the validation play reads root-only state (become); run as root")
    environment = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    if callback:
        environment["ANSIBLE_STDOUT_CALLBACK"] = callback
    return subprocess.run([playbook, "-i", str(ROOT / "inventories" / "local"), str(ROOT / "playbooks" / "validate.yml"),
                           "--check", "-e", json.dumps(extra)], capture_output=True, text=True, check=False,
                          env=environment, cwd=ROOT)


@pytest.fixture(name="outcomes", scope="module")
def fixture_outcomes() -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case at once, two plays at a time (each reads this host for about 5 s)."""
    cases = {name: extra for name, (extra, _) in REFUSED.items()} | MERGED
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(cases, pool.map(validate, cases.values())))


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_input_is_refused_by_the_first_play_naming_its_field(
        case: str, outcomes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done, field = outcomes[case], REFUSED[case][1]
    assert done.returncode != 0, done.stdout[-1500:]
    failed = done.stdout[done.stdout.index("fatal:"):]
    assert field in failed and "Traceback" not in done.stdout + done.stderr, failed[:1500]
    assert "changed=0" in done.stdout


@pytest.mark.parametrize("case", sorted(MERGED))
def test_a_partial_override_of_a_dict_default_passes(case: str,
                                                     outcomes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    done = outcomes[case]
    assert done.returncode == 0, done.stdout[-2000:]


def test_the_shipped_inventory_passes_as_it_is(outcomes: dict[str, subprocess.CompletedProcess[str]]) -> None:
    """Control: the local inventory, unedited, passes, so the refusals above are the inputs'."""
    done = validate({})
    assert done.returncode == 0 and "failed=0" in done.stdout, done.stdout[-2000:]


def role(name: str) -> str:
    return str(ROOT / "roles" / name)


def test_partial_dicts_merge_field_by_field_over_the_roles_own_default() -> None:
    assert over_role_default({"max-size": "20m"}, role("docker_engine"), "docker_engine_log_opts") == {
        "max-size": "20m", "max-file": "3"}
    ulimits = over_role_default({"nofile": {"Soft": 1024}}, role("docker_engine"), "docker_engine_default_ulimits")
    assert ulimits == {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536}}
    endpoints = over_role_default({"get": ["/api/tags"]}, role("ollama"), "ollama_agent_endpoints")
    assert endpoints["get"] == ["/api/tags"] and "/api/chat" in endpoints["post"]
    repositories = over_role_default({"agent": "registry.test/agent"}, role("agent_images"), "agent_images_repositories")
    assert repositories["agent"] == "registry.test/agent" and repositories["egress"] == "agentfleet/egress"
    assert over_role_default(None, role("docker_engine"), "docker_engine_log_opts") is None  # opted out


def test_every_role_the_play_checks_has_a_validate_entry_point() -> None:
    """include_role with tasks_from validate checks types only where the role's argument specs have
    that entry point: without it a wrong type would pass the first play."""
    play = yaml.safe_load((ROOT / "playbooks" / "validate.yml").read_text())[0]
    included = [task["ansible.builtin.include_role"] for task in play["tasks"] if "ansible.builtin.include_role" in task]
    assert included and all(role["tasks_from"] == "validate" for role in included)
    for role in included:
        specs = yaml.safe_load((ROOT / "roles" / role["name"].split(".")[-1] / "meta" / "argument_specs.yml").read_text())
        assert specs["argument_specs"]["validate"]["options"] == specs["argument_specs"]["main"]["options"], role


def test_the_first_play_shows_each_hosts_plan_on_request() -> None:
    """The plan the first play computes (-e agentfleet_show_plan=true), read back and checked by hand:
    marie's mounts and address, the accounts the engine denies, the runtimes, secrets by path only."""
    done = validate({"agentfleet_show_plan": True, "agent_stack_api_key": "sk-ant-never-in-the-plan"}, "ansible.posix.json")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "sk-ant-never-in-the-plan" not in done.stdout
    document, _ = json.JSONDecoder().raw_decode(done.stdout[done.stdout.index("{\n"):])  # after profile_tasks' lines
    tasks = [task for play in document["plays"] for task in play["tasks"]]
    shown = next(task for task in tasks if task["task"]["name"].startswith("Show this host's plan"))
    plan = shown["hosts"]["localhost"]["agentfleet_plan"]
    assert set(plan) >= {"accounts", "groups", "tree", "runtimes", "agents", "engine", "images", "stack", "projects"}
    marie = plan["stack"]["mounts"]["marie"]
    assert "/srv/agentfleet/inbox/marie:/agentfleet/inbox/marie:ro" in marie
    assert not any("/anga" in mount for mount in marie)
    assert plan["stack"]["networks"]["marie"]["network"] == "agent_marie"
    assert set(plan["engine"]["denied_users"]) >= {"agent-orchestrator", "agent-marie", "agent-anga", "agent-fabien"}
    assert plan["runtimes"] == ["runc"]
    assert "/etc/agentfleet/stack/secrets/gateway_key.conf" in plan["stack"]["secrets"]
    assert plan["stack"]["ports"]["gateway"] == 8080 and plan["images"]["base_source"] == "debootstrap"
