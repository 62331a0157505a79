"""Refresh and rollback on the live stack (agent_images_refresh, agent_images_rollback).

The archive cannot be made to publish an update on cue, so the test makes the image older
instead: dockerproxy's image gets a dpkg database that lists an old haproxy. A refresh rebuilds it
from the archive without the cache, reports the package, keeps the old image for rollback and the
stack runs the new one; a second refresh finds nothing and recreates nothing; a rollback puts the
old image back. Only dockerproxy is covered (agent_images_refresh_images), so the other images are
not rebuilt: every other service keeps running untouched, but the monitor, which compose recreates
with the Docker API proxy it depends on."""

from __future__ import annotations

import json
import time

import testinfra.host
from test_playbook import playbook, recap

testinfra_hosts = ["ansible://agentfleet_hosts"]
HOST = "agentfleet-trixie"
OLD = "0.0-agentfleet-old"
ONLY = ["-e", '{"agent_images_refresh_images": ["dockerproxy"]}', "--limit", HOST]


def tag(host: testinfra.host.Host) -> str:
    return str(host.check_output("docker inspect -f '{{.Config.Image}}' agentfleet-dockerproxy-1")).strip()


def image_of(host: testinfra.host.Host, name: str) -> str:
    return str(host.check_output(f"docker image inspect -f '{{{{.Id}}}}' {name}")).strip()


def haproxy_version(host: testinfra.host.Host, name: str) -> str:
    return str(host.check_output(f"docker run --rm --network none --entrypoint dpkg-query {name} -W -f '${{Version}}' haproxy"))


def started(host: testinfra.host.Host) -> dict[str, str]:
    listing = host.check_output("docker ps --filter label=com.docker.compose.project=agentfleet "
                                "--format '{{.Names}}'").split()
    return {name: host.check_output(f"docker inspect -f '{{{{.State.StartedAt}}}} {{{{.Image}}}}' {name}")
            for name in listing}


def healthy_soon(host: testinfra.host.Host, container: str) -> bool:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if host.run(f"docker inspect -f '{{{{.State.Health.Status}}}}' {container}").stdout.strip() == "healthy":
            return True
        time.sleep(2)
    return False


def test_refresh_reports_the_package_keeps_the_old_image_and_rollback_puts_it_back(host: testinfra.host.Host) -> None:
    current = tag(host)
    user = host.check_output(f"docker image inspect -f '{{{{.Config.User}}}}' {current}")  # the image runs as nobody
    dockerfile = (f"FROM {current}\\nUSER root\\nRUN sed -i '/^Package: haproxy$/,/^Version:/ s/^Version: .*/Version: {OLD}/' "
                  f"/var/lib/dpkg/status\\nUSER {user}\\n")
    host.run_test(f"printf \"{dockerfile}\" | docker build --quiet --network none -t {current} -")
    aged = image_of(host, current)
    assert haproxy_version(host, current) == OLD
    before = started(host)

    refreshed = playbook("-e", "agent_images_refresh=true", *ONLY)
    assert refreshed.returncode == 0, refreshed.stdout[-3000:]
    assert f"dockerproxy: 1 package(s) changed: haproxy {OLD} -> " in refreshed.stdout, refreshed.stdout[-3000:]
    fresh = image_of(host, current)
    assert fresh != aged and haproxy_version(host, current) != OLD
    kept = host.check_output(f"docker image ls {current.rpartition(':')[0]} --format '{{{{.Tag}}}}'").split()
    points = [name for name in kept if name.startswith(current.rpartition(":")[2] + "-before-")]
    assert len(points) == 1 and image_of(host, f"{current.rpartition(':')[0]}:{points[0]}") == aged
    assert healthy_soon(host, "agentfleet-dockerproxy-1")
    after = started(host)
    assert after["agentfleet-dockerproxy-1"].split()[1] == fresh
    # Compose recreates what depends on a recreated service: the monitor waits for the Docker API proxy.
    dependents = {name for name in before if "dockerproxy" in host.check_output(
        f"docker inspect -f '{{{{index .Config.Labels \"com.docker.compose.depends_on\"}}}}' {name}")}
    assert dependents == {"agentfleet-monitor-1"}
    assert {name for name in before if before[name] != after[name]} == {"agentfleet-dockerproxy-1"} | dependents

    again = playbook("-e", "agent_images_refresh=true", *ONLY)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "dockerproxy: no package changed; the image it runs stays" in again.stdout
    assert recap(again.stdout)[HOST][0] == 0, again.stdout[-3000:]  # nothing rebuilt is kept, nothing recreated
    assert image_of(host, current) == fresh and started(host) == after

    rolled = playbook("-e", "agent_images_rollback=true", *ONLY)
    assert rolled.returncode == 0, rolled.stdout[-3000:]
    assert "rolled back: dockerproxy" in rolled.stdout
    assert image_of(host, current) == aged and haproxy_version(host, current) == OLD
    assert healthy_soon(host, "agentfleet-dockerproxy-1")
    assert started(host)["agentfleet-dockerproxy-1"].split()[1] == aged
    events = json.loads(host.check_output(f"docker image inspect {current}"))[0]
    assert events["Id"] == aged
