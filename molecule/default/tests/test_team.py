"""Team work end to end: a goal to the orchestrator (the real Claude Code CLI, scripted by the test
Messages-API endpoint) delegates to marie and anga (the real CLI too, under gVisor), whose proposals
conflict; a follow-up resolves it, the orchestrator integrates both, the project's own tests pass on
the integration branch, and a person publishes it to the project's source on the host."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
SOURCE = "/opt/agentfleet-test/shop.git"
DOC = '"""A tiny shop: the project the fleet works on in the tests."""'
COMMIT = "git add --all && git -c user.name={0} -c user.email={0}@agentfleet.invalid commit --quiet -m {1} && git log --oneline -1"
DISCOUNT = "def discount(price: float, percent: int) -> float:\n    return round(price * (100 - percent) / 100, 2)\n"
TAX = "def with_tax(price: float) -> float:\n    return round(price * 1.2, 2)\n"


def unit_test(module: str, call: str, expected: str) -> str:
    return (f"import unittest\n\nfrom {module} import *\n\n\nclass {module.title()}Test(unittest.TestCase):\n"
            f"    def test_it(self) -> None:\n        self.assertEqual({call}, {expected})\n")


def write(name: str, content: str) -> dict[str, Any]:
    return {"tool": "Write", "input": {"file_path": "{cwd}/" + name, "content": content}}


def first_line(text: str) -> str:
    return f"sed -i '1s/.*/\"\"\"{text}\"\"\"/' shop.py && head -1 shop.py"


# marie reads and edits with Claude Code's own tools, then commits with Bash (pwd first: the
# endpoint puts its answer where a step says {cwd}).
MARIE = ["pwd", {"tool": "Read", "input": {"file_path": "{cwd}/shop.py"}},
         {"tool": "Edit", "input": {"file_path": "{cwd}/shop.py", "old_string": DOC,
                                    "new_string": '"""A tiny shop, with discounts."""'}},
         write("discount.py", DISCOUNT), write("test_discount.py", unit_test("discount", "discount(10.0, 20)", "8.0")),
         COMMIT.format("marie", "'Add discounts'")]
# anga changes the same first line (the conflict) and leaves her work uncommitted: the runtime commits it.
ANGA = ["pwd", first_line("A tiny shop, with taxes."), write("tax.py", TAX),
        write("test_tax.py", unit_test("tax", "with_tax(10.0)", "12.0"))]
# The follow-up starts from the integration branch, marie's work included.
ANGA_AGAIN = ["pwd", first_line("A tiny shop, with discounts and taxes."), write("tax.py", TAX),
              write("test_tax.py", unit_test("tax", "with_tax(10.0)", "12.0")), COMMIT.format("anga", "'Add taxes'")]


def delegate(worker: str, steps: list[Any], name: str) -> str:
    prompt = shlex.quote("SCRIPT " + json.dumps(steps))
    return (f'agentctl submit --to {worker} --project shop --base "$(git rev-parse HEAD)" {prompt} '
            f"| cut -d' ' -f2 > /tmp/{name}.task && cat /tmp/{name}.task")


def waited(name: str) -> str:
    return f"agentctl wait $(cat /tmp/{name}.task) --timeout 400 > /dev/null"


# What the orchestrator's model does with its Bash tool, in its checkout of the goal.
GOAL = [delegate("marie", MARIE, "marie") + " && " + delegate("anga", ANGA, "anga"),
        f"{waited('marie')} && {waited('anga')} && echo both finished",
        "agentctl diff $(cat /tmp/marie.task) | head -40",
        "agentctl integrate $(cat /tmp/marie.task)",
        "agentctl integrate $(cat /tmp/anga.task) 2>&1 || { " + delegate("anga", ANGA_AGAIN, "again")
        + f" && {waited('again')} && agentctl integrate $(cat /tmp/again.task); }}",
        "python3 -m unittest 2>&1 | tail -3"]


@pytest.fixture(scope="module", name="goal")
def fixture_goal(host: testinfra.host.Host) -> dict[str, Any]:
    """The goal, submitted by a person on the host, run to its end."""
    submitted = host.run("agentctl submit --to orchestrator --project shop --wait 900 "
                         + shlex.quote("SCRIPT " + json.dumps(GOAL)))
    assert submitted.stdout.startswith("orchestrator "), submitted.stdout + submitted.stderr
    result: dict[str, Any] = json.loads(submitted.stdout.split("\n", 1)[1])
    assert result["status"] == "ok", result
    shown = json.loads(host.run(f"agentctl show {result['id']}").stdout)
    return {**result, "delegated": shown["delegated"], "publication": shown["publication"]}


def test_the_orchestrator_delegated_to_marie_and_anga_and_followed_up_the_conflict(goal: dict[str, Any]) -> None:
    delegated = sorted((task["worker"], task["status"], task["proposal"]) for task in goal["delegated"])
    assert delegated == [("anga", "ok", True), ("anga", "ok", True), ("marie", "ok", True)], goal["delegated"]
    outputs = json.loads(goal["output"].removeprefix("RESULTS "))
    assert "conflicts in shop.py; nothing merged" in outputs[4], outputs[4]
    assert "OK" in outputs[5], outputs[5]  # the project's tests, run by the orchestrator


def test_nothing_is_published_before_a_person_approves(host: testinfra.host.Host, goal: dict[str, Any]) -> None:
    assert goal["publication"] is None
    assert host.run(f"git -C {SOURCE} rev-parse --verify --quiet refs/heads/agentfleet/{goal['id']}").rc != 0
    listing = host.check_output("agentctl goals")
    assert any(line.split()[:3] == [goal["id"], "shop", "ok"] and line.split()[-1] == "-" for line in listing.splitlines())


def test_a_person_reads_the_diff_publishes_and_the_projects_tests_pass_on_the_branch(
        host: testinfra.host.Host, goal: dict[str, Any]) -> None:
    diff = host.check_output(f"agentctl diff {goal['id']}")
    assert "+def discount(" in diff and "+def with_tax(" in diff and '+"""A tiny shop, with discounts and taxes."""' in diff
    published = host.run(f"agentctl publish {goal['id']}")
    assert published.rc == 0, published.stderr
    record = json.loads(published.stdout)
    assert record["branch"] == f"agentfleet/{goal['id']}"
    clone = f"/root/agentfleet-published-{goal['id']}"
    host.check_output(f"git clone --quiet --branch agentfleet/{goal['id']} {SOURCE} {clone}")
    tests = host.run(f"cd {clone} && python3 -m unittest -v 2>&1")
    assert tests.rc == 0 and "Ran 3 tests" in tests.stdout, tests.stdout
    authors = host.check_output(f"git -C {clone} log --format=%an origin/main..HEAD").split()
    assert {"marie", "anga", "orchestrator"} <= set(authors)  # each commit in its maker's name
    again = host.run(f"agentctl publish {goal['id']}")
    assert again.rc != 0 and "was already published" in again.stderr
    assert "published" in host.check_output("agentctl goals")
    host.run(f"rm -rf {clone}")


def test_only_root_publishes(host: testinfra.host.Host, goal: dict[str, Any]) -> None:
    as_orchestrator = host.run(f"setpriv --reuid=agent-orchestrator --regid=agent-orchestrator --init-groups "
                               f"agentctl reject {goal['id']}")
    assert as_orchestrator.rc != 0 and "only root publishes" in as_orchestrator.stderr, as_orchestrator.stderr


def test_the_publishing_timer_runs_only_for_on_completion_projects(host: testinfra.host.Host) -> None:
    """shop is set to approve: the timer is off, and its service, run by hand, publishes nothing."""
    assert host.run("systemctl is-enabled agentfleet-publish.timer").stdout.strip() == "disabled"
    before = host.check_output(f"git -C {SOURCE} for-each-ref --format='%(refname)' refs/heads")
    assert host.run("systemctl start agentfleet-publish.service").rc == 0
    assert host.check_output("systemctl show -p Result --value agentfleet-publish.service").strip() == "success"
    assert host.check_output(f"git -C {SOURCE} for-each-ref --format='%(refname)' refs/heads") == before
