"""agent_images' build contexts: the file list, tags that follow the context, written by bulk_files."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import jinja2
import yaml
from agent_images import (agent_images_bake, agent_images_change_line, agent_images_context_directories,
                          agent_images_context_files, agent_images_tags,
                          from_references)
from ansible_collections.agentfleet.fleet.plugins.modules.agent_images_refresh import package_changes, parse_packages
from bulk_files_helpers import converge_files
from ansible_collections.agentfleet.fleet.plugins.module_utils.bulk_files import stale_directories

REPOSITORIES = {"agent": "agentfleet/agent", "redis": "agentfleet/redis"}


def context(build: Path, dockerfile: str = "FROM base\n", ca: str = "CA\n") -> list[dict[str, Any]]:
    runtime = {"/src/runtime/agentfleet/worker.py": "print('w')\n", "/src/runtime/schemas/task.json": "{}\n"}
    return agent_images_context_files({"agent": dockerfile, "redis": "FROM base\n"}, str(build), runtime, ca)


def converge(build: Path, files: list[dict[str, Any]]) -> list[str]:
    return converge_files(files, agent_images_context_directories(list(REPOSITORIES), str(build)))


def test_the_runtime_goes_into_the_agent_context_and_the_ca_into_every_one(tmp_path: Path) -> None:
    paths = {spec["path"] for spec in context(tmp_path)}
    relative = {os.path.relpath(path, tmp_path) for path in paths}
    assert relative == {"agent/Dockerfile", "redis/Dockerfile", "agent/runtime/agentfleet/worker.py",
                        "agent/runtime/schemas/task.json", "agent/build-ca.pem", "redis/build-ca.pem"}
    assert not any("build-ca" in spec["path"] for spec in context(tmp_path, ca=""))


def test_a_tag_changes_exactly_when_its_context_does(tmp_path: Path) -> None:
    before = agent_images_tags(context(tmp_path), str(tmp_path), REPOSITORIES)
    changed_agent = agent_images_tags(context(tmp_path, dockerfile="FROM other\n"), str(tmp_path), REPOSITORIES)
    changed_ca = agent_images_tags(context(tmp_path, ca="CA2\n"), str(tmp_path), REPOSITORIES)
    assert before["agent"].startswith("agentfleet/agent:") and len(before["agent"].split(":")[1]) == 12
    assert before == agent_images_tags(context(tmp_path), str(tmp_path), REPOSITORIES)
    assert changed_agent["agent"] != before["agent"] and changed_agent["redis"] == before["redis"]
    assert changed_ca["agent"] != before["agent"] and changed_ca["redis"] != before["redis"]


def test_written_once_then_left_alone_and_fixed_when_it_drifts(tmp_path: Path) -> None:
    files = context(tmp_path)
    assert len(converge(tmp_path, files)) == 6
    assert converge(tmp_path, files) == []
    dockerfile = tmp_path / "agent" / "Dockerfile"
    assert stat.S_IMODE(dockerfile.stat().st_mode) == 0o640
    dockerfile.chmod(0o666)
    (tmp_path / "redis" / "build-ca.pem").write_text("tampered\n")
    assert sorted(converge(tmp_path, files)) == [str(dockerfile), str(tmp_path / "redis" / "build-ca.pem")]
    assert (tmp_path / "redis" / "build-ca.pem").read_text() == "CA\n"


def test_a_symlink_in_a_context_is_replaced_not_followed(tmp_path: Path) -> None:
    files = context(tmp_path)
    converge(tmp_path, files)
    outside = tmp_path / "outside"
    outside.write_text("keep\n")
    dockerfile = tmp_path / "agent" / "Dockerfile"
    dockerfile.unlink()
    dockerfile.symlink_to(outside)
    assert converge(tmp_path, files) == [str(dockerfile)]
    assert outside.read_text() == "keep\n" and not dockerfile.is_symlink()


def test_directories_are_reported_until_they_exist_with_their_mode(tmp_path: Path) -> None:
    directories = agent_images_context_directories(list(REPOSITORIES), str(tmp_path))
    assert len(stale_directories(directories)) == len(directories)
    converge(tmp_path, [])
    assert stale_directories(directories) == []
    os.chmod(directories[0]["path"], 0o755)
    assert stale_directories(directories) == [directories[0]["path"]]


def test_the_bake_file_builds_every_image_from_its_own_context_with_its_tag() -> None:
    bake = agent_images_bake({"redis": "agentfleet/redis:abc", "agent": "agentfleet/agent:def"})
    assert bake == {"group": {"default": {"targets": ["agent", "redis"]}},
                    "target": {"agent": {"context": "./agent", "tags": ["agentfleet/agent:def"]},
                               "redis": {"context": "./redis", "tags": ["agentfleet/redis:abc"]}}}


def render_dockerfiles(version: str) -> dict[str, str]:
    """The role's Dockerfile template for every image, as the role renders it (plain Jinja2 here)."""
    root = Path(__file__).resolve().parents[1] / "roles" / "agent_images"
    packages = yaml.safe_load((root / "vars" / "main.yml").read_text())["_agent_images_packages"]
    template = jinja2.Environment(loader=jinja2.FileSystemLoader(root / "templates")).get_template("Dockerfile.j2")
    settings = {"ansible_managed": "managed", "agent_images_base": "agentfleet/base:trixie", "agent_images_extra_ca_bundle": "",
                "agent_images_npm_registry": "https://registry.npmjs.org/", "agent_images_claude_code_version": version,
                "_agent_images_packages": packages, "_agent_images_egress_pages": {}}
    return {name: template.render(__agent_images_name=name, **settings) for name in packages}


