#!/usr/bin/env python3
"""Benchmark: what an operator waits for, on bare Debian 13 host containers (as Molecule makes them).

    bench/stack.py [--pairs N] [workers ...]   (default 1 pair, 3 30 100 workers; inside the venv;
                                                needs scripts/build-test-images)

0. untimed: site.yml on a bare host, so that what the builds download has been fetched once
   before either timed run (a cache on the way would favour the second);
1. floor: the same work as a plain script on a bare host: the same engine packages, the same
   daemon.json, the same image builds (`docker buildx bake` of the contexts and bake file the
   role wrote), `docker compose up --wait` on the same project;
2. cold: site.yml on another bare host -> healthy stack (3 workers, offline images as in our
   tests); and the ratio cold / floor; with --pairs N, N floor and cold pairs and their median
   ratio. Hosts done with are stopped and removed at the end: removing one (gigabytes) before a
   timed run slowed that run's builds by up to 10 s;
3. for each worker count: a converge to that model, then a warm re-run and a --check run, each
   with its changed count (both must be 0).
Ansible runs on the host itself, as the README's deploy does (inventories/local: a local
connection): ansible-core of the controller's version in a venv there, our collections copied
in, the repository mounted read-only. Installing that is not timed.
Claim latency comes from bench/runtime_claims.py. Each playbook also writes a profile_tasks
log under the scratch directory, for where the time goes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ansible
import ansible_collections
import yaml
from table import print_table

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "agentfleet-test/host:trixie"
CONTROLLER_COLLECTIONS = "/opt/ansible-collections"
RECAP = re.compile(r"^\S+\s*:\s*ok=\d+\s+changed=(?P<changed>\d+).*failed=(?P<failed>\d+)", re.M)
# The host container as molecule/default makes it: systemd, its own engine, no --privileged.
HOST_OPTIONS = yaml.safe_load((ROOT / "molecule" / "default" / "molecule.yml").read_text())["platforms"][0]
# What the floor does by hand: the role's packages, daemon.json and builds (one bake of the role's
# bake file: every image at once, as the role builds them), then compose up.
FLOOR = """set -e
mark() { echo "$1 $(date +%s.%N)"; }
mark start
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-cli docker-buildx docker-compose >/dev/null
mkdir -p /etc/docker && cp /bench/daemon.json /etc/docker/daemon.json && systemctl restart docker
docker load -qi /bench/base.tar >/dev/null
mark engine
cd /bench/images && docker buildx bake --file bake.json --progress plain >/bench/bake.log 2>&1 || { tail -20 /bench/bake.log; exit 1; }
mark builds
cd /etc/agentfleet/stack && docker compose up -d --wait --quiet-pull >/dev/null
mark up
"""


def sh(*command: str, check: bool = True) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=check).stdout


def start_host(name: str, scratch: Path | None = None) -> None:
    """A bare host container; with scratch, also the repository and scratch mounted (the controller side)."""
    sh("docker", "rm", "-f", "-v", name, check=False)
    caps = [f"--cap-add={cap}" for cap in HOST_OPTIONS["capabilities"]]
    mounts = ["-v", f"{ROOT}:/agentfleet:ro", "-v", f"{scratch}:/bench:ro"] if scratch else []
    sh("docker", "run", "-d", "--name", name, *caps, "--security-opt", "seccomp=unconfined", "--security-opt",
       "apparmor=unconfined", "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/docker",
       "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp", *mounts, IMAGE,
       "/lib/systemd/systemd")
    for _ in range(60):
        state = sh("docker", "exec", name, "systemctl", "is-system-running", check=False).strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    sys.exit(f"{name}: systemd did not finish booting")


def install_ansible(name: str) -> None:
    """ansible-core at the controller's version, and the collections the roles use, on the host."""
    version = ansible.__version__
    collections = Path(list(ansible_collections.__path__)[0])
    sh("docker", "exec", "-e", "DEBIAN_FRONTEND=noninteractive", name, "sh", "-c",
       "apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null && python3 -m venv /opt/ansible && "
       f"PIP_CERT=/bench/ca.pem /opt/ansible/bin/pip install -q ansible-core=={version} && "
       f"mkdir -p {CONTROLLER_COLLECTIONS}/ansible_collections/community {CONTROLLER_COLLECTIONS}/ansible_collections/ansible")
    for collection in ("community/docker", "community/crypto", "ansible/posix"):
        sh("docker", "cp", str(collections / collection),
           f"{name}:{CONTROLLER_COLLECTIONS}/ansible_collections/{collection.split('/')[0]}/")


