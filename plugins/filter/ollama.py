"""Ollama's inputs: the bind address above all (loopback unless asked)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

SHA256 = re.compile(r"^[0-9a-f]{64}$")
DEB_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
ENDPOINT = re.compile(r"^/api/[a-z]+$")
# Only this role changes the models every agent shares, and nothing an agent names makes the host
# contact an address of its choosing.
ADMIN_ENDPOINTS = ("/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/blobs")
MODEL = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]+)?$")


def ollama_arch(machine: str) -> str:
    return DEB_ARCH.get(machine, machine)


def ollama_bind(host: str) -> tuple[str, int]:
    """(address, port) of ollama_host; raises ValueError when it is not address:port."""
    address, _colon, port = host.rpartition(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(host)
    ipaddress.ip_address(address.strip("[]"))
    return address.strip("[]"), int(port)


def ollama_is_loopback(host: str) -> bool:
    return ipaddress.ip_address(ollama_bind(host)[0]).is_loopback


def ollama_model_tag(model: str) -> str:
    """The name Ollama lists a model under: llama3.2 is llama3.2:latest."""
    return model if ":" in model.rpartition("/")[2] else f"{model}:latest"


def ollama_pull_summary(results: list[dict[str, Any]], tags: dict[str, Any]) -> list[str]:
    """One line per pull: the model, its size on disk as Ollama lists it, and how long it took."""
    sizes = {str(model.get("name")): model.get("size") for model in tags.get("models", []) if isinstance(model, dict)}
    lines = []
    for result in results:
        name = ollama_model_tag(str(result["item"]))
        size = sizes.get(name)
        shown = f"{size / 1e9:.2f} GB" if isinstance(size, int) and size >= 1e8 else (
            f"{size / 1e6:.1f} MB" if isinstance(size, int) else "not listed after the pull")
        lines.append(f"{name}: {shown}, pulled in {str(result.get('delta', '?')).split('.', maxsplit=1)[0]}")
    return lines


def ollama_input_errors(settings: dict[str, Any], machine: str) -> list[str]:
    errors = []
    arch = ollama_arch(machine)
    try:
        if not ollama_is_loopback(settings["host"]) and not settings["allow_wide_bind"]:
            errors.append(f"ollama_host: {settings['host']} is not a loopback address; set ollama_allow_wide_bind: true "
                          "to expose Ollama beyond this host (it has no authentication)")
    except ValueError:
        errors.append(f"ollama_host: {settings['host']!r} is not address:port such as 127.0.0.1:11434")
    if not SHA256.match(str(settings["archive_sha256"].get(arch, ""))):
        errors.append(f"ollama_archive_sha256.{arch}: required (64 hex digits for ollama_version {settings['version']})")
    errors += [f"ollama_models[{i}]: {model!r} is not a model name such as llama3.2:1b"
               for i, model in enumerate(settings["models"]) if not MODEL.match(str(model))]
    errors += _endpoint_errors(settings.get("agent_endpoints", {"get": [], "post": []}))
    connections = settings.get("filter_max_connections", 64)
    if not isinstance(connections, int) or isinstance(connections, bool) or not 1 <= connections <= 10000:
        errors.append(f"ollama_filter_max_connections: {connections!r} must be 1 to 10000")
    if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", str(settings["user"])) or settings["user"] == "root":
        errors.append(f"ollama_user: {settings['user']!r} must be a system account name other than root")
    return errors


def _endpoint_errors(endpoints: Any) -> list[str]:
    if not isinstance(endpoints, dict) or set(endpoints) != {"get", "post"}:
        return ["ollama_agent_endpoints: must be a mapping with exactly get and post lists"]
    errors = []
    for method, paths in endpoints.items():
        if not isinstance(paths, list) or not paths:
            errors.append(f"ollama_agent_endpoints.{method}: must be a non-empty list of paths")
            continue
        for i, path in enumerate(paths):
            field = f"ollama_agent_endpoints.{method}[{i}]"
            if not isinstance(path, str) or not ENDPOINT.match(path):
                errors.append(f"{field}: {path!r} is not an Ollama API path such as /api/chat")
            elif path in ADMIN_ENDPOINTS:
                errors.append(f"{field}: {path} changes the shared models or reaches a registry; only this role pulls")
    return errors


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"ollama_input_errors": ollama_input_errors, "ollama_is_loopback": ollama_is_loopback,
                "ollama_arch": ollama_arch, "ollama_model_tag": ollama_model_tag,
                "ollama_pull_summary": ollama_pull_summary}
