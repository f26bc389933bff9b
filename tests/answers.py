"""One check for every answer: its counts are the truth about the budget.

Every test that looks at a compression's answer (a ``CompressionResult`` or the seed's
JSON answer, from the API, the CLI, the service, Triton or a real model) goes through
here, so that a ``compressed_tokens`` that is not the prompt's real size, or a prompt over
its budget, fails everywhere at once. The recount uses the target encoding directly
(tiktoken's ``encode_ordinary``), not the compressor's own counter.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import regex
import tiktoken

from tersify import CompressionResult
from tersify.encoding import DEFAULT_ENCODING, load_encoding
from tersify.scoring import Units

SEED = Path(__file__).resolve().parent.parent / "examples" / "seed_request.json"
# The seed's request: 3,701 target tokens, {"ratio": 0.2}: exactly 2,961 kept (README).
SEED_ORIGIN_TOKENS = 3701
SEED_TARGET_TOKENS = 2961
# LLMLingua's keys (PromptCompressor.compress_prompt); tersify's fronts add the mode that ran.
LLMLINGUA_KEYS = {
    "compressed_prompt", "origin_tokens", "compressed_tokens", "ratio", "rate", "saving"
}
ANSWER_KEYS = LLMLINGUA_KEYS | {"mode"}


@functools.cache
def encoding_named(name: str) -> tiktoken.Encoding:
    return load_encoding(name)


def recount(prompt: str, encoding: str = DEFAULT_ENCODING) -> int:
    """``prompt``'s size in the target encoding, special-token text counted as text."""
    return len(encoding_named(encoding).encode_ordinary(prompt))


def seed_request() -> dict:
    """The seed's request, as the README and the examples give it."""
    return json.loads(SEED.read_text(encoding="utf-8"))


def is_subsequence(small: str, big: str) -> bool:
    it = iter(big)
    return all(ch in it for ch in small)


def check_counts(prompt: str, compressed_tokens: int, budget: int, encoding: str) -> None:
    """The reported size is the prompt's real size in the target encoding, within budget."""
    real = recount(prompt, encoding)
    assert real == compressed_tokens, f"compressed_tokens={compressed_tokens}, real size {real}"
    assert real <= budget, f"{real} tokens over the budget of {budget}"
    assert "\ufffd" not in prompt


def check_result(result: CompressionResult, original: str | None = None) -> None:
    """A result's counts: recounted, within its target; ``origin_tokens`` of ``original``."""
    check_counts(
        result.compressed_prompt, result.compressed_tokens, result.target_tokens, result.encoding
    )
    assert result.target_tokens <= result.origin_tokens
    if original is not None:
        assert result.origin_tokens == recount(original, result.encoding)
    if result.compressed_tokens == result.origin_tokens and original is not None:
        assert result.compressed_prompt == original


def check_properties(
    result: CompressionResult, contexts: list[str], question: str, instruction: str = ""
) -> None:
    """The answer's counts, and its text: instruction and question verbatim, contexts cut."""
    check_result(result, "\n\n".join(p for p in (instruction, *contexts, question) if p))
    prompt = result.compressed_prompt
    assert prompt.endswith(question)
    assert prompt.startswith(instruction)
    body = prompt[len(instruction) : len(prompt) - len(question)]
    # what lies between instruction, contexts and question is the "\n\n" separator
    if instruction and body:
        assert body.startswith("\n\n")
        body = body[2:]
    if question and body:
        assert body.endswith("\n\n")
        body = body[:-2]
    order = list(result.context_order) or list(range(len(contexts)))
    assert is_subsequence(body, "\n\n".join(contexts[i] for i in order))


def check_answer(
    data: dict, budget: int, encoding: str = DEFAULT_ENCODING, keys: set[str] = ANSWER_KEYS
) -> None:
    """The seed's answer fields: display strings that agree with counts that are true."""
    assert set(data) == keys
    origin, kept = data["origin_tokens"], data["compressed_tokens"]
    check_counts(data["compressed_prompt"], kept, budget, encoding)
    assert kept <= origin
    assert data["ratio"] == f"{origin / kept:.1f}x"
    assert data["rate"] == f"{kept / origin * 100:.1f}%"
    assert data["saving"] == f", Saving ${(origin - kept) * 0.06 / 1000:.1f} in GPT-4."


def check_seed_answer(data: dict) -> None:
    """The seed's request answered: 3,701 tokens in, exactly its 2,961-token target out."""
    check_answer(data, SEED_TARGET_TOKENS)
    assert data["origin_tokens"] == SEED_ORIGIN_TOKENS
    assert data["compressed_tokens"] == SEED_TARGET_TOKENS
    request = seed_request()
    assert data["compressed_prompt"].endswith("\n\n" + request["question"])


def check_tiling(text: str, offsets: np.ndarray, units: Units) -> None:
    """Units tile ``text`` (first at 0, last at its end, no gap, none empty), in token
    order, and every token with characters lies inside its own unit."""
    if not text:
        assert len(units) == 0
        return
    assert units.starts[0] == 0 and units.ends[-1] == len(text)
    assert (units.starts[1:] == units.ends[:-1]).all()
    assert (units.ends > units.starts).all()
    assert len(units.token_unit) == len(offsets)
    assert (np.diff(units.token_unit) >= 0).all()
    for (start, end), unit in zip(offsets.tolist(), units.token_unit.tolist()):
        if end > start:
            assert units.starts[unit] <= start and end <= units.ends[unit], (start, end, unit)


def grapheme_bounds(text: str) -> set[int]:
    """Where extended grapheme clusters start (Unicode's ``\\X``), and the text's end."""
    return {m.start() for m in regex.finditer(r"\X", text)} | {len(text)}


def check_graphemes(text: str, units: Units) -> None:
    """No unit boundary falls inside an extended grapheme cluster."""
    inside = sorted(set(units.starts.tolist()) - grapheme_bounds(text))
    assert not inside, [(i, text[max(0, i - 2) : i + 2]) for i in inside[:5]]
