"""Backup and restore onto a second fresh host: a result written by marie and the model key set on
the first host; playbooks/backup.yml there (secrets encrypted); the archive carried to
agentfleet-fresh-2, a second fresh Debian 13 host with only the README's prerequisites; there,
playbooks/restore.yml brings the fleet back with the same accounts and uids, the account registry,
the secrets and the result, and runs it healthy.

On the second host the engine is installed first (playbooks/docker_engine.yml, as the deploy's
second play would) and the images the first host built are loaded into it: the restore's deploy
then finds them instead of building them again (two minutes; the first host's deploy is the test
of building on a fresh host)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time

import pytest
import testinfra
import testinfra.host

testinfra_hosts = ["ansible://fresh"]
SOURCE, TARGET = "agentfleet-fresh", "agentfleet-fresh-2"
PLAYBOOK = "cd /root/agentfleet && .venv/bin/ansible-playbook"
PASSPHRASE = "correct horse battery staple"
IDENT = "20261130T130000-0000beef"
SECRETS = "/etc/agentfleet/stack/secrets"
REGISTRY = "/var/lib/agentfleet/accounts.json"
KEY = "sk-ant-restore-test-0123456789abcdef"


def extra(**values: str) -> str:
    """-e with JSON: a passphrase with spaces stays one value (key=value splits on them)."""
    return f"-e {shlex.quote(json.dumps(values))}"


def snapshot(host: testinfra.host.Host) -> dict[str, str]:
    """The accounts (name, uid, gid), the registry, the secrets and marie's result, contents and owners."""
    return {"registry": host.file(REGISTRY).content_string,
            "accounts": host.check_output("getent passwd | grep -E '^(agent-|agentfleet-)' | cut -d: -f1,3,4 | sort"),
            "secrets": host.check_output(f"cd {SECRETS} && stat -c '%n %u %g %a' * && sha256sum *"),
            "result": host.check_output(f"stat -c '%u %a' /srv/agentfleet/results/marie/{IDENT}.json && "
                                        f"sha256sum /srv/agentfleet/results/marie/{IDENT}.json")}


def healthy(host: testinfra.host.Host) -> bool:
    listing = host.run("docker ps -a --filter label=com.docker.compose.project=agentfleet --format '{{.Status}}'").stdout
    return bool(listing.strip()) and all("(healthy)" in line for line in listing.splitlines())


def carry(command: str, into: str) -> None:
    """Pipe a command's output on the first host into a command on the second, through this machine."""
    source = subprocess.Popen(["docker", "exec", SOURCE, "sh", "-c", command], stdout=subprocess.PIPE)
    target = subprocess.run(["docker", "exec", "-i", TARGET, "sh", "-c", into], stdin=source.stdout,
                            capture_output=True, text=True, timeout=900, check=False)
    assert source.wait(timeout=900) == 0 and target.returncode == 0, target.stderr[-2000:]


@pytest.fixture(name="backup", scope="module")
def fixture_backup(host: testinfra.host.Host) -> tuple[str, dict[str, str]]:
    result = {"id": IDENT, "worker": "marie", "status": "failed", "output": "", "reason": "kept across a restore",
              "attempt": 1, "started": time.time() - 1, "finished": time.time()}
    code = f"import json; open('/agentfleet/results/marie/{IDENT}.json', 'w').write(json.dumps({result!r}))"
    host.run_test(f"docker exec agentfleet-marie-1 python3 -I -c {shlex.quote(code)}")
    host.run_test(f"printf %s {KEY} | agentctl secret set model-key")
    made = host.run(f"{PLAYBOOK} playbooks/backup.yml {extra(agent_backup_passphrase=PASSPHRASE)}")
    assert made.rc == 0, made.stdout[-3000:]
    said = " ".join(made.stdout.replace("'", " ").split())  # the callback folds long messages
    found = re.search(r"backup: (/var/backups/agentfleet/agentfleet-\S+\.tar) \(secrets encrypted\)", said)
    assert found, made.stdout[-3000:]
    return found.group(1), snapshot(host)


def test_the_backup_is_roots_and_its_secrets_are_encrypted(host: testinfra.host.Host, backup: tuple[str, dict[str, str]]) -> None:
    archive, _ = backup
    assert host.file(archive).mode == 0o600 and host.file(archive).user == "root"
    assert sorted(host.check_output(f"tar -tf {archive}").split()) == ["data.tar.gz", "manifest.json", "secrets.tar.gz.gpg"]
    # The key is in no part of the archive; the control: it is in the host's own secret file.
    # Each part as a reader would see it: the data decompressed (zcat -f on the whole archive would
    # pass its compressed part through unread), the secrets as stored.
    parts = (f"(tar -xOf {archive} manifest.json; tar -xOf {archive} data.tar.gz | zcat; "
             f"tar -xOf {archive} secrets.tar.gz.gpg)")
    assert host.run(f"{parts} | grep -a -c -F {KEY}").stdout.strip() == "0"
    assert host.run(f"{parts} | grep -a -c -F {IDENT}").stdout.strip() != "0"  # the control: the data is read
    assert host.run(f"grep -c -F {KEY} {SECRETS}/gateway_key.conf").stdout.strip() == "1"


def test_a_restore_onto_a_second_fresh_host_brings_the_fleet_back(host: testinfra.host.Host,
                                                                   backup: tuple[str, dict[str, str]]) -> None:
    archive, before = backup
    target = testinfra.get_host(f"docker://{TARGET}")
    assert not target.file("/srv/agentfleet").exists and target.run("getent passwd agent-marie").rc != 0
    carry(f"cat {archive}", "cat > /root/backup.tar")
    target.run_test("cd /root/agentfleet && bash -c '. scripts/lib.sh && agentfleet_venv' >/dev/null")
    engine = target.run(f"{PLAYBOOK} playbooks/docker_engine.yml")
    assert engine.rc == 0, engine.stdout[-3000:]
    images = host.check_output("docker image ls --format '{{.Repository}}:{{.Tag}}' | grep '^agentfleet/' | tr '\\n' ' '")
    carry(f"docker save {images}", "docker load >/dev/null")

    wrong = target.run(f"{PLAYBOOK} playbooks/restore.yml "
                       + extra(agent_backup_restore_archive="/root/backup.tar", agent_backup_passphrase="not the passphrase"))
    assert wrong.rc != 0 and "Decrypt the secrets" in wrong.stdout, wrong.stdout[-3000:]
    assert not target.file("/srv/agentfleet").exists and not target.file(REGISTRY).exists  # nothing put back

    restored = target.run(f"{PLAYBOOK} playbooks/restore.yml "
                          + extra(agent_backup_restore_archive="/root/backup.tar", agent_backup_passphrase=PASSPHRASE))
    assert restored.rc == 0, restored.stdout[-3000:]
    deadline = time.monotonic() + 180
    while not healthy(target) and time.monotonic() < deadline:
        time.sleep(3)
    assert healthy(target)
    assert snapshot(target) == before
    # agentctl show finds a result where its task was sent; this one was planted without a task.
    assert f"marie  {IDENT}  failed  kept across a restore" in target.check_output("agentctl results --worker marie")
    assert "model key" not in target.check_output("agentctl status")  # the key came back with the secrets

    again = target.run(f"{PLAYBOOK} playbooks/restore.yml "
                       + extra(agent_backup_restore_archive="/root/backup.tar", agent_backup_passphrase=PASSPHRASE))
    assert again.rc != 0 and "agent_backup_restore_overwrite: this host already holds" in " ".join(again.stdout.split())
