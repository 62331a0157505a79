"""Attacks one agent container from inside, as its own user; prints one JSON row per attempt.

Run as `docker exec -i -w / -e AGENTFLEET_PROBE_NONCE=N CONTAINER python3 -I - SPEC_JSON <
agentfleet_probe.py` (the root filesystem is read-only and /tmp is noexec, so the probe never lands
as a file; -I and the working directory / keep the agent's own files off sys.path, so the agent
under audit cannot shadow an import). It echoes the nonce: a report without it is not the probe's. The spec comes
from the agent model (role agent_audit); every target is an address or name of the stack or of
the test's own hosts. A row's "ok" is true when the attack failed the way the spec expects.
Standard library only.
"""

from __future__ import annotations

import ctypes
import os

if __name__ == "__main__":
    # Before anything else: not dumpable, so other processes of this uid can no longer trace this
    # one or read its environment (the nonce) or its file descriptors.
    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE

import errno  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

Row = dict[str, Any]
KEY = re.compile(rb"sk-ant-[A-Za-z0-9_-]{12,}")
PLACEHOLDER = b"sk-ant-placeholder"
TIMEOUT = 3.0
PR_GET_SECCOMP, PR_GET_NO_NEW_PRIVS = 21, 39
GVISOR_VERSION = "Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016"  # what gVisor's kernel reports
SYSTEM_DIRS = ("/bin", "/sbin", "/usr", "/lib", "/etc", "/opt")
ALLOWED_MOUNTS = ("/", "/proc", "/dev", "/sys", "/tmp", "/home/agent", "/etc/hosts", "/etc/hostname",
                  "/etc/resolv.conf", "/agentfleet", "/run/secrets", "/dev/shm", "/dev/mqueue", "/dev/pts",
                  "/sys/fs/cgroup", "/proc/")


def row(check: str, target: str, ok: bool, observed: str) -> Row:
    return {"check": check, "target": target, "ok": ok, "observed": observed[:300]}


def status_field(name: str) -> str:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return ""


def prctl_get(option: int) -> str:
    """prctl(2) read-back: asks the kernel (or gVisor's) directly, which /proc/self/status may omit."""
    libc = ctypes.CDLL(None, use_errno=True)
    value = libc.prctl(option, 0, 0, 0, 0)
    return str(value) if value >= 0 else f"error {ctypes.get_errno()}"


def seccomp_row(runtime: str, seccomp: str) -> Row:
    """Under runc, Docker's seccomp filter; under gVisor, gVisor's own kernel serves every syscall
    (its sentry is filtered on the host), so the check is that this really is gVisor's kernel."""
    if runtime == "runsc":
        with open("/proc/version", encoding="ascii") as handle:
            version = handle.read().strip()
        return row("seccomp", "gVisor kernel", version == GVISOR_VERSION, version)
    return row("seccomp", "Seccomp", seccomp == "2", f"Seccomp={seccomp} (2 = filter)")


def check_privileges(spec: dict[str, Any]) -> list[Row]:
    caps = status_field("CapEff")
    nnp, seccomp = prctl_get(PR_GET_NO_NEW_PRIVS), prctl_get(PR_GET_SECCOMP)
    bounding = status_field("CapBnd")
    return [
        row("capabilities", "CapEff", int(caps, 16) == 0, f"CapEff={caps}"),
        row("capabilities", "CapBnd", int(bounding, 16) == 0, f"CapBnd={bounding}"),
        row("no_new_privs", "NoNewPrivs", nnp == "1", f"NoNewPrivs={nnp}"),
        seccomp_row(spec.get("runtime", "runc"), seccomp),
        row("non_root", "uid", os.getuid() != 0 and os.geteuid() != 0, f"uid={os.getuid()} euid={os.geteuid()}"),
    ]


