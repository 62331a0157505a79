"""The relay's settings, derived from the host's agent model, written out by hand."""

from __future__ import annotations

from pathlib import Path

import yaml
from agent_model import agent_model_stack
from nats_fleet import nats_relay_settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_relays_settings_come_from_the_hosts_agent_model() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())
    stack = agent_model_stack({name.removeprefix("agent_model_"): value for name, value in defaults.items()} | {"fleet": True})
    settings = nats_relay_settings(stack, {"address": "fd00::5", "client_port": 4222, "node": "alpha", "lease": 30})
    assert settings["url"] == "tls://[fd00::5]:4222" and "address" not in settings
    assert settings["roles"] == {"marie": "frontend", "anga": "backend", "fabien": "devops"}
    assert settings["agents"] == {"orchestrator": 10000, "marie": 10001, "anga": 10002, "fabien": 10003, "monitor": 10004}
    # The orchestrator dispatches: its own group, the observers' (results, heartbeats) and the common one.
    assert (settings["dispatcher_uid"], settings["dispatcher_gid"]) == (10000, 10000)
    assert settings["dispatcher_groups"] == [10000, 10900, 10901]


def test_each_workers_projects_are_the_ones_whose_mirror_it_reads() -> None:
    defaults = yaml.safe_load((ROOT / "roles" / "agent_model" / "defaults" / "main.yml").read_text())
    model = {name.removeprefix("agent_model_"): value for name, value in defaults.items()} | {"fleet": True}
    model["projects"] = [{"name": "shop", "source": "/srv/git/shop.git", "gid": 10950, "workers": ["marie"]},
                         {"name": "crm", "source": "/srv/git/crm.git", "gid": 10951}]  # every worker by default
    settings = nats_relay_settings(agent_model_stack(model), {"address": "10.0.0.5", "client_port": 4222, "node": "alpha"})
    assert settings["projects"] == {"marie": ["crm", "shop"], "anga": ["crm"], "fabien": ["crm"]}