def model(workers: int) -> list[dict[str, object]]:
    """Fixed ids for orchestrator and monitor, so a larger model only adds workers."""
    fixed: list[dict[str, object]] = [{"name": "orchestrator", "kind": "orchestrator", "uid": 10000},
                                      {"name": "monitor", "kind": "monitor", "uid": 10001}]
    return fixed + [{"name": f"worker{n:03d}", "kind": "worker", "uid": 10001 + n} for n in range(1, workers + 1)]


def playbook(scratch: Path, host: str, workers: int, label: str, *extra: str) -> tuple[float, int]:
    """site.yml on the host itself, on the local inventory, as the README's deploy command runs it."""
    (scratch / "model.json").write_text(json.dumps({"agent_model_agents": model(workers)}))
    environment = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all",
                   "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1",
                   # the repository, mounted at /agentfleet, is its own collection (agentfleet.fleet) there
                   "ANSIBLE_COLLECTIONS_PATH": f"{CONTROLLER_COLLECTIONS}:/agentfleet/collections"}
    command = ["docker", "exec", "-w", "/agentfleet", *[f"-e{key}={value}" for key, value in environment.items()], host,
               "/opt/ansible/bin/ansible-playbook", "-i", "inventories/local/hosts.yml", "site.yml",
               "-e", "@bench/stack-vars.yml", "-e", "@/bench/model.json", "-e", "bench_scratch=/bench", *extra]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    (scratch / f"{label}.log").write_text(result.stdout + result.stderr)
    recap = RECAP.search(result.stdout)
    if result.returncode != 0 or recap is None:
        sys.exit(f"{label} failed (log: {scratch / label}.log):\n{result.stdout[-3000:]}{result.stderr[-1000:]}")
    return elapsed, int(recap["changed"])


def task_seconds(scratch: Path, label: str, task: str) -> float:
    """Seconds profile_tasks gave the tasks of a run whose names contain task."""
    recap = (scratch / f"{label}.log").read_text().partition("TASKS RECAP")[2]
    return sum(float(match[2]) for match in re.finditer(r"^(.*?) -+ ([\d.]+)s$", recap, re.M) if task in match[1])