def check_setuid(_spec: dict[str, Any]) -> list[Row]:
    found = []
    for top in SYSTEM_DIRS:
        for base, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(base, name)
                try:
                    mode = os.lstat(path).st_mode
                except OSError:
                    continue
                if stat.S_ISREG(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                    found.append(path)
    sudo = [path for path in ("/usr/bin/sudo", "/bin/sudo", "/usr/bin/doas") if os.path.exists(path)]
    return [row("no_setuid", "setuid/setgid files", not found, ", ".join(found) or "none"),
            row("no_setuid", "sudo", not sudo, ", ".join(sudo) or "none")]


def write_attempt(path: str) -> tuple[bool, str]:
    """(blocked, what happened) for creating a file at path."""
    try:
        with open(path, "x", encoding="ascii") as handle:
            handle.write("x")
    except OSError as error:
        return True, errno.errorcode.get(error.errno or 0, str(error))
    os.unlink(path)
    return False, "created"


def check_filesystem(_spec: dict[str, Any]) -> list[Row]:
    rows = []
    for path in ("/probe", "/usr/probe", "/etc/probe"):
        blocked, seen = write_attempt(path)
        rows.append(row("read_only_root", path, blocked, seen))
    script = "/tmp/.agentfleet-probe.sh"
    with open(script, "w", encoding="ascii") as handle:
        handle.write("#!/bin/sh\necho ran\n")
    os.chmod(script, 0o755)
    try:
        ran = subprocess.run([script], capture_output=True, text=True, timeout=TIMEOUT, check=False).stdout.strip()
        rows.append(row("noexec_tmp", script, ran != "ran", f"executed: {ran}"))
    except OSError as error:
        rows.append(row("noexec_tmp", script, True, errno.errorcode.get(error.errno or 0, str(error))))
    finally:
        os.unlink(script)
    for path in ("/proc/sys/kernel/hostname", "/proc/sys/net/ipv4/ip_forward", "/proc/sysrq-trigger"):
        try:
            with open(path, "w", encoding="ascii") as handle:
                handle.write("1\n")
            rows.append(row("proc_sys", path, False, "written"))
        except OSError as error:
            rows.append(row("proc_sys", path, True, errno.errorcode.get(error.errno or 0, str(error))))
    return rows


def mounts() -> list[tuple[str, str]]:
    """(mount point, source) of every mount this container sees."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        for line in handle:
            fields = line.split()
            found.append((fields[4], fields[3]))
    return found


def check_host_filesystem(spec: dict[str, Any]) -> list[Row]:
    inside = spec["inside_root"]
    ollama = spec.get("ollama", {})
    allowed = ALLOWED_MOUNTS + ((os.path.dirname(ollama["socket"]),) if ollama.get("reachable") else ())
    extra = [point for point, _options in mounts()
             if not (point in allowed or point.startswith(inside + "/") or point.startswith("/proc/")
                     or point.startswith("/sys/") or point.startswith("/dev/") or point.startswith("/run/secrets/"))]
    sockets = [path for path in ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock")
               if os.path.exists(path)]
    return [row("host_filesystem", "mounts", not extra, ", ".join(extra) or "only the stack's mounts"),
            row("host_filesystem", "runtime sockets", not sockets, ", ".join(sockets) or "none")]


def access(path: str, action: str) -> bool:
    """True when this process can list, read or write path (a directory)."""
    try:
        if action == "list":
            os.listdir(path)
        elif action == "read":
            for name in os.listdir(path):  # non-blocking: a FIFO an agent left must not hang the probe
                os.close(os.open(os.path.join(path, name), os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW))
        else:
            blocked, _detail = write_attempt(os.path.join(path, ".agentfleet-probe"))
            return not blocked
    except OSError:
        return False
    return True


def check_paths(spec: dict[str, Any]) -> list[Row]:
    """Every path of the access matrix: allowed actions work, everything else fails."""
    rows = []
    for entry in spec["paths"]:
        for action in ("list", "write"):
            expected = entry["write"] if action == "write" else entry["read"]
            done = access(entry["path"], action)
            rows.append(row("agent_files", f"{action} {entry['path']}", done == expected,
                            f"{'allowed' if done else 'denied'} (model: {'allowed' if expected else 'denied'})"))
    return rows


def check_processes(_spec: dict[str, Any]) -> list[Row]:
    foreign = []
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as handle:
                uid = next(line.split()[1] for line in handle if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if int(uid) != os.getuid():
            foreign.append(f"{pid}(uid {uid})")
    return [row("processes", "/proc", not foreign, ", ".join(foreign) or "only this agent's processes")]


def connect(target: str) -> tuple[bool, str]:
    """(reachable, what happened) for a TCP connect to host:port; refused also means reachable."""
    host, _colon, port = target.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=TIMEOUT):
            return True, "connected"
    except ConnectionRefusedError:
        return True, "refused (the address answers)"
    except socket.gaierror as error:
        return False, f"no such name ({error.args[-1]})"
    except OSError as error:
        return False, errno.errorcode.get(error.errno or 0, "timeout") if error.errno else "timeout"


def check_network(spec: dict[str, Any]) -> list[Row]:
    rows = []
    for family, targets in spec["unreachable"].items():
        for target in targets:
            reachable, seen = connect(target)
            rows.append(row(family, target, not reachable, seen))
    for target in spec["reachable"]:
        reachable, seen = connect(target)
        rows.append(row("needed_services", target, reachable, seen))
    for name in spec["outside_names"]:
        try:
            found = socket.getaddrinfo(name, 443, proto=socket.IPPROTO_TCP)
            rows.append(row("external_dns", name, False, f"resolved to {found[0][4][0]}"))
        except socket.gaierror as error:
            rows.append(row("external_dns", name, True, f"no answer ({error.args[-1]})"))
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        rows.append(row("raw_sockets", "AF_INET/SOCK_RAW", False, "opened"))
    except OSError as error:
        rows.append(row("raw_sockets", "AF_INET/SOCK_RAW", True, errno.errorcode.get(error.errno or 0, str(error))))
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
        rows.append(row("raw_sockets", "AF_PACKET", False, "opened"))
    except OSError as error:
        rows.append(row("raw_sockets", "AF_PACKET", True, errno.errorcode.get(error.errno or 0, str(error))))
    return rows


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (a mounted docker.sock, as in the negative controls)."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT * 3)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT * 3)
        self.sock.connect(self.path)


def http_status(target: str, method: str, path: str, headers: dict[str, str] | None = None,
                body: bytes | None = None) -> tuple[int, str]:
    if target.startswith("/"):
        connection: http.client.HTTPConnection = UnixHTTPConnection(target)
    else:
        host, _colon, port = target.rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT * 3)
    try:
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        if method == "CONNECT" and response.status == 200:
            return 200, ""  # a tunnel is open: there is no body to read
        return response.status, response.read(400).decode("utf-8", "replace")
    finally:
        connection.close()


# Writes that would own the host. The image and container do not exist, so even an API that
# lets them through changes nothing: it answers 404 instead of the proxy's 403.
DOCKER_WRITES = (("POST", "/containers/create", b'{"Image": "agentfleet-probe/none:none"}'),
                 ("POST", "/containers/agentfleet-probe-none/exec", b'{"Cmd": ["true"]}'),
                 ("GET", "/containers/agentfleet-probe-none/archive?path=/", None),
                 ("GET", "/containers/agentfleet-probe-none/export", None))


def check_docker_api(spec: dict[str, Any]) -> list[Row]:
    rows = []
    for target in spec["docker_api"]:
        for method, path, body in DOCKER_WRITES:
            label = f"{method} {path.split('?', maxsplit=1)[0]} via {target}"
            try:
                status, _body = http_status(target, method, path, body=body)
                rows.append(row("docker_api", label, status == 403, f"HTTP {status}"))
            except OSError as error:
                rows.append(row("docker_api", label, True, f"unreachable ({error})"))
    return rows


def check_egress_proxy(spec: dict[str, Any]) -> list[Row]:
    proxy = spec.get("proxy")
    if not proxy:
        return []
    rows = []
    for destination, expected in spec["proxy_cases"]:
        try:
            status, body = http_status(proxy, "CONNECT", destination, {"Host": destination})
        except OSError as error:
            status, body = 0, str(error)
        rule = re.search(r"agentfleet egress: denied by rule ([a-z0-9-]+)", body)
        seen = f"HTTP {status}" + (f" (rule {rule.group(1)})" if rule else "")
        ok = status == 200 if expected == "allowed" else (status == 403 and rule is not None and rule.group(1) == expected)
        rows.append(row("egress_proxy", f"CONNECT {destination}", ok, seen))
    return rows


def check_gateway(spec: dict[str, Any]) -> list[Row]:
    """The gateway forwards to its one upstream whatever host the request names."""
    gateway = spec.get("gateway")
    if not gateway:
        return []
    rows = []
    for outside in spec["outside_http"]:
        for path, headers in ((f"http://{outside}/", {"Host": outside}), ("/", {"Host": outside})):
            try:
                status, body = http_status(gateway, "GET", path, headers)
                rows.append(row("gateway_other_host", f"GET {path} Host: {outside}", "agentfleet-outside" not in body,
                                f"HTTP {status}"))
            except OSError as error:
                rows.append(row("gateway_other_host", f"GET {path}", True, f"failed ({error})"))
    return rows


def check_gateway_policy(spec: dict[str, Any]) -> list[Row]:
    """Requests the agent's gateway policy refuses: each must get the gateway's own refusal, naming
    its rule. Only refusals are sent: an allowed request would reach the real model API."""
    rows = []
    for method, path, body, rule in spec.get("gateway_refusals", []):
        label = f"{method} {path}" + (f" ({rule})" if rule != "endpoints" else "")
        try:
            status, text = http_status(spec["gateway"], method, path, body=body.encode() if body else None)
            # The agent's own rate limit comes first: wait for its bucket, as the agent would.
            for _attempt in range(4):
                if status != 429 or "denied by rule rate" not in text:
                    break
                time.sleep(60 / spec["gateway_rate"] + 0.2)
                status, text = http_status(spec["gateway"], method, path, body=body.encode() if body else None)
        except OSError as error:
            rows.append(row("gateway_policy", label, False, f"failed ({error})"))
            continue
        named = re.search(r"agentfleet gateway: denied by rule ([a-z-]+)", text)
        seen = f"HTTP {status}" + (f" (rule {named.group(1)})" if named else "")
        rows.append(row("gateway_policy", label, status in (403, 413) and named is not None and named.group(1) == rule, seen))
    return rows


def redis_command(stream: Any, *words: bytes) -> str:
    stream.write(b"".join([b"*%d\r\n" % len(words)] + [b"$%d\r\n%s\r\n" % (len(w), w) for w in words]))
    stream.flush()
    return str(stream.readline(400).decode("utf-8", "replace").strip())


def check_redis_commands(spec: dict[str, Any]) -> list[Row]:
    """An agent with a redis login: instance-wide commands must be refused (NOPERM)."""
    redis = spec.get("redis")
    if not redis:
        return []
    try:
        connection = socket.create_connection((redis["host"], redis["port"]), timeout=TIMEOUT * 3)
        stream = connection.makefile("rwb")
        with open("/run/secrets/redis_password", "rb") as handle:
            login = redis_command(stream, b"AUTH", redis["user"].encode(), handle.read().strip())
    except OSError as error:
        return [row("redis_commands", "login", False, f"failed ({error})")]
    rows = [row("redis_commands", "login", login == "+OK", login[:80])]
    for words in redis["refused"]:
        answer = redis_command(stream, *(word.encode() for word in words))
        rows.append(row("redis_commands", " ".join(words), answer.startswith("-NOPERM"), answer[:80]))
    connection.close()
    return rows


def check_ollama_filter(spec: dict[str, Any]) -> list[Row]:
    """An agent with the Ollama socket: the endpoints that change shared models get the filter's 403."""
    ollama = spec.get("ollama") or {}
    if not ollama.get("reachable"):
        return []
    rows = []
    for method, path in ollama["refused"]:
        try:
            status, text = http_status(ollama["socket"], method, path, body=b"{}")
            rows.append(row("ollama_filter", f"{method} {path}", status == 403 and "denied by rule endpoints" in text,
                            f"HTTP {status}"))
        except OSError as error:
            rows.append(row("ollama_filter", f"{method} {path}", False, f"failed ({error})"))
    return rows


def check_key_hunt(spec: dict[str, Any]) -> list[Row]:
    """Look for a model API key anywhere this agent can read: environments, files, the gateway's files."""
    found = []
    for pid in (name for name in os.listdir("/proc") if name.isdigit()):
        try:
            if int(pid) == os.getpid():  # sealed (not dumpable): its own /proc entry is root's now
                environ = b"\0".join(key + b"=" + value for key, value in os.environb.items())
            else:
                with open(f"/proc/{pid}/environ", "rb") as handle:
                    environ = handle.read()
        except OSError:
            continue
        if any(not m.startswith(PLACEHOLDER) for m in KEY.findall(environ)):
            found.append(f"/proc/{pid}/environ")
    for top in [spec["inside_root"], "/home", "/tmp", "/etc", "/run", "/opt"]:
        for base, _dirs, files in os.walk(top):
            for name in files:
                path = os.path.join(base, name)
                data = read_regular(path, 1_000_000)
                if any(not m.startswith(PLACEHOLDER) for m in KEY.findall(data)):
                    found.append(path)
    return [row("api_key_hunt", "environments and readable files", not found, ", ".join(found[:5]) or "no key")]


def read_regular(path: str, limit: int) -> bytes:
    """Up to limit bytes of a regular file; b"" for anything else. The agent under audit made these
    files: a FIFO must not hang the probe, a link must not send it elsewhere."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        return b""
    try:
        return os.read(fd, limit) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)


def check_ollama(spec: dict[str, Any]) -> list[Row]:
    """The host's Ollama: through its socket for agents that opted in, by no path for the rest."""
    ollama = spec.get("ollama")
    if not ollama:
        return []
    try:
        status, body = http_status(ollama["socket"], "GET", "/api/version")
        seen = f"HTTP {status} {body[:60]}"
        reached = status == 200
    except OSError as error:
        reached, seen = False, errno.errorcode.get(error.errno or 0, str(error))
    expected = ollama["reachable"]
    label = f"{ollama['socket']} ({'opted in' if expected else 'not opted in'})"
    return [row("ollama", label, reached == expected, seen)]


CHECKS: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "privileges": check_privileges, "setuid": check_setuid, "filesystem": check_filesystem,
    "host_filesystem": check_host_filesystem, "paths": check_paths, "processes": check_processes,
    "network": check_network, "docker_api": check_docker_api, "egress_proxy": check_egress_proxy,
    "gateway": check_gateway, "key_hunt": check_key_hunt, "ollama": check_ollama,
    "gateway_policy": check_gateway_policy, "redis_commands": check_redis_commands, "ollama_filter": check_ollama_filter,
}


def take_nonce() -> str:
    """The controller's nonce, which only this probe echoes; out of the environment, so no child
    inherits it (the process is not dumpable since its first statement, see the top)."""
    return os.environ.pop("AGENTFLEET_PROBE_NONCE", "")


def main(argv: list[str]) -> int:
    nonce = take_nonce()
    spec = json.loads(argv[0])
    rows = []
    for name in spec.get("checks") or list(CHECKS):
        try:
            rows += CHECKS[name](spec)
        except Exception as error:  # noqa: BLE001 (a probe that breaks must say so, not hide a check)
            rows.append(row(name, "probe", False, f"the probe failed: {error!r}"))
    json.dump({"agent": spec["agent"], "nonce": nonce, "rows": rows}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
