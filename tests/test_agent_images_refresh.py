"""The refresh module's base handling against a small fake engine: a refreshed base kept only when
its packages changed, a base rolled back while images are still built on it, and a prune that takes
from the base's repository nothing but the base's own rollback points."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from ansible_collections.agentfleet.fleet.plugins.modules import agent_images_refresh as module

BASE = "debian:trixie-slim"


@dataclass
class Engine:
    tags: dict[str, str] = field(default_factory=dict)  # repository:tag -> image id
    packages: dict[str, str] = field(default_factory=dict)  # image id -> dpkg listing
    parents: dict[str, str] = field(default_factory=dict)  # image id -> the image it is built on
    containers: list[str] = field(default_factory=list)  # image ids containers run
    removed: list[str] = field(default_factory=list)

    def ident(self, name: str) -> str:
        if name in self.tags:
            return self.tags[name]
        if name in self.packages:
            return name
        raise module.DockerFailed(f"No such image: {name}")

    def __call__(self, *args: str, timeout: int = 1800) -> str:
        del timeout
        command = list(args)
        if command[:2] == ["image", "inspect"]:
            return self.ident(command[-1]) + "\n"
        if command[0] == "run":
            return self.packages[self.ident(command[-3])]
        if command[0] == "tag":
            self.tags[command[2]] = self.ident(command[1])
            return ""
        if command[0] == "rmi":
            return self.rmi(command[1])
        if command[:2] == ["image", "ls"]:
            repository = command[2]
            return "".join(f"{name.rpartition(':')[2]}\t{ident}\t2026-11-{ident[-2:]}\n"
                           for name, ident in sorted(self.tags.items()) if name.rpartition(":")[0] == repository)
        if command[0] == "ps":
            return "" if "--quiet" in command else "".join(f"{ident}\n" for ident in self.containers)
        raise AssertionError(f"unexpected docker {command}")

    def rmi(self, name: str) -> str:
        ident = self.ident(name)
        if name in self.tags and list(self.tags.values()).count(ident) > 1:
            del self.tags[name]  # one of several tags: only the tag goes
            return ""
        if ident in self.parents.values() or ident in self.containers:
            raise module.DockerFailed("docker rmi: Error response from daemon: conflict: unable to delete (image has dependent child images)")
        self.tags = {tag: value for tag, value in self.tags.items() if value != ident}
        self.parents.pop(ident, None)
        self.removed.append(name)
        return ""


@pytest.fixture(name="engine")
def fixture_engine(monkeypatch: pytest.MonkeyPatch) -> Engine:
    engine = Engine(tags={BASE: "sha256:b1", "debian:bookworm": "sha256:u9", "agentfleet/agent:aaa": "sha256:a1"},
                    packages={"sha256:b1": "libc6\t2.41-1\n", "sha256:u9": "libc6\t2.36-9\n", "sha256:a1": "libc6\t2.41-1\n"},
                    parents={"sha256:a1": "sha256:b1"}, containers=["sha256:a1"])
    monkeypatch.setattr(module, "docker", engine)
    return engine


def test_a_refreshed_base_with_the_same_packages_gives_way_to_the_one_before(engine: Engine) -> None:
    engine.tags[BASE], engine.packages["sha256:b2"] = "sha256:b2", "libc6\t2.41-1\n"
    changes = module.refresh({"base": BASE}, ["base"], "/unused", {"base": "sha256:b1"})
    assert changes == {"base": []} and engine.tags[BASE] == "sha256:b1" and engine.removed == ["sha256:b2"]
    assert not module.rollback_points(BASE)


def test_a_changed_base_is_kept_with_the_one_before_as_its_rollback_point(engine: Engine) -> None:
    engine.tags[BASE], engine.packages["sha256:b2"] = "sha256:b2", "libc6\t2.41-2\n"
    changes = module.refresh({"base": BASE}, ["base"], "/unused", {"base": "sha256:b1"})
    assert changes == {"base": ["libc6 2.41-1 -> 2.41-2"]} and engine.tags[BASE] == "sha256:b2"
    [point] = module.rollback_points(BASE)
    assert engine.tags[point] == "sha256:b1"


def test_rolling_back_a_base_images_are_built_on_keeps_it_for_the_prune(engine: Engine) -> None:
    engine.tags[BASE], engine.packages["sha256:b2"] = "sha256:b2", "libc6\t2.41-2\n"
    module.refresh({"base": BASE}, ["base"], "/unused", {"base": "sha256:b1"})
    engine.tags["agentfleet/agent:bbb"], engine.packages["sha256:a2"] = "sha256:a2", "libc6\t2.41-2\n"
    engine.parents["sha256:a2"] = "sha256:b2"
    assert module.roll_back({"base": BASE}, ["base"]) == ["base"]  # a parent link, as the classic builder records
    assert engine.tags[BASE] == "sha256:b1" and not module.rollback_points(BASE)
    [undone] = module.rollback_points(BASE, module.UNDONE)
    assert engine.tags[undone] == "sha256:b2"
    tags = {"base": BASE, "agent": "agentfleet/agent:aaa"}
    assert module.prune(tags, 2) == []  # the agent image built on it is still kept
    assert module.prune(tags, 0) == ["agentfleet/agent:bbb", undone]
    assert "debian:bookworm" in engine.tags and engine.tags[BASE] == "sha256:b1"


def test_the_prune_takes_only_the_bases_own_points_past_keep(engine: Engine) -> None:
    for day, ident in (("01", "sha256:p1"), ("02", "sha256:p2"), ("03", "sha256:p3")):
        engine.tags[f"{BASE}-before-202611{day}T000000"], engine.packages[ident] = ident, ""
    engine.tags["debian:sid"], engine.packages["sha256:s1"] = "sha256:s1", ""
    assert module.prune({"base": BASE}, 2) == [f"{BASE}-before-20261101T000000"]
    assert {"debian:sid", "debian:bookworm", BASE} <= set(engine.tags)
