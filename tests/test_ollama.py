"""The ollama role's input checks: loopback unless asked, checksums, model names."""

from __future__ import annotations

from typing import Any

import pytest
from ollama import ollama_input_errors, ollama_is_loopback, ollama_model_tag, ollama_pull_summary

GOOD: dict[str, Any] = {"host": "127.0.0.1:11434", "allow_wide_bind": False, "archive_sha256": {"amd64": "b" * 64},
                        "version": "0.5.7", "models": ["llama3.2:1b"], "user": "ollama",
                        "agent_endpoints": {"get": ["/api/tags", "/api/version"], "post": ["/api/chat"]},
                        "filter_max_connections": 64}


def test_good_input_passes() -> None:
    assert ollama_input_errors(GOOD, "x86_64") == []
    assert ollama_is_loopback("[::1]:11434") and not ollama_is_loopback("0.0.0.0:11434")


@pytest.mark.parametrize(("change", "message"), [
    ({"host": "0.0.0.0:11434"}, "ollama_host: 0.0.0.0:11434 is not a loopback address; set ollama_allow_wide_bind"),
    ({"host": "localhost"}, "ollama_host: 'localhost' is not address:port"),
    ({"agent_endpoints": {"get": ["/api/tags"], "post": ["/api/pull"]}},
     "ollama_agent_endpoints.post[0]: /api/pull changes the shared models or reaches a registry; only this role pulls"),
    ({"agent_endpoints": {"get": ["/api/../pull"], "post": ["/api/chat"]}}, "ollama_agent_endpoints.get[0]: '/api/../pull'"),
    ({"agent_endpoints": {"get": ["/api/tags"]}}, "ollama_agent_endpoints: must be a mapping with exactly get and post"),
    ({"filter_max_connections": 0}, "ollama_filter_max_connections: 0 must be 1 to 10000"),
    ({"archive_sha256": {}}, "ollama_archive_sha256.amd64: required"),
    ({"models": ["llama3; rm -rf /"]}, "ollama_models[0]: 'llama3; rm -rf /' is not a model name"),
    ({"user": "root"}, "ollama_user: 'root' must be a system account name other than root"),
])
def test_bad_input_names_the_variable(change: dict[str, Any], message: str) -> None:
    errors = ollama_input_errors({**GOOD, **change}, "x86_64")
    assert any(message in error for error in errors), errors


def test_a_wide_bind_passes_only_when_asked() -> None:
    assert ollama_input_errors({**GOOD, "host": "0.0.0.0:11434", "allow_wide_bind": True}, "x86_64") == []


def test_models_are_compared_by_their_listed_name() -> None:
    assert ollama_model_tag("llama3.2") == "llama3.2:latest"
    assert ollama_model_tag("llama3.2:1b") == "llama3.2:1b"
    assert ollama_model_tag("registry.test:5000/team/model") == "registry.test:5000/team/model:latest"


def test_the_pull_summary_names_each_model_with_its_size_and_time() -> None:
    results = [{"item": "llama3.2:1b", "delta": "0:01:02.123456"}, {"item": "tiny", "delta": "0:00:01.5"},
               {"item": "gone", "delta": "0:00:00.1"}]
    tags = {"models": [{"name": "llama3.2:1b", "size": 1_321_098_329}, {"name": "tiny:latest", "size": 4_200_000},
                       "not a model"]}
    assert ollama_pull_summary(results, tags) == ["llama3.2:1b: 1.32 GB, pulled in 0:01:02",
                                                  "tiny:latest: 4.2 MB, pulled in 0:00:01",
                                                  "gone:latest: not listed after the pull, pulled in 0:00:00"]
