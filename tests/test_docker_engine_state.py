"""The docker_engine_state module's readers: dpkg's list, daemon.json, paths and the API ping."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest
from docker_engine_state import api_answers, hard_limits, installed_packages, path_state, read_text


def test_only_installed_and_configured_packages_count() -> None:
    listing = "ii docker.io\nrc docker-ce\niU docker-cli\nii  python3-docker\n"
    assert installed_packages(listing) == ["docker.io", "python3-docker"]


def test_a_missing_daemon_json_is_empty_and_a_directory_is_an_error(tmp_path: Path) -> None:
    assert read_text(str(tmp_path / "daemon.json")) == ""
    (tmp_path / "daemon.json").mkdir()
    with pytest.raises(OSError):
        read_text(str(tmp_path / "daemon.json"))


def test_paths_report_type_owner_and_mode(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d").chmod(0o750)
    state = path_state(str(tmp_path / "d"))
    assert state["exists"] and state["type"] == "directory" and state["mode"] == "0750"
    assert path_state(str(tmp_path / "missing")) == {"exists": False}


def serve_once(path: str, reply: bytes) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        with connection, server:
            connection.recv(1024)
            connection.sendall(reply)

    thread = threading.Thread(target=answer)
    thread.start()
    return thread


@pytest.mark.parametrize(("reply", "answers"), [(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK", True),
                                                (b"HTTP/1.1 500 Internal Server Error\r\n\r\n", False),
                                                (b"", False)])
def test_the_api_answers_only_with_200(tmp_path: Path, reply: bytes, answers: bool) -> None:
    path = str(tmp_path / "docker.sock")
    thread = serve_once(path, reply)
    assert api_answers(path) is answers
    thread.join(5)


def test_no_socket_means_no_api(tmp_path: Path) -> None:
    assert api_answers(str(tmp_path / "docker.sock")) is False


def test_the_inits_hard_limits_are_read_by_ulimit_name() -> None:
    proc_limits = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             95000                95000                processes
Max open files            1024                 20000                files
Max locked memory         8388608              unlimited            bytes
"""
    assert hard_limits(proc_limits) == {"nproc": 95000, "nofile": 20000}
    assert hard_limits(Path("/proc/1/limits").read_text(encoding="utf-8")).get("nofile", 1) > 0
