"""``tersify.ask`` and ``tersify ask``: the full and the compressed prompt to a real LLM.

The LLM is llama.cpp's server with SmolLM2-135M-Instruct (the ``local_llm`` fixture), the
scorer SmolLM2's export. The failures an LLM can have are played by ``fakes.FailingLLM``
(tests/unit/test_ask.py), here once beside the real scorer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tersify
from tersify import Compressor
from tersify.cli import main
from tersify.integrations.local_llm import LocalLLM

from texts import FACT, QUESTION, sample_text, secret_request


def test_cli_reports_each_leg_and_exits_1_when_one_failed(
    failing_url: str,
    smollm2_scorer_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({**secret_request(), "rate": 0.1}), encoding="utf-8")
    scorer = str(smollm2_scorer_dir)
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


def test_ask_full_and_compressed(local_llm: LocalLLM, smollm2_compressor: Compressor) -> None:
    result = tersify.ask(
        {**secret_request(), "rate": 0.5},
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
    local_llm: LocalLLM,
    smollm2_scorer_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({**secret_request(), "ratio": 0.5}), encoding="utf-8")
    scorer = str(smollm2_scorer_dir)
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
