"""Team work under attack: workers cannot reach what integrates or publishes their work, the deploy
key is in no agent, and hostile proposals are refused by the orchestrator's `agentctl integrate`
with a reason, nothing integrated. Each refusal has its control: the same path succeeds without
the attack."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
AGENTS = ("orchestrator", "marie", "anga", "fabien", "monitor", "lea", "olga")
KEY_TEXT = "agentfleet-test-deploy-key-7f3c9a"
REPO = "/agentfleet/workspaces/orchestrator/attacks"
# Run as lea, in her checkout of the task: each rewrites her own proposal (her bundle or manifest).
BUNDLE = "git bundle create --quiet /agentfleet/results/lea/$ID.bundle $BASE..agentfleet-proposal"
COMMIT_AS_LEA = "git -c user.name=lea -c user.email=lea@agentfleet.invalid"
ATTACKS = {
    "refs outside its namespace": (f"git branch -f evil HEAD && git bundle create --quiet /agentfleet/results/lea/$ID.bundle "
                                   "$BASE..agentfleet-proposal $BASE..evil", "not exactly refs/heads/agentfleet-proposal"),
    "a bundle over the cap": ("head -c 70000000 /dev/zero > /agentfleet/results/lea/$ID.bundle", "over the limit of 67108864"),
    "objects that fail fsck": ("bad=$(printf 'tree %s\\nparent %s\\nauthor nobody\\ncommitter nobody\\n\\nbad\\n' "
                               "$(git write-tree) $BASE | git hash-object -t commit --literally -w --stdin) && "
                               f"git branch -f agentfleet-proposal $bad && {BUNDLE}", "git index-pack"),
    "a repository config smuggled as .git": (
        "cfg=$(printf '[core]\\n\\tfsmonitor = touch /tmp/pwned\\n' | git hash-object -w --stdin) && "
        "inner=$(printf '100644 blob %s\\tconfig\\n' $cfg | git mktree) && "
        "outer=$(printf '040000 tree %s\\t.git\\n' $inner | git mktree) && "
        f"c=$({COMMIT_AS_LEA} commit-tree $outer -p $BASE -m smuggle) && git branch -f agentfleet-proposal $c && {BUNDLE}",
        "hasDotgit|inside a .git directory"),
    "a symlink out of the checkout": (f"ln -s /etc/shadow leak && git add leak && {COMMIT_AS_LEA} commit -qm leak && "
                                      f"git branch -f agentfleet-proposal HEAD && {BUNDLE}", "symlink out of the checkout"),
    "a manifest claiming another worker": (
        "sed -i 's/\"worker\": \"lea\"/\"worker\": \"marie\"/' /agentfleet/results/lea/$ID.proposal.json",
        "names another task, worker or base"),
}


def in_agent(host: testinfra.host.Host, agent: str, command: str, workdir: str = "/") -> Any:
    return host.run(f"docker exec -w {workdir} agentfleet-{agent}-1 sh -c {shlex.quote(command)}")


def lea_task(host: testinfra.host.Host) -> tuple[str, str]:
    """A project task lea finished with a real proposal: (task id, its base)."""
    submitted = host.run("agentctl submit --to lea --project shop --wait 120 'a change to attack with'")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    result = json.loads(submitted.stdout.split("\n", 1)[1])
    assert result["status"] == "ok" and "proposal" in result, result
    return result["id"], result["task"]["base"]


@pytest.fixture(scope="module", name="repo")
def fixture_repo(host: testinfra.host.Host) -> str:
    """An integration checkout of the orchestrator's, where the attacks are integrated."""
    in_agent(host, "orchestrator", f"rm -rf {REPO}")
    # The mirror is root's: git reads it only when told it is safe, in a global file (as the runtime does).
    trust = "printf '[safe]\\n\\tdirectory = /agentfleet/projects/shop\\n' > /tmp/trust.conf"
    cloned = in_agent(host, "orchestrator", f"{trust} && GIT_CONFIG_GLOBAL=/tmp/trust.conf git clone --quiet "
                                            f"/agentfleet/projects/shop {REPO}")
    assert cloned.rc == 0, cloned.stderr
    return REPO


def integrate(host: testinfra.host.Host, ident: str) -> Any:
    return in_agent(host, "orchestrator", f"agentctl integrate {ident}", REPO)


