"""Backup and restore on the fresh host: a backup (secrets encrypted), then everything of
agentfleet's taken off the host with its data (playbooks/remove.yml, agentfleet_remove_data), then
playbooks/restore.yml from the archive. The fleet comes back with the same accounts and uids, the
results the agents wrote, the account registry and the secrets, and runs healthy. The engine stays
(remove.yml leaves it), so this is a host that lost agentfleet, not a new machine: the deploy
after the restore builds the base and every image again, as on a new one."""

from __future__ import annotations

import json
import re
import shlex
import time

import testinfra.host

testinfra_hosts = ["ansible://fresh"]
PLAYBOOK = "cd /root/agentfleet && .venv/bin/ansible-playbook"
PASSPHRASE = "correct horse battery staple"
IDENT = "20261130T130000-0000beef"
SECRETS = "/etc/agentfleet/stack/secrets"
REGISTRY = "/var/lib/agentfleet/accounts.json"
KEY = "sk-ant-restore-test-0123456789abcdef"


def snapshot(host: testinfra.host.Host) -> dict[str, str]:
    """The accounts (name, uid, gid), the registry, the secrets' and marie's result's contents with owners."""
    return {"registry": host.file(REGISTRY).content_string,
            "accounts": host.check_output("getent passwd | grep -E '^(agent-|agentfleet-)' | cut -d: -f1,3,4 | sort"),
            "secrets": host.check_output(f"cd {SECRETS} && stat -c '%n %u %g %a' * && sha256sum *"),
            "result": host.check_output(f"stat -c '%u %a' /srv/agentfleet/results/marie/{IDENT}.json && "
                                        f"sha256sum /srv/agentfleet/results/marie/{IDENT}.json")}


def healthy(host: testinfra.host.Host) -> bool:
    listing = host.check_output("docker ps -a --filter label=com.docker.compose.project=agentfleet --format '{{.Status}}'")
    return bool(listing) and all("(healthy)" in line for line in listing.splitlines())


def test_a_backup_restored_after_everything_was_removed_brings_the_fleet_back(host: testinfra.host.Host) -> None:
    result = {"id": IDENT, "worker": "marie", "status": "failed", "output": "", "reason": "kept across a restore",
              "attempt": 1, "started": time.time() - 1, "finished": time.time()}
    code = f"import json; open('/agentfleet/results/marie/{IDENT}.json', 'w').write(json.dumps({result!r}))"
    host.run_test(f"docker exec agentfleet-marie-1 python3 -I -c {shlex.quote(code)}")
    host.run_test(f"printf %s {KEY} | agentctl secret set model-key")
    before = snapshot(host)

    backup = host.run(f"{PLAYBOOK} playbooks/backup.yml -e agent_backup_passphrase={shlex.quote(PASSPHRASE)}")
    assert backup.rc == 0, backup.stdout[-3000:]
    found = re.search(r"backup: (/var/backups/agentfleet/agentfleet-\S+\.tar) \(secrets encrypted\)", backup.stdout)
    assert found, backup.stdout[-3000:]
    archive = found.group(1)
    assert host.file(archive).mode == 0o600 and host.file(archive).user == "root"
    assert sorted(host.check_output(f"tar -tf {archive}").split()) == ["data.tar.gz", "manifest.json", "secrets.tar.gz.gpg"]
    # The key is in no part of the archive; the control: it is in the host's own secret file.
    assert host.run(f"tar -xOf {archive} | zcat -f | grep -a -c -F {KEY}").stdout.strip() == "0"
    assert host.run(f"grep -c -F {KEY} {SECRETS}/gateway_key.conf").stdout.strip() == "1"

    removed = host.run(f"{PLAYBOOK} playbooks/remove.yml -e '{{\"agentfleet_remove_data\": true}}'")
    assert removed.rc == 0, removed.stdout[-3000:]
    assert not host.file("/srv/agentfleet").exists and not host.file(REGISTRY).exists and not host.file(SECRETS).exists
    assert host.run("getent passwd agent-marie").rc != 0

    wrong = host.run(f"{PLAYBOOK} playbooks/restore.yml -e agent_backup_restore_archive={archive} "
                     "-e agent_backup_passphrase=not-the-passphrase")
    assert wrong.rc != 0 and "Decrypt the secrets" in wrong.stdout
    assert not host.file("/srv/agentfleet").exists and not host.file(REGISTRY).exists  # nothing put back

    restored = host.run(f"{PLAYBOOK} playbooks/restore.yml -e agent_backup_restore_archive={archive} "
                        f"-e agent_backup_passphrase={shlex.quote(PASSPHRASE)}")
    assert restored.rc == 0, restored.stdout[-3000:]
    deadline = time.monotonic() + 180
    while not healthy(host) and time.monotonic() < deadline:
        time.sleep(3)
    assert healthy(host)
    assert snapshot(host) == before
    shown = json.loads(host.check_output(f"agentctl show {IDENT}"))
    assert shown["reason"] == "kept across a restore" and shown["worker"] == "marie"
    assert "model key" not in host.check_output("agentctl status")  # the key came back with the secrets

    again = host.run(f"{PLAYBOOK} playbooks/restore.yml -e agent_backup_restore_archive={archive} "
                     f"-e agent_backup_passphrase={shlex.quote(PASSPHRASE)}")
    assert again.rc != 0 and "agent_backup_restore_overwrite: this host already holds a fleet's data" in again.stdout
