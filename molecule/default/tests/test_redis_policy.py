"""Redis, when the model asks for it: each agent's own keys, no instance-wide command, a memory
limit that evicts instead of stopping everyone; no login at all for the agents that did not ask.
The controls run the same commands as redis's own default user, inside the redis container."""

from __future__ import annotations

import json
import shlex

import pytest
import testinfra.host

testinfra_hosts = ["ansible://agentfleet_hosts"]
# Runs in an agent: logs in as argv[1] with its secret and prints the reply to each command of
# argv[2] (a JSON list of lists) as JSON; a reply is a string, an int, a list or {"error": ...}.
CLIENT = r"""
import json, socket, sys
def reply(stream):
    line = stream.readline().decode(errors="replace").rstrip("\r\n")
    kind, rest = line[:1], line[1:]
    if kind == "+":
        return rest
    if kind == "-":
        return {"error": rest}
    if kind == ":":
        return int(rest)
    if kind == "$":
        return None if rest == "-1" else stream.read(int(rest) + 2)[:-2].decode(errors="replace")
    if kind == "*":
        return None if rest == "-1" else [reply(stream) for _ in range(int(rest))]
    raise SystemExit(f"unexpected reply {line!r}")
connection = socket.create_connection(("redis", 6379), timeout=20)
stream = connection.makefile("rwb")
def send(*words):
    data = [w.encode() if isinstance(w, str) else w for w in words]
    stream.write(b"".join([b"*%d\r\n" % len(data)] + [b"$%d\r\n%s\r\n" % (len(w), w) for w in data]))
    stream.flush()
    return reply(stream)
password = open("/run/secrets/redis_password", "rb").read().strip()
results = [send("AUTH", sys.argv[1], password)]
for command in json.loads(sys.argv[2]):
    if command[0] == "FILL":  # FILL prefix count size: count SETs of size bytes each
        results.append([send("SET", f"{command[1]}{i}", b"x" * command[3]) for i in range(command[2])][-1])
    else:
        results.append(send(*command))
print(json.dumps(results))
"""
# Instance-wide: enumeration, scripts and functions, flushes, config, pub/sub introspection, and
# what else reads or changes the whole instance (DEBUG is not here: redis refuses it to every
# user unless enable-debug-command is set, before any ACL).
INSTANCE_WIDE = [["KEYS", "*"], ["SCAN", "0"], ["RANDOMKEY"], ["DBSIZE"], ["FLUSHALL"], ["FLUSHDB"],
                 ["CONFIG", "GET", "maxmemory"], ["CONFIG", "SET", "maxmemory", "0"], ["EVAL", "return 1", "0"],
                 ["FUNCTION", "LIST"], ["SCRIPT", "FLUSH"], ["PUBSUB", "CHANNELS"], ["PUBSUB", "NUMSUB", "anga:x"],
                 ["INFO"], ["CLIENT", "LIST"], ["CLIENT", "KILL", "TYPE", "normal"],
                 ["SELECT", "1"], ["SWAPDB", "0", "1"], ["MEMORY", "STATS"], ["ACL", "LIST"], ["SAVE"],
                 ["SHUTDOWN", "NOSAVE"], ["MONITOR"], ["OBJECT", "FREQ", "anga:x"], ["SORT", "marie:list", "BY", "anga:*"]]
# The same commands the default user runs in the control (none of them destructive).
HARMLESS = [["KEYS", "*"], ["SCAN", "0"], ["DBSIZE"], ["CONFIG", "GET", "maxmemory"], ["EVAL", "return 1", "0"],
            ["PUBSUB", "CHANNELS"], ["INFO", "memory"], ["CLIENT", "LIST"]]


def as_agent(host: testinfra.host.Host, agent: str, commands: list[list[object]]) -> list[object]:
    script = (f"docker exec agentfleet-{agent}-1 python3 -c {shlex.quote(CLIENT)} agent-{agent} "
              f"{shlex.quote(json.dumps(commands))}")
    result = host.run(script)
    assert result.rc == 0, result.stderr
    replies: list[object] = json.loads(result.stdout)
    assert replies[0] == "OK", replies[0]
    return replies[1:]


