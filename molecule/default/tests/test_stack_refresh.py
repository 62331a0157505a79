"""Refresh and rollback on the live stack (agent_images_refresh, agent_images_rollback).

The archive cannot be made to publish an update on cue, so the test makes the image older
instead: dockerproxy's image gets a dpkg database that lists an old haproxy. A refresh rebuilds it
from the archive without the cache, reports the package, keeps the old image for rollback and the
stack runs the new one; a second refresh finds nothing and recreates nothing; a rollback puts the
old image back. Only dockerproxy is covered (agent_images_refresh_images), so the other images are
not rebuilt: every other service keeps running untouched, but the monitor, which compose recreates
with the Docker API proxy it depends on.

A newer base is made the same way (its dpkg database lists a newer hostname) and handed to the
refresh as the base archive: exactly the images whose Dockerfile builds FROM the base are rebuilt on
it, the stack runs them, and rolling the base back brings back the images built on the old one."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import time
from pathlib import Path

import testinfra.host
from test_playbook import STACK_PLAY, playbook, recap

testinfra_hosts = ["ansible://agentfleet_hosts"]
HOST = "agentfleet-trixie"
OLD = "0.0-agentfleet-old"
ONLY = ["-e", '{"agent_images_refresh_images": ["dockerproxy"]}', "--limit", HOST]


def tag(host: testinfra.host.Host) -> str:
    return str(host.check_output("docker inspect -f '{{.Config.Image}}' agentfleet-dockerproxy-1")).strip()


def image_of(host: testinfra.host.Host, name: str) -> str:
    return str(host.check_output(f"docker image inspect -f '{{{{.Id}}}}' {name}")).strip()


def version(host: testinfra.host.Host, name: str, package: str = "haproxy") -> str:
    return str(host.check_output(f"docker run --rm --network none --entrypoint dpkg-query {name} -W -f '${{Version}}' {package}"))


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
    assert version(host, current) == OLD
    before = started(host)

    refreshed = playbook("-e", "agent_images_refresh=true", *ONLY, play=STACK_PLAY)
    assert refreshed.returncode == 0, refreshed.stdout[-3000:]
    assert f"dockerproxy: 1 package(s) changed: haproxy {OLD} -> " in refreshed.stdout, refreshed.stdout[-3000:]
    fresh = image_of(host, current)
    assert fresh != aged and version(host, current) != OLD
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

    again = playbook("-e", "agent_images_refresh=true", *ONLY, play=STACK_PLAY)
    assert again.returncode == 0, again.stdout[-3000:]
    assert "dockerproxy: no package changed; the image it runs stays" in again.stdout
    assert recap(again.stdout)[HOST][0] == 0, again.stdout[-3000:]  # nothing rebuilt is kept, nothing recreated
    assert image_of(host, current) == fresh and started(host) == after

    rolled = playbook("-e", "agent_images_rollback=true", *ONLY, play=STACK_PLAY)
    assert rolled.returncode == 0, rolled.stdout[-3000:]
    assert "rolled back: dockerproxy" in rolled.stdout
    assert image_of(host, current) == aged and version(host, current) == OLD
    assert healthy_soon(host, "agentfleet-dockerproxy-1")
    assert started(host)["agentfleet-dockerproxy-1"].split()[1] == aged
    events = json.loads(host.check_output(f"docker image inspect {current}"))[0]
    assert events["Id"] == aged


NEWER = "99.0-agentfleet-newer"
BASE_IMAGES = {"agent", "redis", "gateway", "dockerproxy", "egress"}  # by hand: every image is built on the base


def newer_base(base: str, archive: Path) -> None:
    """On the controller's engine: the base with a newer hostname listed, saved under the base's own
    name (rewritten in the archive, so the controller's base keeps its tag)."""
    scratch = f"{base.rpartition(':')[0]}:refresh-test"
    build = f"FROM {base}\nRUN sed -i '/^Package: hostname$/,/^Version:/ s/^Version: .*/Version: {NEWER}/' /var/lib/dpkg/status\n"
    subprocess.run(["docker", "build", "--quiet", "--network", "none", "-t", scratch, "-"], input=build, text=True,
                   check=True, capture_output=True)
    saved = archive.with_suffix(".saved.tar")
    subprocess.run(["docker", "save", "-o", str(saved), scratch], check=True)
    subprocess.run(["docker", "rmi", scratch], check=True, capture_output=True)
    with tarfile.open(saved) as source, tarfile.open(archive, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member) if member.isfile() else None
            if member.name in ("manifest.json", "repositories", "index.json") and data is not None:
                text = data.read().decode().replace(scratch, base).replace(
                    json.dumps(scratch.rpartition(":")[2]), json.dumps(base.rpartition(":")[2]))
                member.size, data = len(text.encode()), io.BytesIO(text.encode())
            target.addfile(member, data)
    saved.unlink()


def said(output: str) -> str:
    """What the play said (its debug messages and failures), for an assertion's message."""
    return "\n".join(line for line in output.splitlines() if '"msg"' in line or "fatal" in line or "rolled back" in line)


def built_from(host: testinfra.host.Host, base: str) -> set[str]:
    """The images whose Dockerfile on the host builds FROM the base."""
    listing = host.check_output("grep -l '^FROM ' /var/lib/agentfleet/images/*/Dockerfile").split()
    return {path.split("/")[-2] for path in listing
            if base in host.file(path).content_string.split("\nFROM ", 1)[-1].split("\n", 1)[0].split()}


def layers(host: testinfra.host.Host, name: str) -> list[str]:
    return list(json.loads(host.check_output(f"docker image inspect -f '{{{{json .RootFS.Layers}}}}' {name}")))


def test_a_newer_base_rebuilds_exactly_the_images_built_on_it_and_rolls_back(host: testinfra.host.Host, tmp_path: Path) -> None:
    base = host.ansible.get_variables()["agent_images_base"]
    assert built_from(host, base) == BASE_IMAGES
    old_base, running, hostname = image_of(host, base), started(host), version(host, base, "hostname")
    tags = {name: host.check_output(f"docker inspect -f '{{{{.Config.Image}}}}' agentfleet-{name}-1")
            for name in ("redis", "gateway", "dockerproxy", "egress", "marie")}
    archive = tmp_path / "newer-base.tar"
    newer_base(base, archive)
    only_base = ["-e", json.dumps({"agent_images_refresh_images": ["base"], "agent_images_base_archive": str(archive)})]

    refreshed = playbook("-e", "agent_images_refresh=true", *only_base, "--limit", HOST, play=STACK_PLAY)
    assert refreshed.returncode == 0, refreshed.stdout[-3000:]
    assert f"base: 1 package(s) changed: hostname {hostname} -> {NEWER}" in refreshed.stdout, refreshed.stdout[-3000:]
    for name in sorted(BASE_IMAGES):
        assert f"rebuilt on the new base: {name}" in refreshed.stdout, refreshed.stdout[-3000:]
    new_base = image_of(host, base)
    points = [tag for tag in host.check_output(f"docker image ls {base.rpartition(':')[0]} --format '{{{{.Tag}}}}'").split()
              if tag.startswith(base.rpartition(":")[2] + "-before-")]
    assert new_base != old_base and [image_of(host, f"{base.rpartition(':')[0]}:{tag}") for tag in points] == [old_base]
    for name in ("redis", "gateway", "dockerproxy", "egress", "marie"):
        tag = host.check_output(f"docker inspect -f '{{{{.Config.Image}}}}' agentfleet-{name}-1")
        assert tag != tags[name] and layers(host, tag)[:len(layers(host, base))] == layers(host, base), name
        assert healthy_soon(host, f"agentfleet-{name}-1")

    rolled = playbook("-e", "agent_images_rollback=true", *only_base, "--limit", HOST, play=STACK_PLAY)
    assert rolled.returncode == 0, rolled.stdout[-3000:]
    assert "rolled back: base" in rolled.stdout, said(rolled.stdout)
    assert "building" not in rolled.stdout, said(rolled.stdout)  # the images built on the old base are still there
    assert image_of(host, base) == old_base
    for name in ("redis", "gateway", "dockerproxy", "egress", "marie"):
        assert host.check_output(f"docker inspect -f '{{{{.Config.Image}}}}' agentfleet-{name}-1") == tags[name]
        assert healthy_soon(host, f"agentfleet-{name}-1")
    assert set(started(host)) == set(running)