def test_a_claude_code_cli_bump_rebuilds_the_agent_image_only(tmp_path: Path) -> None:
    repositories = {name: f"agentfleet/{name}" for name in ("agent", "redis", "gateway", "dockerproxy", "egress")}
    tags = {version: agent_images_tags(agent_images_context_files(render_dockerfiles(version), str(tmp_path), {}, ""),
                                       str(tmp_path), repositories) for version in ("2.1.330", "2.1.331")}
    assert [name for name in repositories if tags["2.1.330"][name] != tags["2.1.331"][name]] == ["agent"]


def test_a_new_base_changes_exactly_the_tags_of_the_images_built_from_it(tmp_path: Path) -> None:
    dockerfiles = render_dockerfiles("2.1.330")
    dockerfiles["egress"] = "FROM --platform=linux/amd64 debian:trixie-slim AS egress\nRUN true\n"
    files = agent_images_context_files(dockerfiles, str(tmp_path), {}, "")
    repositories = {name: f"agentfleet/{name}" for name in dockerfiles}
    tags = {base: agent_images_tags(files, str(tmp_path), repositories,
                                    {"agentfleet/base:trixie": base, "debian:trixie-slim": "sha256:d1"})
            for base in ("sha256:a1", "sha256:b2")}
    assert sorted(name for name in repositories if tags["sha256:a1"][name] != tags["sha256:b2"][name]) == [
        "agent", "dockerproxy", "gateway", "redis"]
    moved = agent_images_tags(files, str(tmp_path), repositories, {"agentfleet/base:trixie": "sha256:a1",
                                                                  "debian:trixie-slim": "sha256:d2"})
    assert [name for name in repositories if moved[name] != tags["sha256:a1"][name]] == ["egress"]
    assert from_references("# FROM x\nfrom base AS one\nFROM --platform=$P other\n") == ["base", "other"]


def test_a_refresh_says_which_packages_changed_or_that_the_image_stays() -> None:
    assert package_changes({"haproxy": "1", "curl": "7", "gone": "1"}, {"haproxy": "2", "curl": "7", "new": "3"}) == [
        "haproxy 1 -> 2", "+new 3", "-gone 1"]
    assert agent_images_change_line({"key": "gateway", "value": []}) == "gateway: no package changed; the image it runs stays"
    line = agent_images_change_line({"key": "agent", "value": [f"p{i} 1 -> 2" for i in range(25)]})
    assert line.startswith("agent: 25 package(s) changed: p0 1 -> 2;") and line.endswith("; and 5 more")


def test_the_packages_compared_are_debians_and_the_global_npm_ones() -> None:
    listing = ("haproxy\t3.0.11-1\ntini\t0.19.0-1\n/usr/local/lib\n"
               "/usr/local/lib/node_modules/@anthropic-ai/claude-code:@anthropic-ai/claude-code@2.1.330:undefined\n"
               "/usr/local/lib/node_modules/@anthropic-ai/claude-code/node_modules/ws:ws@8.18.0\n")
    assert parse_packages(listing) == {"haproxy": "3.0.11-1", "tini": "0.19.0-1",
                                       "npm:@anthropic-ai/claude-code": "2.1.330", "npm:ws": "8.18.0"}
