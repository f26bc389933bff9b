"""``tersify.ask`` and ``tersify ask``: the full and the compressed prompt to a real LLM.

The LLM is llama.cpp's server with SmolLM2-135M-Instruct (the ``local_llm`` fixture). The
failures an LLM can have (4xx, 5xx, a stall, garbage, nothing listening) are played by a
small HTTP server of the standard library, since a healthy LLM will not produce them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import tersify
from tersify import Compressor
from tersify.cli import main
from tersify.errors import BadRequestError, UpstreamError
from tersify.integrations.llm import LLMEndpoint, chat, chat_completions_url
from tersify.integrations.local_llm import LocalLLM, free_port

from texts import sample_text

FACT = "The secret password to the archive is 4711946."
QUESTION = "What is the secret password to the archive?"


def _request() -> dict:
    text = sample_text("english", 2400, 7)
    cut = len(text) // 2
    return {"context": [text[:cut] + " " + FACT + " " + text[cut:]], "question": QUESTION}


CONTEXT_CHARS = 1500  # what /small/ holds, as an LLM with a short context


def _small_context(prompt: str) -> tuple[int, dict | str]:
    """llama.cpp's answers: a 400 past the context, else a chat completion."""
    if len(prompt) > CONTEXT_CHARS:
        return 400, {"error": {"message": "the request exceeds the available context size"}}
    message = {"role": "assistant", "content": "4711946"}
    return 200, {
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 1},
    }


class _Failing(BaseHTTPRequestHandler):
    """Answers every POST as its path says: /401, /500, /slow, /garbage, /small."""

    def do_POST(self) -> None:
        sent = self.rfile.read(int(self.headers.get("content-length", 0)))
        kind = self.path.split("/")[1]
        if kind == "slow":
            time.sleep(3)
        status, body = {
            "401": (401, {"error": {"message": "Incorrect API key provided: sk-..."}}),
            "500": (500, {"error": {"message": "CUDA out of memory\nat layer 3"}}),
            "garbage": (200, "<html>not json</html>"),
        }.get(kind, (200, {}))
        if kind == "small":
            status, body = _small_context(json.loads(sent)["messages"][0]["content"])
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except BrokenPipeError:  # the client timed out first, as /slow means it to
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def failing_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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
        {**_request(), "rate": 0.1},
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


def test_cli_reports_each_leg_and_exits_1_when_one_failed(
    failing_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tersify.export import export_scorer

    request = tmp_path / "request.json"
    request.write_text(json.dumps({**_request(), "rate": 0.1}), encoding="utf-8")
    scorer = str(export_scorer("smollm2-135m", skip_existing=True))
    argv = ["ask", str(request), "--llm", failing_url + "/small/v1", "--model", "m"]
    argv += ["--scorer", scorer]
    assert main([*argv, "--json"]) == 1
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["full_prompt"]["error"]["status"] == 400
    assert summary["compressed_prompt"]["content"] == "4711946"
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("tersify: error: full_prompt: the LLM at ")
    assert main(argv) == 1
    text = capsys.readouterr().out
    assert "### full_prompt\nerror: the LLM at " in text and "exceeds the available" in text
    assert "### compressed_prompt\nresponse_time: " in text
    assert "prompt tokens (failed) -> " in text
    # every leg answered: exit 0
    short = {"context": [sample_text("english", 600, 3)], "question": QUESTION, "rate": 0.5}
    request.write_text(json.dumps(short), encoding="utf-8")
    assert main([*argv, "--json"]) == 0
    assert capsys.readouterr().err == ""


def test_cli_names_a_missing_key_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"context": ["Some text."]}))
    argv = ["ask", str(request), "--llm", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main([*argv, "--api-key-env", "NO_SUCH_KEY"]) == 2
    assert "NO_SUCH_KEY" in capsys.readouterr().err


def test_ask_full_and_compressed(local_llm: LocalLLM, smollm2_compressor: Compressor) -> None:
    result = tersify.ask(
        {**_request(), "rate": 0.5},
        llm=local_llm.url,
        model=local_llm.model,
        compressor=smollm2_compressor,
        max_tokens=24,
    )
    assert result.compression.compressed_tokens <= result.compression.target_tokens
    assert result.full.prompt_tokens and result.compressed.prompt_tokens
    # The LLM's own count of the prompt shrinks with the compression.
    assert result.compressed.prompt_tokens < 0.75 * result.full.prompt_tokens
    assert result.full.content and result.compressed.content
    assert result.full.seconds > 0 and result.compressed.seconds > 0
    assert result.compression_seconds > 0
    summary = result.to_json()
    assert summary["full_prompt"]["prompt_tokens"] == result.full.prompt_tokens
    assert summary["compression"]["compressed_tokens"] == result.compression.compressed_tokens


def test_cli_seed_layout_and_json(
    local_llm: LocalLLM, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tersify.export import export_scorer

    request = tmp_path / "request.json"
    request.write_text(json.dumps({**_request(), "ratio": 0.5}), encoding="utf-8")
    scorer = str(export_scorer("smollm2-135m", skip_existing=True))
    argv = ["ask", str(request), "--llm", local_llm.url, "--model", local_llm.model]
    argv += ["--scorer", scorer, "--max-tokens", "16"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    for heading in (
        "# Compress Prompt",
        "# Ask for llm",
        "### full_prompt",
        "### compressed_prompt",
    ):
        assert heading in text
    assert "response_time: " in text and "prompt tokens " in text
    assert main([*argv, "--json", "--question-aware"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "smollm2" and summary["question"] == QUESTION
    full, short = summary["full_prompt"], summary["compressed_prompt"]
    assert short["prompt_tokens"] < full["prompt_tokens"]
    assert full["response"]["usage"]["prompt_tokens"] == full["prompt_tokens"]


def test_the_compressed_leg_answers_where_the_full_prompt_does_not_fit(
    smollm2_compressor: Compressor,
) -> None:
    """The issue's case: an LLM whose context cannot hold the full prompt."""
    text = sample_text("english", 6000, 7)  # about 1,300 of SmolLM2's tokens
    request = {"context": [text + " " + FACT], "question": QUESTION, "rate": 0.2}
    with LocalLLM(n_ctx=1024) as small:
        result = tersify.ask(
            request,
            llm=small.url,
            model=small.model,
            compressor=smollm2_compressor,
            max_tokens=16,
        )
    assert result.failed == ["full_prompt"]
    assert result.full_error is not None and result.full_error.status == 400
    assert result.compressed is not None and result.compressed.prompt_tokens
    assert result.compressed.prompt_tokens < 1024
