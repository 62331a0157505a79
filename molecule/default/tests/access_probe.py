"""Runs inside a test host as root: what each agent account can really do on each path.

stdin: {"users": [...], "paths": [...]}; stdout: {user: {path: {"list", "read", "write"}}}.
Each probe forks, takes the account's uid, gid and supplementary groups from the host's own
account databases (as a container given the same ids would), and tries the operation.
"""

from __future__ import annotations

import json
import os
import pwd
import sys

PROBE = ".agentfleet-probe"


def attempt(user: str, action: str, path: str) -> bool:
    child = os.fork()
    if child == 0:
        account = pwd.getpwnam(user)
        os.initgroups(user, account.pw_gid)
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
        try:
            if action == "list":
                os.listdir(path)
            elif action == "read":
                with open(os.path.join(path, PROBE), encoding="utf-8") as handle:
                    handle.read()
            else:
                target = os.path.join(path, f"{PROBE}-{user}")
                os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
                os.unlink(target)
        except OSError:
            os._exit(1)
        os._exit(0)
    return os.waitpid(child, 0)[1] == 0


def main() -> None:
    request = json.load(sys.stdin)
    for entry in request["paths"]:
        # What the path's owner leaves there with the usual umask 022.
        probe = os.path.join(entry["path"], PROBE)
        with open(probe, "w", encoding="utf-8") as handle:
            handle.write("probe\n")
        os.chown(probe, entry["owner"], entry["group"])
        os.chmod(probe, 0o644)
    try:
        report = {user: {entry["path"]: {action: attempt(user, action, entry["path"])
                                         for action in ("list", "read", "write")}
                         for entry in request["paths"]} for user in request["users"]}
    finally:
        for entry in request["paths"]:
            os.unlink(os.path.join(entry["path"], PROBE))
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
