"""The local model's defaults, without starting it: threads from the free cores, JSON
mode rewritten into a grammar, and model names."""

from __future__ import annotations

import os

import pytest

from steer_llm_sdk.errors import ConfigurationError
from steer_llm_sdk.local import _server
from steer_llm_sdk.local._json import (
    JSON_OBJECT_GRAMMAR,
    JSON_SYSTEM,
    MAX_STRING,
    local_json_params,
)
from steer_llm_sdk.local._model import describe


@pytest.mark.parametrize(
    ("cores", "load", "threads"),
    [(2, 0.1, 2), (2, 1.2, 1), (2, 3.9, 1), (8, 2.0, 6), (8, 0.0, 8), (1, 0.0, 1), (4, 1.6, 2)],
)
def test_threads_are_the_free_cores(
    monkeypatch: pytest.MonkeyPatch, cores: int, load: float, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    assert _server.default_threads() == threads


def test_the_shared_server_does_not_depend_on_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings are the key of the one server per model: with threads left to the
    default they must not change with the load average, or a busy moment between two
    calls starts a second llama.cpp server (seen in a full test run)."""
    monkeypatch.delenv("STEER_LOCAL_THREADS", raising=False)
    keys = set()
    for load in (0.0, 1.2, 3.9):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        keys.add(_server._settings(None, None, None))
    assert len(keys) == 1
    assert keys.pop().threads == 0  # chosen from the free cores when the server starts


def test_threads_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEER_LOCAL_THREADS", "3")
    assert _server._settings(None, None, None).threads == 3
    assert _server._settings(2, None, None).threads == 2
    monkeypatch.setenv("STEER_LOCAL_MAX_TOKENS", "0")
    with pytest.raises(ConfigurationError, match="STEER_LOCAL_MAX_TOKENS"):
        _server._settings(None, None, None)


def test_json_object_becomes_a_grammar_with_a_system_hint() -> None:
    params = {"response_format": {"type": "json_object"}, "max_tokens": 50}
    body: dict = {}
    messages = local_json_params(params, body, [{"role": "user", "content": "A product"}])
    assert params == {"max_tokens": 50}
    assert body == {"grammar": JSON_OBJECT_GRAMMAR, "repeat_penalty": 1.0}
    assert messages[0] == {"role": "system", "content": JSON_SYSTEM}
    assert f"char{{0,{MAX_STRING}}}" in JSON_OBJECT_GRAMMAR
    # A system prompt of the caller's, or a repeat_penalty, is kept as it is.
    own = [{"role": "system", "content": "Mine"}, {"role": "user", "content": "x"}]
    body = {"repeat_penalty": 1.3}
    assert local_json_params({"response_format": {"type": "json_object"}}, body, own) == own
    assert body["repeat_penalty"] == 1.3


def test_json_schema_strings_get_a_length_cap() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "code": {"type": "string", "maxLength": 5},
            "tags": {"type": "array", "items": {"type": ["string", "null"]}},
            "kind": {"type": "string", "enum": ["a", "b"]},
        },
    }
    params = {"response_format": {"type": "json_schema", "json_schema": {"schema": schema}}}
    messages = [{"role": "user", "content": "x"}]
    assert local_json_params(params, {}, messages) == messages
    props = params["response_format"]["json_schema"]["schema"]["properties"]
    assert props["name"]["maxLength"] == MAX_STRING and props["code"]["maxLength"] == 5
    assert props["tags"]["items"]["maxLength"] == MAX_STRING
    assert "maxLength" not in props["kind"]
    assert "maxLength" not in schema["properties"]["name"]  # the caller's dict is untouched


def test_plain_requests_are_left_alone() -> None:
    params = {"max_tokens": 5}
    body: dict = {}
    messages = [{"role": "user", "content": "x"}]
    assert local_json_params(params, body, messages) is messages
    assert params == {"max_tokens": 5} and body == {}


@pytest.mark.parametrize(
    ("name", "match"),
    [("not-a-model", "smollm2-135m"), ("/no/such/file.gguf", "no GGUF file")],
)
def test_bad_local_names(name: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        describe(name)