def as_default(host: testinfra.host.Host, *words: str) -> str:
    auth = "REDISCLI_AUTH=$(sed -n 's/^requirepass //p' /run/secrets/redis_conf)"
    command = f"{auth} redis-cli --no-raw {' '.join(shlex.quote(word) for word in words)}"
    result = host.run(f"docker exec agentfleet-redis-1 sh -c {shlex.quote(command)}")
    assert result.rc == 0, result.stderr
    return str(result.stdout)


@pytest.mark.parametrize("command", INSTANCE_WIDE, ids=[" ".join(c[:2]) for c in INSTANCE_WIDE])
def test_an_agent_is_denied_every_instance_wide_command(host: testinfra.host.Host, command: list[object]) -> None:
    reply = as_agent(host, "marie", [command])[0]
    assert isinstance(reply, dict) and reply["error"].startswith("NOPERM"), reply


@pytest.mark.parametrize("command", HARMLESS, ids=[" ".join(c[:2]) for c in HARMLESS])
def test_control_the_default_user_runs_the_same_commands(host: testinfra.host.Host, command: list[str]) -> None:
    assert "NOPERM" not in as_default(host, *command) and "ERR" not in as_default(host, *command)


def test_an_agent_works_with_its_own_keys_and_channels(host: testinfra.host.Host) -> None:
    replies = as_agent(host, "marie", [["SET", "marie:a", "1"], ["INCR", "marie:a"], ["EXPIRE", "marie:a", "60"],
                                       ["HSET", "marie:h", "f", "v"], ["LPUSH", "marie:l", "x"], ["GET", "marie:a"],
                                       ["PUBLISH", "marie:events", "hi"], ["DEL", "marie:h"], ["GET", "anga:a"],
                                       ["PUBLISH", "anga:events", "hi"]])
    assert replies[:8] == ["OK", 2, 1, 1, 1, "2", 0, 1], replies
    assert all(isinstance(reply, dict) and reply["error"].startswith("NOPERM") for reply in replies[8:]), replies


def test_an_agent_without_redis_in_its_model_has_no_login_and_no_route(host: testinfra.host.Host) -> None:
    probe = ("import os, socket\nprint(os.path.exists('/run/secrets/redis_password'), os.environ.get('AGENTFLEET_REDIS_USER'))\n"
             "try:\n    socket.getaddrinfo('redis', 6379)\n    print('resolves')\nexcept socket.gaierror:\n    print('no such name')")
    for agent, expected in (("fabien", "False None\nno such name"), ("marie", "True agent-marie\nresolves")):
        result = host.run(f"docker exec agentfleet-{agent}-1 python3 -c {shlex.quote(probe)}")
        assert result.stdout.strip() == expected, (agent, result.stdout, result.stderr)


def test_a_memory_hungry_agent_is_evicted_and_another_keeps_working(host: testinfra.host.Host) -> None:
    """maxmemory is 16mb in this scenario: marie writes 48 MiB; every write of hers and anga's succeeds,
    the limit holds and redis evicted keys (its control numbers come from the default user)."""
    before = as_default(host, "INFO", "stats")
    assert as_agent(host, "marie", [["FILL", "marie:hog:", 48, 1024 * 1024]]) == ["OK"]
    assert as_agent(host, "anga", [["SET", "anga:after", "still here"], ["GET", "anga:after"]]) == ["OK", "still here"]
    memory = dict(line.split(":", 1) for line in as_default(host, "INFO", "memory").split() if ":" in line)
    assert int(memory["used_memory"]) <= 20 * 1024 * 1024 and memory["maxmemory_policy"] == "allkeys-lru", memory
    evicted = [int(line.split(":")[1]) for text in (before, as_default(host, "INFO", "stats"))
               for line in text.split() if line.startswith("evicted_keys:")]
    assert evicted[1] > evicted[0], evicted