def state(host: testinfra.host.Host) -> tuple[str, str]:
    head = in_agent(host, "orchestrator", "git rev-parse HEAD", REPO).stdout.strip()
    return head, in_agent(host, "orchestrator", "git for-each-ref refs/proposals", REPO).stdout


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_hostile_proposal_is_refused_with_its_reason_and_nothing_is_integrated(
        host: testinfra.host.Host, repo: str, attack: str) -> None:
    ident, base = lea_task(host)
    command, reason = ATTACKS[attack]
    checkout = "/agentfleet/workspaces/lea/projects/shop"  # her clone, still on the task's branch
    done = in_agent(host, "lea", f"export ID={ident} BASE={base} && {command}", checkout)
    assert done.rc == 0, (attack, done.stderr)
    before = state(host)
    refused = integrate(host, ident)
    assert refused.rc != 0, (attack, refused.stdout)
    assert any(part in refused.stderr for part in reason.split("|")), (attack, refused.stderr)
    assert state(host) == before, attack
    assert in_agent(host, "orchestrator", "test -e /tmp/pwned").rc != 0


def test_control_an_untouched_proposal_integrates(host: testinfra.host.Host, repo: str) -> None:
    ident, _ = lea_task(host)
    head, _ = state(host)
    merged = integrate(host, ident)
    assert merged.rc == 0, merged.stderr
    assert in_agent(host, "orchestrator", f"git rev-parse HEAD^2", REPO).stdout.strip() == (
        in_agent(host, "orchestrator", f"git rev-parse refs/proposals/lea/{ident}", REPO).stdout.strip())
    assert in_agent(host, "orchestrator", f"git rev-parse HEAD^1", REPO).stdout.strip() == head
    assert "lea-was-here.txt" in in_agent(host, "orchestrator", "ls", REPO).stdout


def test_a_result_planted_for_another_workers_task_is_never_read(host: testinfra.host.Host, repo: str) -> None:
    """lea writes a result and proposal for a task that went to marie: integrate reads marie's only."""
    submitted = host.run("agentctl submit --to marie --project shop 'SCRIPT [\"echo from marie > m.txt\"]'")
    ident = submitted.stdout.split()[1]
    planted = in_agent(host, "lea", f"for f in /agentfleet/results/lea/*.bundle; "
                                    f"do cp $f /agentfleet/results/lea/{ident}.bundle; break; done && "
                                    f"echo '{{\"id\": \"{ident}\", \"worker\": \"lea\"}}' > /agentfleet/results/lea/{ident}.json")
    assert planted.rc == 0, planted.stderr
    assert host.run(f"agentctl wait {ident} --timeout 300").rc == 0
    merged = integrate(host, ident)
    assert merged.rc == 0, merged.stderr
    assert in_agent(host, "orchestrator", "cat m.txt", REPO).stdout.strip() == "from marie"


def test_workers_cannot_write_the_integration_repository_or_reach_the_orchestrators_checkouts(
        host: testinfra.host.Host) -> None:
    for worker in ("marie", "anga", "lea"):
        write = in_agent(host, worker, "touch /agentfleet/integration/shop/planted")
        assert write.rc != 0 and ("Read-only file system" in write.stderr or "Permission denied" in write.stderr), write.stderr
        assert in_agent(host, worker, "ls /agentfleet/workspaces/orchestrator").rc != 0
    # The controls: the orchestrator writes there, and its checkouts exist.
    assert in_agent(host, "orchestrator", "touch /agentfleet/integration/shop/.probe && rm /agentfleet/integration/shop/.probe").rc == 0
    assert in_agent(host, "orchestrator", "ls /agentfleet/workspaces/orchestrator").rc == 0


def test_no_agent_reaches_the_publish_target_or_holds_the_deploy_key(host: testinfra.host.Host) -> None:
    key = host.file("/etc/agentfleet/keys/shop")
    assert (key.user, key.mode) == ("root", 0o600) and KEY_TEXT in key.content_string  # the control
    settings = host.file("/var/lib/agentfleet/publish/settings.json")
    assert settings.mode == 0o600 and KEY_TEXT not in settings.content_string  # the key's path, not the key
    for agent in AGENTS:
        for path in ("/opt/agentfleet-test/shop.git", "/var/lib/agentfleet/publish", "/etc/agentfleet"):
            assert in_agent(host, agent, f"test -e {path}").rc != 0, (agent, path)
        found = in_agent(host, agent, f"grep -rls {KEY_TEXT} /agentfleet /etc /home/agent /tmp 2>/dev/null; true")
        assert found.stdout.strip() == "", (agent, found.stdout)
        environment = host.check_output(f"docker inspect -f '{{{{json .Config.Env}}}}' agentfleet-{agent}-1")
        assert KEY_TEXT not in environment, agent
