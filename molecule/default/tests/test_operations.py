"""What an operator does to running work, with the real Claude Code CLI under gVisor (marie): the
live transcript shows a task's tool calls while it runs (agentctl logs, --follow until it ends);
agentctl cancel stops a long task within seconds, its tool included, and it is never run again;
a worker cannot cancel anything."""

from __future__ import annotations

import time
from pathlib import Path

import testinfra.host
from test_stack import container, run

testinfra_hosts = ["ansible://agentfleet_hosts"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "artifacts"


def submit(host: testinfra.host.Host, steps: str) -> str:
    return str(run(host, f"agentctl submit --to marie 'SCRIPT {steps}'").split()[1])


def logs_until(host: testinfra.host.Host, ident: str, wanted: str, timeout: float = 120) -> str:
    deadline, shown = time.monotonic() + timeout, ""
    while time.monotonic() < deadline:
        shown = str(host.run(f"agentctl logs {ident}").stdout)
        if wanted in shown:
            return shown
        time.sleep(1)
    raise AssertionError(f"{wanted!r} not in the transcript of {ident}: {shown[-2000:]}")


def finished(host: testinfra.host.Host, ident: str) -> bool:
    return bool(host.run(f"test -e /srv/agentfleet/results/marie/{ident}.json").rc == 0)


def test_the_transcript_shows_a_running_tasks_tool_calls_before_it_ends(host: testinfra.host.Host) -> None:
    ident = submit(host, '["echo agentfleet-live-step", "sleep 15"]')
    shown = logs_until(host, ident, "tool Bash: sleep 15")
    assert "tool Bash: echo agentfleet-live-step" in shown and "tool output: agentfleet-live-step" in shown
    assert not finished(host, ident), "the task ended before its transcript was read"
    followed = run(host, f"agentctl logs --follow --timeout 180 {ident}")
    assert finished(host, ident) and "[finished] success" in followed, followed[-2000:]
    # Written by marie herself, in her logs directory, which only she and the observers may enter.
    assert host.file(f"/srv/agentfleet/logs/marie/{ident}.jsonl").user == "agent-marie"
    directory = host.file("/srv/agentfleet/logs/marie")
    assert (directory.user, directory.group, directory.mode) == ("agent-marie", "agentfleet-observers", 0o750)


# Not one `sleep 600`: the CLI refuses a standalone long sleep ("Blocked: standalone sleep 600",
# and the task ended at once). It runs `sleep 15` (the test above): four of them, one tool call
# each, make a task of a minute.
STEP = "sleep 15"


def test_cancel_stops_a_long_task_within_seconds_and_it_never_runs_again(host: testinfra.host.Host) -> None:
    ident = submit(host, f'["{STEP}", "{STEP}", "{STEP}", "{STEP}"]')
    logs_until(host, ident, f"tool Bash: {STEP}")
    assert not finished(host, ident), run(host, f"agentctl logs {ident}")
    asked = time.monotonic()
    assert run(host, f"agentctl cancel {ident}").strip() == f"marie {ident} cancel requested"
    while not finished(host, ident) and time.monotonic() - asked < 30:
        time.sleep(0.5)
    took = time.monotonic() - asked
    shown = host.run(f"agentctl show {ident}")
    assert shown.rc == 1 and '"status": "cancelled"' in shown.stdout and took < 10, (took, shown.stdout)
    processes = run(host, f"docker exec {container('marie')} sh -c 'cat /proc/[0-9]*/cmdline | tr \"\\\\0\" \" \"'")
    assert STEP not in processes, processes
    assert "already finished on marie: cancelled" in run(host, f"agentctl cancel {ident}")
    # The worker goes on with the next task; the cancelled one is never claimed again.
    after = submit(host, '["echo after-the-cancel"]')
    assert host.run(f"agentctl wait {after} --timeout 180").rc == 0
    assert run(host, f"ls /srv/agentfleet/results/marie/ | grep -c '^{ident}'").strip() == "1"


def test_a_worker_cannot_cancel_a_task(host: testinfra.host.Host) -> None:
    ident = submit(host, f'["{STEP}", "{STEP}"]')  # a 30 s task (a standalone `sleep 30` is refused by the CLI: done at once)
    refused = host.run(f"docker exec {container('anga')} agentctl cancel {ident}")
    assert refused.rc != 0 and not host.file(f"/srv/agentfleet/inbox/marie/{ident}.cancel").exists
    run(host, f"agentctl cancel {ident}")
    assert host.run(f"agentctl wait {ident} --timeout 60").rc == 1


def test_doctor_passes_on_the_healthy_fleet_and_names_a_stopped_service_with_its_fix(host: testinfra.host.Host) -> None:
    healthy = host.run("agentctl doctor")
    assert healthy.rc == 0, healthy.stdout + healthy.stderr
    for line in ("OK    Docker engine", "OK    runtimes: runc, runsc", "OK    services: all",
                 "OK    gateway reaches https://api.anthropic.test:8443", "OK    model key: set"):
        assert line in healthy.stdout, healthy.stdout
    run(host, f"docker stop {container('egress')}")
    try:
        broken = host.run("agentctl doctor")
        assert broken.rc == 1 and "FAIL  service egress: Exited" in broken.stdout, broken.stdout
        assert f"fix: docker logs {container('egress')}" in broken.stdout
    finally:
        run(host, f"docker start {container('egress')}")
        run(host, f"for i in $(seq 60); do [ \"$(docker inspect -f '{{{{.State.Health.Status}}}}' {container('egress')})\" = "
                  "healthy ] && exit 0; sleep 1; done; exit 1")


def test_every_read_command_prints_its_table_on_the_live_fleet(host: testinfra.host.Host) -> None:
    """Each command's output as an operator sees it, kept in artifacts/ for the docs' examples."""
    ident = submit(host, '["echo agentfleet-example"]')
    run(host, f"agentctl wait --timeout 120 {ident}")
    commands = ["status", "results --worker marie", f"logs {ident}", "usage", "egress", "disk", "goals", "doctor"]
    shown = {command: host.run(f"agentctl {command}") for command in commands}
    for command in commands:
        assert shown[command].rc == 0 and shown[command].stdout.strip(), (command, shown[command].stderr)
    assert "AGENT" in shown["status"].stdout and ident in shown["results --worker marie"].stdout
    assert "tool Bash: echo agentfleet-example" in shown[f"logs {ident}"].stdout
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "agentctl-examples.txt").write_text(
        "".join(f"$ agentctl {command}\n{shown[command].stdout.rstrip()}\n\n" for command in commands))