def floor(scratch: Path, converged: str, bare: str) -> dict[str, float]:
    """Copy what the roles produced (project, tree, build contexts) to a bare host, untimed; time the work."""
    bundle = scratch / "bundle.tar"
    files = "/etc/agentfleet /srv/agentfleet /var/lib/agentfleet/images /etc/docker/daemon.json"
    sh("docker", "exec", converged, "sh", "-c", f"tar -cf /bundle.tar {files}")
    sh("docker", "cp", f"{converged}:/bundle.tar", str(bundle))
    sh("docker", "cp", str(bundle), f"{bare}:/bundle.tar")
    sh("docker", "exec", bare, "sh", "-c", "tar -C / -xf /bundle.tar && mkdir -p /bench && "
       "cp -a /var/lib/agentfleet/images /bench/images && cp /etc/docker/daemon.json /bench/ && rm -f /etc/docker/daemon.json")
    sh("docker", "cp", str(scratch / "base-trixie.tar"), f"{bare}:/bench/base.tar")
    sh("sync")  # what the copies above left to write is not the floor's
    result = subprocess.run(["docker", "exec", bare, "bash", "-c", FLOOR], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"the floor script failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    marks = dict(line.split() for line in result.stdout.splitlines() if len(line.split()) == 2)
    steps = {step: float(marks[step]) - float(marks[before])
             for before, step in (("start", "engine"), ("engine", "builds"), ("builds", "up"))}
    return {**steps, "total": float(marks["up"]) - float(marks["start"])}


def main() -> None:
    arguments = sys.argv[1:]
    pairs = int(arguments.pop(arguments.index("--pairs") + 1)) if "--pairs" in arguments else 1
    counts = [int(arg) for arg in arguments if arg != "--pairs"] or [3, 30, 100]
    stack, bare, primer = "agentfleet-bench-stack", "agentfleet-bench-floor", "agentfleet-bench-primer"
    converged, hosts = stack, [primer]
    scratch = Path(tempfile.mkdtemp(prefix="agentfleet-bench-"))
    sh("docker", "save", "-o", str(scratch / "base-trixie.tar"), "agentfleet-test/debian:trixie")
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", scratch / "ca.pem")
    rows: list[list[str]] = []

    def record(*row: str) -> None:
        rows.append(list(row))
        print("  ".join(row), flush=True)  # as it goes: the whole run takes long

    try:
        # What the builds download (Debian's archive, npm) may be cached on the way once fetched,
        # which would favour whichever build runs second: an untimed converge fetches it all first.
        start_host(primer, scratch)
        install_ansible(primer)
        playbook(scratch, primer, counts[0], "primer")
        ratios = []
        for sample in range(1, pairs + 1):
            # Hosts done with are stopped, and removed only at the end: removing one (gigabytes of
            # images) right before a timed run would slow that run.
            if sample > 1:
                sh("docker", "stop", converged)
            floor_host, converged = f"{bare}-{sample}", f"{stack}-{sample}"
            hosts += [floor_host, converged]
            start_host(floor_host)
            floor_times = floor(scratch, primer, floor_host)
            sh("docker", "stop", floor_host)
            start_host(converged, scratch)
            install_ansible(converged)
            sh("sync")
            label = f"cold-{sample}"
            cold = playbook(scratch, converged, counts[0], label)
            ratios.append(cold[0] / floor_times["total"])
            record(f"cold converge, {counts[0]} workers (pair {sample})", f"{cold[0]:.0f} s", str(cold[1]))
            record("  of it: image builds / deploy until healthy",
                   f"{task_seconds(scratch, label, 'Build the images'):.0f} s / "
                   f"{task_seconds(scratch, label, 'Deploy the stack'):.0f} s", "-")
            record(f"floor (plain script, same work; pair {sample})", f"{floor_times['total']:.0f} s", "-")
            record("  of it: engine / image builds / compose up until healthy",
                   " / ".join(f"{floor_times[step]:.0f} s" for step in ("engine", "builds", "up")), "-")
            record(f"cold / floor (pair {sample})", f"{ratios[-1]:.2f}", "-")
        sh("docker", "stop", primer)
        if pairs > 1:
            record(f"cold / floor, median of {pairs} pairs", f"{statistics.median(ratios):.2f}", "-")
        for count in counts:
            if count != counts[0]:
                grown = playbook(scratch, converged, count, f"converge-{count}")
                record(f"converge to {count} workers", f"{grown[0]:.0f} s", str(grown[1]))
            warm = playbook(scratch, converged, count, f"warm-{count}")
            check = playbook(scratch, converged, count, f"check-{count}", "--check")
            record(f"warm re-run, {count} workers", f"{warm[0]:.1f} s", str(warm[1]))
            record(f"--check, {count} workers", f"{check[0]:.1f} s", str(check[1]))
    finally:
        for name in hosts:
            sh("docker", "rm", "-f", "-v", name, check=False)
        print(f"logs (profile_tasks): {scratch}")
    print_table(["run", "wall time", "changed"], rows)


if __name__ == "__main__":
    main()
