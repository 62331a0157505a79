#!/usr/bin/python
# Copyright: (c) 2026, agentfleet developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Refresh the built images (rebuild from the archive without the build cache, keep a rebuilt
image only when its packages changed), roll them back, and prune what is no longer kept."""

from __future__ import annotations

DOCUMENTATION = r"""
module: agent_images_refresh
short_description: Rebuild images for package updates, roll them back, prune old ones
description:
  - C(refreshed) rebuilds the named images with C(docker buildx bake --no-cache) from the bake file, so
    every package comes from the archive as it is now. An image whose installed packages (dpkg's list)
    did not change keeps its old image, so nothing is recreated for it; a changed one keeps the old
    image under C(<tag>-before-<time>) for rollback, and the packages that changed are reported.
  - C(rolled_back) puts each named image's newest C(-before-) image back under its tag.
  - Every state then removes, per repository, the images past the I(keep) newest that are neither
    a current tag nor used by a container.
  - The name C(base) in I(tags) is the base image, which the bake does not build and whose repository may hold
    images not ours (C(debian)); of its repository only its own rollback points are pruned.
version_added: 0.2.0
author: agentfleet developers (@agentfleet)
options:
  tags: {description: "Each image's current tag (name: repository:tag).", type: dict, required: true}
  names: {description: The images to refresh or roll back; every one when not given., type: list, elements: str}
  build_dir: {description: Directory holding bake.json and each image's context., type: path, required: true}
  state:
    description: What to do.
    type: str
    choices: [refreshed, rolled_back, pruned]
    default: refreshed
  keep: {description: "Images kept per repository besides the current one (rollback points).", type: int, default: 2}
  previous:
    description:
      - For C(refreshed), images of I(names) already rebuilt or pulled again outside the bake (the base), each with
        the id of the image it replaced; they are compared with that one, not rebuilt.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Rebuild the gateway for a security fix in nginx
  agentfleet.fleet.agent_images_refresh:
    tags: "{{ agent_images_tags }}"
    names: [gateway]
    build_dir: /var/lib/agentfleet/images
  register: refreshed
"""

RETURN = r"""
changes:
  description: Per image, the packages that changed (C(name old -> new), C(+name new), C(-name old)); [] when none.
  returned: success
  type: dict
rolled_back:
  description: The images put back on their previous image.
  returned: success
  type: list
  elements: str
pruned:
  description: The image tags (or ids) removed.
  returned: success
  type: list
  elements: str
"""

import subprocess
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

BEFORE = "-before-"
UNDONE = "-undone-"
# The base image: built or pulled by the role, not by the bake; its repository may hold images not ours.
BASE = "base"


class DockerFailed(Exception):
    pass


def docker(*args: str, timeout: int = 1800) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise DockerFailed(f"docker {' '.join(args[:3])}: {done.stderr.strip()[-600:]}")
    return done.stdout


def image_id(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Id}}", tag).strip()


def packages(tag: str) -> dict[str, str]:
    """The image's installed Debian packages and, where npm is, its global npm packages (the agent
    image's CLI and every dependency), with their versions; read without any network."""
    listing = docker("run", "--rm", "--network", "none", "--entrypoint", "sh", tag, "-c",
                     "dpkg-query -W -f '${Package}\\t${Version}\\n'; "
                     "if command -v npm >/dev/null; then npm ls --global --all --parseable --long 2>/dev/null; fi",
                     timeout=120)
    return parse_packages(listing)


def parse_packages(listing: str) -> dict[str, str]:
    """dpkg-query's name<TAB>version lines and npm ls --parseable --long's path:name@version lines."""
    found = {}
    for line in listing.splitlines():
        if "\t" in line:
            name, version = line.split("\t", 1)
            found[name] = version
        elif line.startswith("/") and ":" in line:  # npm: path:name@version[:...]
            name, _at, version = line.split(":")[1].rpartition("@")
            if name:
                found[f"npm:{name}"] = version
    return found


def package_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    changed = [f"{name} {before[name]} -> {after[name]}" for name in sorted(before.keys() & after.keys())
               if before[name] != after[name]]
    changed += [f"+{name} {after[name]}" for name in sorted(after.keys() - before.keys())]
    return changed + [f"-{name} {before[name]}" for name in sorted(before.keys() - after.keys())]


def rollback_points(tag: str, kind: str = BEFORE) -> list[str]:
    """tag's -before- (or -undone-) tags, newest first (the time in the name sorts)."""
    repository, current = tag.rsplit(":", 1)
    listed = docker("image", "ls", repository, "--format", "{{.Tag}}").split()
    return [f"{repository}:{name}" for name in sorted(listed, reverse=True) if name.startswith(current + kind)]


def remove(name: str) -> bool:
    """docker rmi, except that an image still used (by a container or as another image's parent,
    as a base is) stays: False then."""
    try:
        docker("rmi", name)
    except DockerFailed as error:
        if "conflict" not in str(error):
            raise
        return False
    return True


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime())


def refresh(tags: dict[str, str], names: list[str], build_dir: str, previous: dict[str, str]) -> dict[str, list[str]]:
    """Rebuild the names not in previous without the cache; those in previous were rebuilt or pulled
    already (the base), previous holding the image they replaced. A changed image keeps the one before
    as <tag>-before-<time>; an unchanged one gives its tag back to the one before."""
    now, rebuilt = stamp(), [name for name in names if name not in previous]
    old = {name: previous.get(name) or image_id(tags[name]) for name in names}
    before = {name: packages(old[name]) for name in names}
    if rebuilt:
        try:
            with open(f"{build_dir}/refresh.log", "w", encoding="utf-8") as log:
                done = subprocess.run(["docker", "buildx", "bake", "--file", "bake.json", "--no-cache", "--progress", "plain",
                                       *rebuilt], cwd=build_dir, stdout=log, stderr=subprocess.STDOUT, timeout=3600, check=False)
            if done.returncode != 0:
                raise DockerFailed(f"the rebuild failed: see {build_dir}/refresh.log")
        except (DockerFailed, OSError, subprocess.TimeoutExpired):
            for name in rebuilt:  # the images as they were
                docker("tag", old[name], tags[name])
            raise
    changes = {}
    for name in names:
        fresh = image_id(tags[name])
        changes[name] = [] if fresh == old[name] else package_changes(before[name], packages(tags[name]))
        if changes[name]:
            docker("tag", old[name], f"{tags[name]}{BEFORE}{now}")
        elif fresh != old[name]:  # the same packages: keep the image the containers run
            docker("tag", old[name], tags[name])
            remove(fresh)
    return changes


def roll_back(tags: dict[str, str], names: list[str]) -> list[str]:
    """Each image back on its newest rollback point; the image it leaves goes unless a container
    or another image (on a base) uses it: a base left so is tagged <tag>-undone-<time> for prune."""
    done, used = [], in_use()
    for name in names:
        points = rollback_points(tags[name])
        if points:
            leaving = image_id(tags[name])
            docker("tag", points[0], tags[name])
            docker("rmi", points[0])
            if leaving != image_id(tags[name]) and leaving not in used and not remove(leaving):
                docker("tag", leaving, f"{tags[name]}{UNDONE}{stamp()}")
            done.append(name)
    return done


def in_use() -> set[str]:
    """What every container (running or not) was created from: the names and the image ids."""
    used = set(docker("ps", "--all", "--format", "{{.Image}}").split())
    ids = docker("ps", "--all", "--quiet", "--no-trunc").split()
    return used | set(docker("inspect", "--format", "{{.Image}}", *ids).split()) if ids else used


def prune(tags: dict[str, str], keep: int) -> list[str]:
    """Per repository, images past the keep newest that no tag of ours names now and no container
    uses. The base's repository may hold images not ours: of it only the base's own rollback points
    past keep go, and what a rollback undid, once no image is built on them."""
    used, current, removed = in_use(), {image_id(tag) for tag in tags.values()}, []
    for repository in sorted({tag.rpartition(":")[0] for name, tag in tags.items() if name != BASE}):
        listed = [line.split("\t") for line in docker("image", "ls", repository, "--no-trunc", "--format",
                                                      "{{.Tag}}\t{{.ID}}\t{{.CreatedAt}}").splitlines()]
        others = sorted((entry for entry in listed if len(entry) == 3 and entry[1] not in current),
                        key=lambda entry: entry[2], reverse=True)
        for tag, ident, _created in others[keep:]:
            name = ident if tag == "<none>" else f"{repository}:{tag}"
            if name not in used and ident not in used:
                docker("rmi", name)
                removed.append(name)
    if BASE in tags:
        stale = rollback_points(tags[BASE])[keep:] + rollback_points(tags[BASE], UNDONE)
        removed += [name for name in stale if image_id(name) not in current | used and remove(name)]
    return removed


def main() -> None:
    module = AnsibleModule(argument_spec={
        "tags": {"type": "dict", "required": True}, "names": {"type": "list", "elements": "str"},
        "build_dir": {"type": "path", "required": True}, "keep": {"type": "int", "default": 2},
        "previous": {"type": "dict", "default": {}},
        "state": {"type": "str", "choices": ["refreshed", "rolled_back", "pruned"], "default": "refreshed"}},
        supports_check_mode=True)
    tags: dict[str, str] = module.params["tags"]
    names = sorted(tags) if module.params["names"] is None else module.params["names"]
    previous: dict[str, str] = module.params["previous"]
    unknown = sorted(set(names) - set(tags) | set(previous) - set(names))
    if unknown:
        module.fail_json(msg=f"names: {', '.join(unknown)} are not images of this call ({', '.join(sorted(tags))})"
                         " or previous names an image not in names")
    state = module.params["state"]
    if module.check_mode:
        module.exit_json(changed=state != "pruned", changes={}, rolled_back=[], pruned=[])
    result: dict[str, Any] = {"changes": {}, "rolled_back": [], "pruned": []}
    try:
        if state == "refreshed":
            result["changes"] = refresh(tags, names, module.params["build_dir"], previous)
        elif state == "rolled_back":
            result["rolled_back"] = roll_back(tags, names)
        result["pruned"] = prune(tags, module.params["keep"])
    except (DockerFailed, OSError, subprocess.TimeoutExpired) as error:
        module.fail_json(msg=str(error), **result)
    changed = any(result["changes"].values()) or bool(result["rolled_back"] or result["pruned"])
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
