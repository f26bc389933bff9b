"""Ask an LLM the same question with the full and the compressed prompt.

>>> from tersify import ask
>>> result = ask({"context": ["..."], "question": "..."},
...              llm="http://127.0.0.1:8080/v1", model="smollm2")  # doctest: +SKIP
>>> result.full.prompt_tokens, result.compressed.prompt_tokens  # doctest: +SKIP
(2416, 1802)

Each LLM call (a *leg*) stands on its own: an LLM error on one (a full prompt longer than
the LLM's context, say) is that leg's error in the result, and the other leg still answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tersify.assemble import join_prompt
from tersify.coarse import ContextFilter
from tersify.compressor import DEFAULT_PRICE_PER_1K, CompressionResult, Compressor
from tersify.errors import BadRequestError, UpstreamError
from tersify.integrations.llm import DEFAULT_TIMEOUT, ChatReply, LLMEndpoint, chat
from tersify.request import CompressRequest, answer
from tersify.tokens import TokenFilter

LEGS = ("full_prompt", "compressed_prompt")


@dataclass(frozen=True)
class AskResult:
    """One request, compressed, and the LLM's answers to the full and the compressed prompt.

    A leg whose LLM call failed has no reply (``None``) and its error in ``full_error`` or
    ``compressed_error``.
    """

    model: str
    question: str
    temperature: float
    full_prompt: str
    compression: CompressionResult
    full: ChatReply | None
    compressed: ChatReply | None
    full_error: UpstreamError | None = None
    compressed_error: UpstreamError | None = None

    @property
    def failed(self) -> list[str]:
        """The legs (``full_prompt``, ``compressed_prompt``) whose LLM call failed."""
        errors = (self.full_error, self.compressed_error)
        return [leg for leg, error in zip(LEGS, errors, strict=True) if error is not None]

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
            "full_prompt": _reply_json(self.full, self.full_error),
            "compressed_prompt": _reply_json(self.compressed, self.compressed_error),
        }


def _reply_json(reply: ChatReply | None, error: UpstreamError | None) -> dict[str, Any]:
    if reply is None:
        message = " ".join(str(error).split())
        status = None if error is None else error.status
        return {
            **dict.fromkeys(("response_seconds", "prompt_tokens", "completion_tokens")),
            **dict.fromkeys(("content", "response")),
            "error": {"type": type(error).__name__, "message": message, "status": status},
        }
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
    An LLM failure (:class:`tersify.errors.UpstreamError`) is kept as that leg's error
    (:attr:`AskResult.failed`); the other leg is asked all the same.
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
    legs = [
        _leg(endpoint, prompt, temperature, max_tokens)
        for prompt in (full_prompt, result.compressed_prompt)
    ]
    return AskResult(
        model=model,
        question=parsed.question,
        temperature=float(temperature),
        full_prompt=full_prompt,
        compression=result,
        full=legs[0][0],
        compressed=legs[1][0],
        full_error=legs[0][1],
        compressed_error=legs[1][1],
    )


def _leg(
    endpoint: LLMEndpoint, prompt: str, temperature: float, max_tokens: int | None
) -> tuple[ChatReply | None, UpstreamError | None]:
    """One LLM call: its reply, or its error (which does not stop the other leg)."""
    try:
        reply = chat(
            endpoint,
            [{"role": "user", "content": prompt}],
            temperature=temperature,
            max_tokens=max_tokens,
        )
    except UpstreamError as exc:
        return None, exc
    return reply, None
