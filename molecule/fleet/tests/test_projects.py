"""A goal's project work across hosts, as the roles deploy it: alpha and beta mirror project shop
(role agent_projects, one source); the orchestrator's checkout on alpha has a commit no mirror has;
`agentctl submit --to lea --project shop --base HEAD` sends the task with that base to beta, where
lea (the runtime's worker, command backend) changes the code; its proposal comes back to alpha,
where `agentctl diff` shows it and `agentctl integrate` merges it onto the goal's branch."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator

import pytest
from test_nats_cluster import HOSTS
from test_relay_service import LIB, ROOT, agentctl, on, start_worker

testinfra_hosts = ["ansible://agentfleet-fleet-alpha"]
MIRROR = f"{ROOT}/projects/shop"
CHECKOUT = f"{ROOT}/workspaces/orchestrator/goal-shop"
GOAL = "goal-shop-1"


def as_orchestrator(*argv: str) -> str:
    """A command on alpha as its orchestrator, in the goal's checkout (as its Claude runs agentctl)."""
    command = ["setpriv", "--reuid", "agent-orchestrator", "--regid", "agent-orchestrator", "--init-groups",
               "env", "-C", CHECKOUT, "HOME=/nonexistent", f"PYTHONPATH={LIB}", *argv]
    return str(on(HOSTS[0]).check_output(shlex.join(command)))


def python(code: str) -> str:
    return as_orchestrator("python3", "-I", "-c", f"import sys; sys.path.insert(0, {LIB!r}); {code}")


@pytest.fixture(name="lea", scope="module")
def fixture_lea() -> Iterator[None]:
    """lea on beta, title-casing the shop in whatever checkout its task gives it."""
    start_worker(HOSTS[1], "lea", "project-lea", "sed -i 's/A tiny shop/A tiny Shop/' shop.py", projects={"shop": MIRROR})
    yield
    on(HOSTS[1]).run("systemctl stop agentfleet-test-project-lea")


@pytest.mark.usefixtures("lea")
def test_a_goals_task_runs_on_another_host_from_its_base_and_its_proposal_is_integrated_at_home() -> None:
    alpha, beta = on(HOSTS[0]), on(HOSTS[1])
    alpha.run_expect([0], f"mkdir -p {CHECKOUT} && chown agent-orchestrator: {CHECKOUT}")
    head = alpha.check_output(f"git -C {MIRROR} rev-parse refs/heads/main").strip()
    python(f"from pathlib import Path; from agentfleet.proposals import clone; "
           f"clone(Path({MIRROR!r}), Path({CHECKOUT!r}), 'agentfleet/{GOAL}', {head!r})")
    as_orchestrator("sh", "-c", "echo 'TAXES = 0.2' >> shop.py && git -c user.name=orchestrator "
                    "-c user.email=o@agentfleet.invalid commit --quiet -am 'the goal: taxes'")
    base = as_orchestrator("git", "rev-parse", "HEAD").strip()
    assert beta.run(f"git -C {MIRROR} cat-file -e {base}^{{commit}}").rc != 0  # beta's mirror lacks it
    line, _, body = agentctl_in_goal("submit", "--to", "lea", "--project", "shop", "--base", base, "--wait", "90",
                                     "title case the shop").partition("\n")
    ident = line.split()[1]
    done = json.loads(body)
    assert line.startswith("fleet:lea ") and (done["node"], done["worker"], done["status"]) == (HOSTS[1], "lea", "ok"), done
    assert beta.file(f"{ROOT}/inbox/lea/{ident}.base.bundle").user == "agent-orchestrator"  # written as beta's dispatcher
    for name in (f"{ident}.proposal.json", f"{ident}.bundle", f"{ident}.sent.json"):
        assert alpha.file(f"{ROOT}/fleet/{name}").user == "agent-orchestrator", name
    shown = agentctl_in_goal("diff", ident)
    assert f"proposal {ident} of lea" in shown and '+"""A tiny Shop' in shown and "+TAXES" not in shown, shown
    merged = agentctl_in_goal("integrate", ident).strip()
    code = as_orchestrator("git", "show", f"{merged}:shop.py")
    assert code.startswith('"""A tiny Shop') and "TAXES = 0.2" in code
    assert as_orchestrator("git", "log", "-1", "--format=%an", f"{merged}^2").strip() == "lea"


def agentctl_in_goal(*args: str) -> str:
    return as_orchestrator("env", f"AGENTFLEET_GOAL={GOAL}", f"AGENTFLEET_CALLER_DIR={CHECKOUT}",
                           f"AGENTFLEET_ROOT={ROOT}", "AGENTFLEET_NAME=orchestrator", "python3", "-I", "-c",
                           "import sys; sys.path.insert(0, %r); from agentfleet.agentctl import main; "
                           "sys.exit(main(sys.argv[1:]))" % LIB, *args)
