"""The JSON wire format: a compression request and the answer it gets.

One request compresses exactly one of three things:

- ``context``: a text or a list of texts (contexts), between ``instruction`` and
  ``question``, which are kept verbatim;
- ``segments``: one text with LLMLingua's ``<llmlingua, rate=...>`` /
  ``<llmlingua, compress=False>`` tags;
- ``json``: a JSON value whose string values are compressed (``keep_keys`` kept).

The budget is one of ``rate`` (fraction kept), ``ratio`` (fraction removed, LLMLingua 0.1)
or ``target_token`` (the whole prompt's size); ``mode`` picks a preset (``auto``, the
default: ``question-aware`` for a question over two or more contexts, ``token`` otherwise;
or ``token``, ``question-aware``, ``longllmlingua``) and LLMLingua's option names
(:mod:`tersify.options`) fine tune it. ``explain: true`` adds what was kept and why. The
answer (its ``mode`` says which preset ran)::

    {"data": {"compressed_prompt": ..., "origin_tokens": 3701, "compressed_tokens": 2961,
              "ratio": "1.2x", "rate": "80.0%", "mode": "token",
              "saving": ", Saving $0.0 in GPT-4."}}

:func:`request_schema` is the request's JSON schema, made from the same definitions the
parser checks against (the HTTP service publishes it in its OpenAPI document).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tersify.budget import Budget
from tersify.compressor import DEFAULT_PRICE_PER_1K, CompressionResult, Compressor
from tersify.errors import BadRequestError
from tersify.limits import Deadline
from tersify.options import (
    BY_NAME,
    DEFAULT_MODE,
    MODES,
    OPTIONS,
    chosen_mode,
    filters,
    resolve,
)
from tersify.validate import text, texts

Kind = Literal["context", "segments", "json"]
KINDS: tuple[Kind, ...] = ("context", "segments", "json")
MAX_INTEGER_DIGITS = 20
MAX_JSON_DEPTH = 64
# Options that make sense for one text with its own tags, or for JSON: token level only.
_TOKEN_LEVEL = frozenset(
    {"force_tokens", "force_reserve_digit", "condition_in_question", "condition_compare",
     "keep_newlines", "iterative"}
)

_TEXT_LIST = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
FIELDS: Mapping[str, Mapping[str, Any]] = {
    "context": {**_TEXT_LIST, "description": "the text(s) to compress, as contexts"},
    "segments": {
        "type": "string",
        "description": "one text with <llmlingua, rate=R> / <llmlingua, compress=False> tags",
    },
    "json": {"description": "a JSON value whose string values are compressed; always parses"},
    "keep_keys": {
        "type": "array",
        "items": {"type": "string"},
        "default": [],
        "description": "with json: the values of these keys are kept",
    },
    "question": {"type": "string", "default": "", "description": "kept verbatim at the end"},
    "instruction": {"type": "string", "default": "", "description": "kept verbatim at the start"},
    "rate": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": 1,
        "description": "fraction of the prompt kept (0.5 when no budget is given)",
    },
    "ratio": {
        "type": "number",
        "minimum": 0,
        "exclusiveMaximum": 1,
        "description": "fraction removed (LLMLingua 0.1): ratio 0.2 keeps 80 %",
    },
    "target_token": {
        "type": "integer",
        "minimum": 1,
        "description": "size of the whole compressed prompt in target tokens; overrides both",
    },
    "mode": {
        "enum": list(MODES),
        "default": DEFAULT_MODE,
        "description": "preset: auto (question-aware for a question over two or more "
        "contexts, else token), token-level pruning, question-aware (ranked sentences), or "
        "LongLLMLingua's recommended settings (longllmlingua)",
    },
    "explain": {
        "type": "boolean",
        "default": False,
        "description": "add what was kept of each context and the scores it was decided on",
    },
}


def request_schema() -> dict[str, Any]:
    """The request's JSON schema: every field and option with its range and default.

    >>> schema = request_schema()
    >>> schema["properties"]["rate"]["maximum"], schema["properties"]["mode"]["default"]
    (1, 'auto')
    """
    properties: dict[str, Any] = {name: dict(spec) for name, spec in FIELDS.items()}
    for option in OPTIONS:
        properties[option.name] = option.json_schema()
    return {
        "type": "object",
        "additionalProperties": False,
        "oneOf": [{"required": [kind]} for kind in KINDS],
        "properties": properties,
    }


@dataclass(frozen=True)
class CompressRequest:
    """A validated request: what to compress, the budget, the options."""

    kind: Kind
    context: tuple[str, ...] = ()
    segments: str = ""
    value: Any = None
    keep_keys: tuple[str, ...] = ()
    question: str = ""
    instruction: str = ""
    budget: Budget = field(default_factory=Budget)
    options: Mapping[str, Any] = field(default_factory=dict)
    explain: bool = False

    @classmethod
    def from_json(cls, raw: str | bytes) -> CompressRequest:
        """Parse and check a JSON request; every problem is a :class:`BadRequestError`."""
        try:
            data = json.loads(raw, parse_int=_integer, parse_constant=_constant)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"the request is not valid JSON: {exc}") from exc
        except RecursionError:
            raise BadRequestError("the request nests too deeply to be read") from None
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: Any) -> CompressRequest:
        """Check a decoded request object."""
        if not isinstance(data, Mapping):
            raise BadRequestError("the request must be a JSON object with a 'context' field")
        unknown = sorted(k for k in data if k not in FIELDS and k not in BY_NAME)
        if unknown:
            raise BadRequestError(
                f"unknown field {unknown[0]!r} in the request; see the schema of POST /compress "
                "(`tersify compress --help`)"
            )
        given = [k for k in KINDS if data.get(k) is not None]
        if len(given) != 1:
            raise BadRequestError(
                "the request needs exactly one of 'context', 'segments' or 'json'"
                + (f" (it has {', '.join(given)})" if given else ": give the text to compress")
            )
        kind = given[0]
        options = {k: v for k, v in data.items() if k in BY_NAME or k == "mode"}
        beyond = sorted(set(options) - _TOKEN_LEVEL - {"mode"})
        if kind != "context" and beyond:
            raise BadRequestError(f"{beyond[0]} applies to 'context' requests, not to '{kind}'")
        filters(resolve(options))  # checks every option now, as the Python API would
        explain = data.get("explain", False)
        if not isinstance(explain, bool):
            raise BadRequestError(f"explain={explain!r} must be true or false")
        return cls(
            kind=kind,
            context=tuple(texts("context", data["context"])) if kind == "context" else (),
            segments=text("segments", data.get("segments")),
            value=_json_value(data.get("json")) if kind == "json" else None,
            keep_keys=_keys(data.get("keep_keys")),
            question=text("question", data.get("question")),
            instruction=text("instruction", data.get("instruction")),
            budget=Budget(
                rate=data.get("rate"),
                ratio=data.get("ratio"),
                target_token=data.get("target_token"),
            ),
            options=options,
            explain=explain,
        )


def compress(
    request: CompressRequest, compressor: Compressor, *, deadline: Deadline | None = None
) -> CompressionResult:
    """Run ``request`` through ``compressor`` (stopping at ``deadline``)."""
    ran = "token"
    if request.kind == "context":
        ran = chosen_mode(request.options, question=request.question, contexts=len(request.context))
    chosen = filters(resolve({**request.options, "mode": ran}))
    budget = {
        "rate": request.budget.rate,
        "ratio": request.budget.ratio,
        "target_token": request.budget.target_token,
    }
    common: dict[str, Any] = {"deadline": deadline, "explain": request.explain, **budget}
    if request.kind == "segments":
        return compressor.compress_segments(
            request.segments,
            question=request.question,
            instruction=request.instruction,
            token_filter=chosen.token,
            **common,
        )
    if request.kind == "json":
        return compressor.compress_json(
            request.value, keep_keys=request.keep_keys, token_filter=chosen.token, **common
        )
    return compressor.compress(
        list(request.context),
        question=request.question,
        instruction=request.instruction,
        context_filter=chosen.context,
        sentence_filter=chosen.sentence,
        token_filter=chosen.token,
        mode=ran,
        **common,
    )


def answer(result: CompressionResult, price_per_1k: float = DEFAULT_PRICE_PER_1K) -> dict[str, Any]:
    """The answer object for ``result``, display strings included.

    With an explanation (``explain: true``), ``data`` also holds ``explanation`` and
    ``seconds``; without, the answer is exactly the original service's format.
    """
    data: dict[str, Any] = {
        "compressed_prompt": result.compressed_prompt,
        "origin_tokens": result.origin_tokens,
        "compressed_tokens": result.compressed_tokens,
        "ratio": f"{result.ratio:.1f}x",
        "rate": f"{result.rate * 100:.1f}%",
        "mode": result.mode,
        "saving": f", Saving ${result.saving_usd(price_per_1k):.1f} in GPT-4.",
    }
    if result.explanation is not None:
        data["explanation"] = result.explanation.to_json()
        data["seconds"] = {
            "total": round(result.total_seconds, 4),
            "scorer": round(result.scorer_seconds, 4),
        }
    return {"data": data}


def _integer(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise BadRequestError(
            f"an integer of {len(digits)} digits is too large: numbers in a request have at "
            f"most {MAX_INTEGER_DIGITS} digits"
        )
    return int(digits)


def _constant(name: str) -> float:
    raise BadRequestError(f"{name} is not JSON: numbers in a request must be finite")


def _keys(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequestError("keep_keys must be a list of key names")
    return tuple(text(f"keep_keys[{i}]", key) for i, key in enumerate(value))


def _json_value(value: Any, depth: int = 0) -> Any:
    """Check a JSON value to compress: bounded nesting, valid Unicode in keys and strings."""
    if depth > MAX_JSON_DEPTH:
        raise BadRequestError(f"the 'json' value nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        text("a string in 'json'", value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise BadRequestError("a number in 'json' is not finite: JSON has no NaN or Infinity")
    elif isinstance(value, list):
        for item in value:
            _json_value(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            text("a key in 'json'", key)
            _json_value(item, depth + 1)
    return value
