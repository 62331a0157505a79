"""Secrets without friction: the redis password is made on the host when the inventory gives none
(and kept: the idempotence run changed nothing), and root sets the model key on the host from
stdin with agentctl secret set; nothing else can."""

from __future__ import annotations

import json
import re
import shlex

import testinfra.host
from test_playbook import STACK_PLAY, playbook, recap
from test_stack import SEEN, container, ctl, run, secret

testinfra_hosts = ["ansible://agentfleet_hosts"]
STACK = "/etc/agentfleet/stack"
KEY_FILE = f"{STACK}/secrets/gateway_key.conf"
# What agentctl status reads, as the dispatcher (/etc/agentfleet is root's only).
STATE = "/var/lib/agentfleet/model-key.state"


def test_the_redis_password_was_made_on_the_host_root_only(host: testinfra.host.Host) -> None:
    """The inventory gives no agent_stack_redis_password; redis still runs with one, root's alone."""
    assert "agent_stack_redis_password" not in host.ansible.get_variables()
    kept = host.file(f"{STACK}/secrets/redis.password")
    assert (kept.user, kept.group, kept.mode) == ("root", "root", 0o400)
    password = run(host, f"cat {STACK}/secrets/redis.password").strip()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    assert f"requirepass {password}\n" in run(host, f"cat {STACK}/secrets/redis.conf")


def test_only_root_sets_the_model_key(host: testinfra.host.Host) -> None:
    before = run(host, f"cat {KEY_FILE}")
    refused = host.run("printf 'sk-ant-from-an-agent\\n' | setpriv --reuid=agent-orchestrator --regid=agent-orchestrator "
                       "--init-groups agentctl secret set model-key")
    assert refused.rc != 0 and "only root sets secrets" in refused.stderr, refused.stdout + refused.stderr
    assert run(host, f"cat {KEY_FILE}") == before


def test_a_key_nginx_would_not_take_as_one_string_is_refused_and_the_live_one_kept(host: testinfra.host.Host) -> None:
    before = run(host, f"cat {KEY_FILE}")
    refused = host.run("printf 'sk\" ; include /etc/shadow\\n' | agentctl secret set model-key")
    assert refused.rc != 0 and "letters, digits, _ and - only" in refused.stderr
    assert run(host, f"cat {KEY_FILE}") == before


def test_root_sets_the_key_from_stdin_and_the_gateway_sends_it(host: testinfra.host.Host) -> None:
    """The inventory's own key, set again by hand: the file is what a deploy writes, so the next
    deploy changes nothing, and the gateway, restarted, sends it upstream."""
    key = secret(host)
    done = host.run(f"printf '%s\\n' {shlex.quote(key)} | agentctl secret set model-key")
    assert done.rc == 0 and "gateway restarted" in done.stdout, done.stdout + done.stderr
    key_file = host.file(KEY_FILE)
    assert (key_file.user, key_file.mode) == ("agentfleet-gateway", 0o400)
    assert run(host, f"cat {KEY_FILE}") == f'proxy_set_header x-api-key "{key}";\n'
    state = host.file(STATE)
    assert (state.user, state.mode, state.content_string) == ("root", 0o644, "set\n")
    run(host, f"for i in $(seq 60); do [ \"$(docker inspect -f '{{{{.State.Health.Status}}}}' {container('gateway')})\" = "
              "healthy ] && exit 0; sleep 1; done; exit 1")
    submitted = ctl(host, "submit --to marie --wait 120 'after the key was set on the host'")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    seen = json.loads(run(host, f"docker exec agentfleet-test-messages-api python3 -c {shlex.quote(SEEN)}"))
    mine = [request for request in seen if request["prompt"] == "after the key was set on the host"]
    assert mine and all(request["x-api-key"] == key for request in mine)


def test_a_deploy_without_a_key_keeps_the_one_set_on_the_host(host: testinfra.host.Host) -> None:
    """The inventory's key left out: the key root set stays, with its owner and mode, and nothing
    changes (no restart either)."""
    before = run(host, f"cat {KEY_FILE}")
    result = playbook("--limit", "agentfleet-trixie", "-e", json.dumps({"agent_stack_api_key": ""}), play=STACK_PLAY)
    assert result.returncode == 0, result.stdout[-3000:]
    assert recap(result.stdout)["agentfleet-trixie"] == (0, 0), result.stdout[-3000:]
    assert run(host, f"cat {KEY_FILE}") == before and host.file(STATE).content_string == "set\n"


def test_status_names_the_missing_key_and_the_agents_that_need_it(host: testinfra.host.Host) -> None:
    assert "model key" not in run(host, "agentctl status")
    run(host, f"cp -p {STATE} /root/model-key.state && echo missing > {STATE}")
    try:
        status = run(host, "agentctl status")
    finally:
        run(host, f"cp -p /root/model-key.state {STATE}")
    line = next(line for line in status.splitlines() if line.startswith("model key"))
    assert "NOT SET" in line and "agentctl secret set model-key" in line
    assert all(agent in line for agent in ("orchestrator", "marie", "anga", "fabien")) and "lea" not in line
