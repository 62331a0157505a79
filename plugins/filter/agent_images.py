"""Filters of the agent_images role: every image's build context as one list of root's files (for
bulk_files), and each image's tag as a hash of exactly those files and of the image it is built on,
so a tag changes if and only if its context or an image it is built FROM does."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

File = dict[str, Any]


def agent_images_context_files(dockerfiles: dict[str, str], build_dir: str, runtime: dict[str, str],
                               ca_bundle: str) -> list[File]:
    """The files of every context: each Dockerfile, the runtime (agent image only: source path ->
    content, kept under runtime/<its directory>/), the build CA bundle in every context when set."""
    files = [{"path": f"{build_dir}/{name}/Dockerfile", "text": text, "mode": "0640"}
             for name, text in sorted(dockerfiles.items())]
    files += [{"path": f"{build_dir}/agent/runtime/{os.path.basename(os.path.dirname(source))}/{os.path.basename(source)}",
               "text": content, "mode": "0644"} for source, content in sorted(runtime.items())]
    if ca_bundle:
        files += [{"path": f"{build_dir}/{name}/build-ca.pem", "text": ca_bundle, "mode": "0644"}
                  for name in sorted(dockerfiles)]
    return [{**spec, "uid": 0, "gid": 0} for spec in files]


def agent_images_context_directories(names: list[str], build_dir: str) -> list[dict[str, Any]]:
    """One directory per image (base holds the base image archive); the runtime's are world-readable
    because the host's agentctl uses them as they are."""
    directories = [{"path": f"{build_dir}/{name}", "mode": "0750"} for name in ["base", *sorted(names)]]
    directories += [{"path": f"{build_dir}/agent/runtime{sub}", "mode": "0755"} for sub in ("", "/agentfleet", "/schemas")]
    return [{**spec, "uid": 0, "gid": 0} for spec in directories]


def agent_images_tags(files: list[File], build_dir: str, repositories: dict[str, str],
                      bases: dict[str, str] | None = None) -> dict[str, str]:
    """repository:<12 hex digits of the sha256 over the image's files (path, mode, content) and the
    id of each image its Dockerfile builds FROM, where bases knows it (reference -> image id)."""
    tags = {}
    for name, repository in repositories.items():
        prefix = f"{build_dir}/{name}/"
        digest = hashlib.sha256()
        mine = sorted((spec for spec in files if spec["path"].startswith(prefix)), key=lambda spec: str(spec["path"]))
        for spec in mine:
            for part in (spec["path"][len(prefix):], spec["mode"], spec["text"]):
                digest.update(part.encode() + b"\0")
        dockerfile = next((spec["text"] for spec in mine if spec["path"] == prefix + "Dockerfile"), "")
        for parent in from_references(dockerfile):
            digest.update(f"FROM {parent}@{(bases or {}).get(parent, '')}".encode() + b"\0")
        tags[name] = f"{repository}:{digest.hexdigest()[:12]}"
    return tags


def from_references(dockerfile: str) -> list[str]:
    """The images a Dockerfile builds FROM (flags such as --platform skipped, stage names dropped)."""
    references = []
    for line in dockerfile.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].upper() == "FROM":
            references += [word for word in words[1:] if not word.startswith("--")][:1]
    return references


def agent_images_bake(tags: dict[str, str]) -> dict[str, Any]:
    """A bake file building every image from its context, relative to the file (buildx allows
    reads below the working directory without an --allow); `docker buildx bake` alone builds all."""
    return {"group": {"default": {"targets": sorted(tags)}},
            "target": {name: {"context": f"./{name}", "tags": [tag]} for name, tag in sorted(tags.items())}}


def agent_images_change_line(item: dict[str, Any]) -> str:
    """One image's refresh, for people: its changed packages, or that it stays as it was."""
    changes = item["value"]
    if not changes:
        return f"{item['key']}: no package changed; the image it runs stays"
    return f"{item['key']}: {len(changes)} package(s) changed: " + "; ".join(changes[:20]) + (
        f"; and {len(changes) - 20} more" if len(changes) > 20 else "")


class FilterModule:
    def filters(self) -> dict[str, Callable[..., Any]]:
        return {"agent_images_context_files": agent_images_context_files, "agent_images_bake": agent_images_bake,
                "agent_images_context_directories": agent_images_context_directories,
                "agent_images_tags": agent_images_tags, "agent_images_change_line": agent_images_change_line}
