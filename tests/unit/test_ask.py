"""``tersify.ask`` and ``tersify ask`` when the LLM fails: one line per failure, by kind.

The failures an LLM can have (4xx, 5xx, a stall, garbage, nothing listening) are played by a
small HTTP server of the standard library (``fakes.FailingLLM``), since a healthy LLM will
not produce them; the scorer is the fake one. A real LLM: tests/integration/test_ask_llm.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tersify
from tersify import Compressor
from tersify.cli import main
from tersify.errors import BadRequestError, UpstreamError
from tersify.integrations.llm import LLMEndpoint, chat, chat_completions_url
from tersify.integrations.local_llm import free_port

from fakes import CONTEXT_CHARS
from texts import secret_request


def test_urls() -> None:
    assert chat_completions_url("http://h:1") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_completions_url("http://h/x/v1/chat/completions") == (
        "http://h/x/v1/chat/completions"
    )
    for bad in ("ftp://h", "h:80", ""):
        with pytest.raises(BadRequestError, match="--llm"):
            LLMEndpoint(bad, model="m")
    with pytest.raises(BadRequestError, match="--model"):
        LLMEndpoint("http://h", model=" ")
    assert "secret" not in repr(LLMEndpoint("http://h", model="m", api_key="secret"))


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/401/v1", r"HTTP 401 \(check the API key \(--api-key-env\)\): Incorrect API key"),
        ("/500/v1", r"HTTP 500 \(the LLM failed.*\): CUDA out of memory at layer 3$"),
        ("/garbage/v1", r"not a chat completion: <html>not json</html>"),
        ("/slow/v1", r"did not answer within 0.5 s"),
    ],
)
def test_llm_failures_are_one_line(failing_url: str, path: str, pattern: str) -> None:
    endpoint = LLMEndpoint(failing_url + path, model="m", api_key="sk-hidden", timeout=0.5)
    with pytest.raises(UpstreamError, match=pattern) as caught:
        chat(endpoint, [{"role": "user", "content": "hi"}])
    message = str(caught.value)
    assert "\n" not in message and "sk-hidden" not in message
    assert caught.value.status == (int(path[1:4]) if path[1:4].isdigit() else None)


def test_unreachable_llm_is_one_line() -> None:
    endpoint = LLMEndpoint(f"http://127.0.0.1:{free_port()}/v1", model="m")
    with pytest.raises(UpstreamError, match=r"cannot reach the LLM at .*check --llm"):
        chat(endpoint, [{"role": "user", "content": "hi"}])


def test_cli_llm_failure_exits_1_with_one_line(
    failing_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"context": ["Some text."], "question": "Why?"}))
    code = main(
        ["ask", str(request), "--llm", failing_url + "/500", "--model", "m", "--scorer", "x/none"]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and err.startswith("tersify: error:")


def test_a_failed_leg_is_its_own_error_and_the_other_answers(
    failing_url: str, fake_compressor: Compressor
) -> None:
    result = tersify.ask(
        {**secret_request(), "rate": 0.1},
        llm=failing_url + "/small/v1",
        model="m",
        api_key="sk-hidden",
        compressor=fake_compressor,
    )
    assert len(result.full_prompt) > CONTEXT_CHARS >= len(result.compression.compressed_prompt)
    assert result.failed == ["full_prompt"] and result.full is None
    assert result.full_error is not None and result.full_error.status == 400
    assert result.compressed is not None and result.compressed.content == "4711946"
    summary = result.to_json()
    error = summary["full_prompt"]["error"]
    assert error["type"] == "UpstreamError" and error["status"] == 400
    assert "exceeds the available context size" in error["message"]
    assert "sk-hidden" not in json.dumps(summary)
    assert summary["full_prompt"]["prompt_tokens"] is None
    assert summary["compressed_prompt"]["prompt_tokens"] > 0
    assert "error" not in summary["compressed_prompt"]


def test_cli_names_a_missing_key_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"context": ["Some text."]}))
    argv = ["ask", str(request), "--llm", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main([*argv, "--api-key-env", "NO_SUCH_KEY"]) == 2
    assert "NO_SUCH_KEY" in capsys.readouterr().err
