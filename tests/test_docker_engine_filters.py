"""Unit tests of the docker_engine filters: pool checks and daemon.json's preflight parse."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from docker_engine import docker_engine_parse_daemon_json, docker_engine_pool_errors, docker_engine_ulimits


@pytest.mark.parametrize("pool", [
    {"base": "10.0.0.0/8", "size": 24},
    {"base": "172.20.0.0/14", "size": 24},
    {"base": "192.168.0.0/16", "size": 20},
])
def test_private_pools_pass(pool: dict[str, object]) -> None:
    assert docker_engine_pool_errors([pool]) == []


@pytest.mark.parametrize("pool,expected", [
    ({"base": "11.0.0.0/16", "size": 24}, "[0].base: 11.0.0.0/16 is not a private IPv4 range"),
    ({"base": "172.15.0.0/16", "size": 24}, "is not a private IPv4 range"),
    ({"base": "fd00::/8", "size": 24}, "is not a private IPv4 range"),
    ({"base": "172.20.0.1/14", "size": 24}, "[0].base: 172.20.0.1/14 has host bits set"),
    ({"base": "nonsense", "size": 24}, "[0].base:"),
    ({"size": 24}, "[0].base:"),
    ({"base": "10.0.0.0/16", "size": 8}, "[0].size: 8 must be an integer from 16 to 30"),
    ({"base": "10.0.0.0/16", "size": 31}, "[0].size: 31"),
    ({"base": "10.0.0.0/16", "size": "24"}, "[0].size: '24'"),
    ({"base": "10.0.0.0/16", "size": True}, "[0].size: True"),
])
def test_bad_pools_are_explained(pool: dict[str, object], expected: str) -> None:
    errors = docker_engine_pool_errors([pool])
    assert len(errors) == 1 and expected in errors[0], errors


def test_parse_empty_or_missing_file_is_empty_config() -> None:
    assert docker_engine_parse_daemon_json("", "/etc/docker/daemon.json") == {}
    assert docker_engine_parse_daemon_json(" \n", "/etc/docker/daemon.json") == {}


def test_parse_reads_an_object() -> None:
    assert docker_engine_parse_daemon_json('{"icc": false}', "x") == {"icc": False}


@pytest.mark.parametrize("text,expected", [
    ("{broken", "x is not valid JSON"),
    ("[1, 2]", "x must hold a JSON object, found list"),
])
def test_parse_refuses_what_it_cannot_merge(text: str, expected: str) -> None:
    with pytest.raises(AnsibleFilterError, match=expected):
        docker_engine_parse_daemon_json(text, "x")


DEFAULT_ULIMITS = {"nofile": {"Name": "nofile", "Soft": 65536, "Hard": 65536}}


def test_the_roles_own_ulimit_is_lowered_to_what_the_host_grants() -> None:
    """A host (or a container) whose init may hold 20000 files: containers get 20000, not a
    limit dockerd could not give them."""
    assert docker_engine_ulimits(DEFAULT_ULIMITS, DEFAULT_ULIMITS, {"nofile": 20000}) == {
        "ulimits": {"nofile": {"Name": "nofile", "Soft": 20000, "Hard": 20000}}, "errors": []}


def test_a_ulimit_within_the_hosts_is_kept_as_it_is() -> None:
    assert docker_engine_ulimits(DEFAULT_ULIMITS, DEFAULT_ULIMITS, {"nofile": 1048576}) == {
        "ulimits": DEFAULT_ULIMITS, "errors": []}
    assert docker_engine_ulimits(DEFAULT_ULIMITS, DEFAULT_ULIMITS, {}) == {"ulimits": DEFAULT_ULIMITS, "errors": []}


def test_a_ulimit_the_user_set_above_the_hosts_is_refused_by_name() -> None:
    mine = {"nofile": {"Name": "nofile", "Soft": 30000, "Hard": 30000}}
    result = docker_engine_ulimits(mine, DEFAULT_ULIMITS, {"nofile": 20000})
    assert result["errors"] == ["docker_engine_default_ulimits.nofile: Hard 30000 is above what this host grants "
                                "(20000, the hard limit of its init); no container could start with it"]


def test_null_ulimits_leave_the_key_alone() -> None:
    assert docker_engine_ulimits(None, DEFAULT_ULIMITS, {"nofile": 20000}) == {"ulimits": None, "errors": []}
