"""The seed's wire format: a compression request in JSON and the answer it gets.

Request: ``{"context": [...] | "...", "question": "...", "instruction": "...",
"ratio" | "rate" | "target_token": ...}``. Answer::

    {"data": {"compressed_prompt": ..., "origin_tokens": 3701, "compressed_tokens": 2961,
              "ratio": "1.2x", "rate": "80.0%", "saving": ", Saving $0.0 in GPT-4."}}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tersify.budget import Budget
from tersify.compressor import DEFAULT_PRICE_PER_1K, CompressionResult, Compressor
from tersify.errors import BadRequestError

FIELDS = ("context", "question", "instruction", "ratio", "rate", "target_token")


@dataclass(frozen=True)
class CompressRequest:
    """A validated request in the seed's format."""

    context: tuple[str, ...]
    question: str = ""
    instruction: str = ""
    budget: Budget = field(default_factory=Budget)

    @classmethod
    def from_json(cls, text: str | bytes) -> CompressRequest:
        """Parse and check a JSON request; every problem is a :class:`BadRequestError`."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"the request is not valid JSON: {exc}") from exc
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Any) -> CompressRequest:
        """Check a decoded request object."""
        if not isinstance(data, Mapping):
            raise BadRequestError("the request must be a JSON object with a 'context' field")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise BadRequestError(
                f"unknown field {unknown[0]!r} in the request; known fields: {', '.join(FIELDS)}"
            )
        if data.get("context") is None:
            raise BadRequestError("the request has no 'context': give the text to compress")
        return cls(
            context=_texts(data["context"]),
            question=_text(data, "question"),
            instruction=_text(data, "instruction"),
            budget=Budget(
                rate=data.get("rate"),
                ratio=data.get("ratio"),
                target_token=data.get("target_token"),
            ),
        )


def compress(request: CompressRequest, compressor: Compressor) -> CompressionResult:
    """Run ``request`` through ``compressor``."""
    return compressor.compress(
        list(request.context),
        question=request.question,
        instruction=request.instruction,
        rate=request.budget.rate,
        ratio=request.budget.ratio,
        target_token=request.budget.target_token,
    )


def answer(result: CompressionResult, price_per_1k: float = DEFAULT_PRICE_PER_1K) -> dict[str, Any]:
    """The seed's answer object for ``result``, display strings included."""
    return {
        "data": {
            "compressed_prompt": result.compressed_prompt,
            "origin_tokens": result.origin_tokens,
            "compressed_tokens": result.compressed_tokens,
            "ratio": f"{result.ratio:.1f}x",
            "rate": f"{result.rate * 100:.1f}%",
            "saving": f", Saving ${result.saving_usd(price_per_1k):.1f} in GPT-4.",
        }
    }


def _texts(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise BadRequestError("'context' must be a string or a list of strings")
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise BadRequestError(f"context[{index}] must be a string, not {type(item).__name__}")
    if not any(items):
        raise BadRequestError("'context' is empty: give at least one non-empty text")
    return tuple(items)


def _text(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"'{name}' must be a string, not {type(value).__name__}")
    return value
