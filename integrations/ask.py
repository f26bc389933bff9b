"""Ask an LLM the same question with the full and the compressed prompt.

>>> from tersify import ask
>>> result = ask({"context": ["..."], "question": "..."},
...              llm="http://127.0.0.1:8080/v1", model="smollm2")  # doctest: +SKIP
>>> result.full.prompt_tokens, result.compressed.prompt_tokens  # doctest: +SKIP
(2416, 1802)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tersify.assemble import join_prompt
from tersify.coarse import ContextFilter
from tersify.compressor import DEFAULT_PRICE_PER_1K, CompressionResult, Compressor
from tersify.errors import BadRequestError
from tersify.integrations.llm import DEFAULT_TIMEOUT, ChatReply, LLMEndpoint, chat
from tersify.request import CompressRequest, answer
from tersify.tokens import TokenFilter


@dataclass(frozen=True)
class AskResult:
    """One request, compressed, and the LLM's answers to the full and the compressed prompt."""

    model: str
    question: str
    temperature: float
    full_prompt: str
    compression: CompressionResult
    full: ChatReply
    compressed: ChatReply

    @property
    def compression_seconds(self) -> float:
        """The compression's own wall time."""
        return self.compression.total_seconds

    def to_json(self, price_per_1k: float = DEFAULT_PRICE_PER_1K) -> dict[str, Any]:
        """A JSON-ready summary: the compression's answer and both LLM calls."""
        return {
            "model": self.model,
            "question": self.question,
            "temperature": self.temperature,
            "compression": {
                **answer(self.compression, price_per_1k)["data"],
                "seconds": round(self.compression_seconds, 4),
            },
            "full_prompt": _reply_json(self.full),
            "compressed_prompt": _reply_json(self.compressed),
        }


def _reply_json(reply: ChatReply) -> dict[str, Any]:
    return {
        "response_seconds": round(reply.seconds, 4),
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "content": reply.content,
        "response": dict(reply.response),
    }


def question_aware_options() -> dict[str, Any]:
    """LongLLMLingua's mode, as the quality harness runs it (README, "Quality")."""
    return {
        "context_filter": ContextFilter(
            rank_method="longllmlingua", reorder="sort", dynamic_ratio=0.3
        ),
        "token_filter": TokenFilter(condition_on_question=True, contrastive=True),
    }


def ask(
    request: CompressRequest | Mapping[str, Any],
    *,
    llm: str,
    model: str,
    api_key: str | None = None,
    compressor: Compressor | None = None,
    temperature: float = 0.0,
    max_tokens: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    question_aware: bool = False,
) -> AskResult:
    """Compress ``request`` (the JSON request format), then ask ``llm`` with both prompts.

    Each prompt is sent as one user message; the full prompt is LLMLingua's layout of
    instruction, contexts and question, the one the compression starts from. The LLM is
    asked with the full prompt first, then with the compressed one, one call at a time,
    so that their response times compare. ``question_aware`` compresses as LongLLMLingua
    does (contexts ranked and reordered against the question, tokens scored by what the
    question makes predictable): the quality harness's mode that keeps answers at 4x.
    LLM failures are :class:`tersify.errors.UpstreamError`.
    """
    parsed = (
        request if isinstance(request, CompressRequest) else CompressRequest.from_mapping(request)
    )
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise BadRequestError(f"temperature={temperature!r} must be a number")
    endpoint = LLMEndpoint(llm, model=model, api_key=api_key, timeout=timeout)
    result = (compressor or Compressor()).compress(
        list(parsed.context),
        question=parsed.question,
        instruction=parsed.instruction,
        rate=parsed.budget.rate,
        ratio=parsed.budget.ratio,
        target_token=parsed.budget.target_token,
        **(question_aware_options() if question_aware else {}),
    )
    full_prompt = join_prompt(parsed.instruction, list(parsed.context), parsed.question)
    replies = [
        chat(
            endpoint,
            [{"role": "user", "content": prompt}],
            temperature=temperature,
            max_tokens=max_tokens,
        )
        for prompt in (full_prompt, result.compressed_prompt)
    ]
    return AskResult(
        model=model,
        question=parsed.question,
        temperature=float(temperature),
        full_prompt=full_prompt,
        compression=result,
        full=replies[0],
        compressed=replies[1],
    )
