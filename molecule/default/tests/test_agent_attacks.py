"""The same attacks through the real agent: the test endpoint scripts the model, so Claude Code
itself (permissions skipped) runs each escape attempt with its Bash tool inside marie's
container. Every command prints ESCAPED or BLOCKED as its last line; all must be BLOCKED."""

from __future__ import annotations

import json
import shlex
from functools import cache

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]


def last_verdict(output: str) -> str:
    """The command's own last verdict line (Claude Code appends reminders to tool output)."""
    return [line for line in output.splitlines() if line.strip() in ("ESCAPED", "BLOCKED")][-1].strip()


def verdict(test: str) -> str:
    return f"({test}) && echo ESCAPED || echo BLOCKED"


def connect(address: str, port: int) -> str:
    """A TCP connect; refused (111) means the address answered, which is also an escape."""
    code = (f"import socket; s = socket.socket(); s.settimeout(3); "
            f"print('ESCAPED' if s.connect_ex(('{address}', {port})) in (0, 111) else 'BLOCKED')")
    return f"python3 -c {shlex.quote(code)}"


# Any key but the placeholder, in any process environment or readable regular file (a shell
# pipeline for this made Claude Code refuse to run it: it could not parse it with certainty).
HUNT = ('import glob, os, re; key = re.compile(rb"sk-ant-[A-Za-z0-9_-]{12,}"); '
        'files = glob.glob("/proc/[0-9]*/environ") + [os.path.join(d, f) for top in '
        '("/agentfleet", "/home", "/tmp", "/etc", "/run") for d, _, names in os.walk(top) for f in names]; '
        'hits = [f for f in files if os.path.isfile(f) and os.access(f, os.R_OK) and any('
        'not m.startswith(b"sk-ant-placeholder") for m in key.findall(open(f, "rb").read()))]; '
        'print("ESCAPED" if hits else "BLOCKED")')


def attacks(host: testinfra.host.Host) -> dict[str, str]:
    outside = host.ansible("setup", "gather_subset=network")["ansible_facts"]["ansible_default_ipv4"]["address"]
    anga = json.loads(host.check_output("docker inspect agentfleet-anga-1"))[0]["NetworkSettings"]["Networks"]
    anga_address = anga["agentfleet_agent_anga"]["IPAddress"]
    return {
        "another worker's tasks": verdict("cat /agentfleet/inbox/anga/*.json"),
        "another worker's results and workspace": verdict("ls /agentfleet/results/anga || ls /agentfleet/workspaces/anga"),
        "another worker's credentials": verdict("ls /agentfleet/credentials/anga"),
        # A process that ends between the glob and stat (a healthcheck) is gone, not foreign.
        "other agents' processes": verdict("for p in /proc/[0-9]*; do u=$(stat -c %u $p 2>/dev/null) && "
                                           "[ \"$u\" != \"$(id -u)\" ] && exit 0; done; exit 1"),
        "the Docker API": verdict("test -e /var/run/docker.sock || curl -s --max-time 5 --noproxy '*' "
                                  "http://dockerproxy:2375/_ping"),
        "the internet": verdict(f"curl -s --max-time 5 --noproxy '*' http://{outside}:8000/ | grep -q agentfleet-outside"
                                " || curl -sf --max-time 5 https://outside.agentfleet.test/"),
        "the metadata address": verdict("curl -s --max-time 5 --noproxy '*' http://169.254.169.254/ | grep -q metadata"),
        "external DNS": verdict("getent hosts outside.agentfleet.test"),
        "another agent over the network": connect(anga_address, 9),
        "the host over the network": connect(outside, 22),
        "hunting the API key": f"python3 -c {shlex.quote(HUNT)}",
        "the gateway's key file": verdict("cat /etc/agentfleet/stack/secrets/gateway_key.conf /run/secrets/gateway_key"
                                          " 2>/dev/null | grep -q x-api-key"),
        "the gateway to another host": verdict(
            "curl -s --max-time 5 --noproxy '*' -H 'Host: outside.agentfleet.test:8000' http://gateway:8080/ "
            "| grep -q agentfleet-outside || curl -s --max-time 5 --proxy http://gateway:8080 "
            "http://outside.agentfleet.test:8000/ | grep -q agentfleet-outside"),
        "sudo or a setuid binary": verdict("sudo -n true || find / -xdev -perm /6000 -type f | grep -q ."),
        "writing the root filesystem": verdict("touch /usr/local/bin/agentfleet-escape"),
    }


@cache
def outcome(host: testinfra.host.Host) -> dict[str, str]:
    """Send every attack to marie in one task; the answer holds each command's output."""
    script = attacks(host)
    prompt = "ATTACK " + json.dumps(list(script.values()))
    submitted = host.run(f"agentctl submit --to marie --wait 300 {shlex.quote(prompt)}")
    assert submitted.rc == 0, submitted.stdout + submitted.stderr
    answer = json.loads(submitted.stdout.split("\n", 1)[1])["output"]
    assert answer.startswith("RESULTS "), answer[:2000]
    outputs = json.loads(answer.removeprefix("RESULTS "))
    assert len(outputs) == len(script), outputs
    return dict(zip(script, outputs))


ATTACKS = ("another worker's tasks", "another worker's results and workspace", "another worker's credentials",
           "other agents' processes", "the Docker API", "the internet", "the metadata address", "external DNS",
           "another agent over the network", "the host over the network", "hunting the API key",
           "the gateway's key file", "the gateway to another host", "sudo or a setuid binary",
           "writing the root filesystem")


@pytest.mark.parametrize("attack", ATTACKS)
def test_claude_code_inside_a_worker_cannot(host: testinfra.host.Host, attack: str) -> None:
    output = outcome(host)[attack]
    assert last_verdict(output) == "BLOCKED", output


def test_the_scripted_model_really_ran_the_commands(host: testinfra.host.Host) -> None:
    """The control: a command that must succeed inside marie reports ESCAPED, so BLOCKED means something."""
    prompt = "ATTACK " + json.dumps([verdict("ls /agentfleet/workspaces/marie"), "id -u"])
    submitted = host.run(f"agentctl submit --to marie --wait 120 {shlex.quote(prompt)}")
    outputs = json.loads(json.loads(submitted.stdout.split("\n", 1)[1])["output"].removeprefix("RESULTS "))
    assert last_verdict(outputs[0]) == "ESCAPED" and outputs[1].strip().splitlines()[0] == str(host.user("agent-marie").uid)
