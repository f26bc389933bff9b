"""The public entry point: ``Compressor`` and its frozen ``CompressionResult``."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tiktoken

from tersify.budget import Budget
from tersify.coarse import (
    ContextFilter,
)
from tersify.encoding import DEFAULT_ENCODING, count_tokens, load_encoding
from tersify.errors import BadRequestError
from tersify.pipeline import Pipeline
from tersify.scoring import Scorer
from tersify.select import Assembler, join_prompt
from tersify.sentences import SentenceFilter
from tersify.structured import JsonLayout, Segment, parse_tagged
from tersify.tokens import TokenFilter
from tersify.windows import WindowPlan

DEFAULT_PRICE_PER_1K = 0.06  # USD per 1,000 target tokens: GPT-4's input price in the seed


@dataclass(frozen=True)
class CompressionResult:
    """What a compression gives back: text and numbers, no display strings.

    ``origin_tokens`` and ``compressed_tokens`` are counted in the target LLM's tokens
    (``encoding``); ``target_tokens`` is the budget the request asked for.
    """

    compressed_prompt: str
    origin_tokens: int
    compressed_tokens: int
    target_tokens: int
    encoding: str
    scorer_tokens: int = 0
    scorer_seconds: float = 0.0
    total_seconds: float = 0.0
    # Indices of the contexts in the compressed prompt, in its order (empty: unchanged).
    context_order: tuple[int, ...] = ()

    @property
    def rate(self) -> float:
        """The fraction kept, ``compressed / origin`` (LLMLingua's ``rate``)."""
        return self.compressed_tokens / self.origin_tokens if self.origin_tokens else 1.0

    @property
    def ratio(self) -> float:
        """The compression factor, ``origin / compressed`` (LLMLingua's ``"4.0x"``)."""
        return self.origin_tokens / self.compressed_tokens if self.compressed_tokens else 0.0

    def saving_usd(self, price_per_1k: float = DEFAULT_PRICE_PER_1K) -> float:
        """Dollars saved per call at ``price_per_1k`` dollars per 1,000 target tokens."""
        return (self.origin_tokens - self.compressed_tokens) * price_per_1k / 1000


class Compressor:
    """Token-level prompt compression (LLMLingua) with exact budget control.

    ``scorer`` is a :class:`tersify.scoring.Scorer`, or where to find one: ``None`` for the
    embedded default, a model name (``"gemma-3-270m"``), or an exported scorer's folder.

    >>> compressor = Compressor()  # doctest: +SKIP
    >>> compressor.compress(["A long document ..."], question="Why?", rate=0.5)  # doctest: +SKIP
    """

    def __init__(
        self,
        scorer: Scorer | str | os.PathLike[str] | None = None,
        *,
        encoding: str | tiktoken.Encoding = DEFAULT_ENCODING,
        window: WindowPlan | None = None,
    ) -> None:
        if scorer is None or isinstance(scorer, (str, os.PathLike)):
            from tersify.client import open_scorer  # the default transport, loaded on demand

            scorer = open_scorer(scorer)
        if not isinstance(scorer, Scorer):
            raise BadRequestError(
                f"scorer={scorer!r} is not a Scorer: pass None, a model name, a folder, "
                "or an object with tokenize() and logprobs()"
            )
        self._scorer = scorer
        self._encoding = (
            encoding if isinstance(encoding, tiktoken.Encoding) else load_encoding(encoding)
        )
        self._window = window or WindowPlan()

    @property
    def scorer(self) -> Scorer:
        """The scorer that gives this compressor its log-probs."""
        return self._scorer

    def count(self, text: str) -> int:
        """``text``'s size in target tokens."""
        return count_tokens(self._encoding, text)

    def compress(
        self,
        context: str | Sequence[str],
        *,
        question: str = "",
        instruction: str = "",
        rate: float | None = None,
        ratio: float | None = None,
        target_token: int | None = None,
        context_filter: ContextFilter | None = None,
        sentence_filter: SentenceFilter | None = None,
        token_filter: TokenFilter | None = None,
    ) -> CompressionResult:
        """Compress ``context`` so the whole prompt fits the budget; keep the rest verbatim.

        The budget covers the whole prompt, instruction and question included (both are
        kept as they are). With no budget given, half is kept (``rate=0.5``).
        ``context_filter`` first keeps and reorders the contexts that matter most (with
        several contexts); ``sentence_filter`` then keeps the most informative sentences;
        ``token_filter`` changes how units are scored and which are always kept.
        """
        started = time.perf_counter()
        contexts = _check_texts(context, question, instruction)
        original = join_prompt(instruction, contexts, question)
        origin_tokens, target = self._sizes(original, rate, ratio, target_token)
        if target >= origin_tokens:
            return self._result(original, origin_tokens, origin_tokens, target, started)
        run = self._pipeline(contexts, question, token_filter, target / origin_tokens)
        order: list[int] = list(range(len(contexts)))
        weights = None
        if context_filter is not None and len(contexts) > 1:
            fixed = self.count(join_prompt(instruction, [], question))
            order, weights = run.filter_contexts(context_filter, max(0, target - fixed))
        units = [run.units(i) for i in order]
        assembler = Assembler(instruction, [contexts[i] for i in order], units, question)
        prompt, tokens = run.fit(
            order, units, assembler.build, target, weights, sentences=sentence_filter
        )
        return self._result(
            prompt,
            origin_tokens,
            tokens,
            target,
            started,
            run=run,
            context_order=tuple(order),
        )

    def compress_segments(
        self,
        segments: str | Sequence[Segment],
        *,
        question: str = "",
        instruction: str = "",
        rate: float | None = None,
        ratio: float | None = None,
        target_token: int | None = None,
        token_filter: TokenFilter | None = None,
    ) -> CompressionResult:
        """Compress one prompt made of segments, each with its own rate or kept as it is.

        ``segments`` is a list of :class:`Segment` or a string with LLMLingua's
        ``<llmlingua, rate=...>`` / ``<llmlingua, compress=False>`` tags. Segments with
        ``compress=False`` are kept byte for byte; the prompt lands on its budget.
        """
        started = time.perf_counter()
        parts = parse_tagged(segments) if isinstance(segments, str) else list(segments)
        if not parts or not any(p.text for p in parts):
            raise BadRequestError("segments are empty: give text to compress")
        if any(not isinstance(p, Segment) for p in parts):
            raise BadRequestError("segments must be Segment objects or a tagged string")
        texts = [p.text for p in parts]
        _check_texts(texts, question, instruction)
        original = join_prompt(instruction, ["".join(texts)], question)
        origin_tokens, target = self._sizes(original, rate, ratio, target_token)
        if target >= origin_tokens:
            return self._result(original, origin_tokens, origin_tokens, target, started)
        run = self._pipeline(texts, question, token_filter, target / origin_tokens)
        order = list(range(len(parts)))
        units = [run.units(i) for i in order]
        overall = target / origin_tokens
        weights = np.array([(p.rate or overall) / overall for p in parts], dtype=np.float32)
        frozen = {i for i, p in enumerate(parts) if not p.compress}
        assembler = Assembler(instruction, texts, units, question, joined=True)
        prompt, tokens = run.fit(order, units, assembler.build, target, weights, frozen)
        return self._result(
            prompt,
            origin_tokens,
            tokens,
            target,
            started,
            run=run,
        )

    def compress_json(
        self,
        value: Any,
        *,
        rate: float | None = None,
        ratio: float | None = None,
        target_token: int | None = None,
        keep_keys: Sequence[str] = (),
        token_filter: TokenFilter | None = None,
    ) -> CompressionResult:
        """Compress the string values of a JSON value; the result always parses.

        ``value`` is a decoded JSON value or JSON text. Keys, numbers, booleans, nulls
        and the values of ``keep_keys`` are kept; the budget counts the JSON text.
        """
        started = time.perf_counter()
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise BadRequestError(f"the JSON to compress does not parse: {exc}") from exc
        layout = JsonLayout.of(value, keep_keys=keep_keys)
        original = layout.render(layout.strings)
        origin_tokens, target = self._sizes(original, rate, ratio, target_token)
        texts = list(layout.strings)
        if target >= origin_tokens or not any(texts):
            return self._result(original, origin_tokens, origin_tokens, target, started)
        run = self._pipeline(texts, "", token_filter, target / origin_tokens)
        order = list(range(len(texts)))
        units = [run.units(i) for i in order]
        assembler = Assembler("", texts, units, "")
        prompt, tokens = run.fit(
            order, units, lambda keep: layout.render(assembler.kept_parts(keep)), target, None
        )
        return self._result(
            prompt,
            origin_tokens,
            tokens,
            target,
            started,
            run=run,
        )

    def _sizes(
        self, original: str, rate: float | None, ratio: float | None, target_token: int | None
    ) -> tuple[int, int]:
        """The original prompt's size and the budget, both in target tokens."""
        budget = Budget(rate=rate, ratio=ratio, target_token=target_token)
        origin_tokens = self.count(original)
        return origin_tokens, budget.target(origin_tokens)

    def _pipeline(
        self, texts: list[str], question: str, token_filter: TokenFilter | None, fraction: float
    ) -> Pipeline:
        how = token_filter or TokenFilter()
        return Pipeline(self._scorer, self._window, self.count, texts, question, how, fraction)

    def _result(
        self,
        prompt: str,
        origin_tokens: int,
        tokens: int,
        target: int,
        started: float,
        run: Pipeline | None = None,
        context_order: tuple[int, ...] = (),
    ) -> CompressionResult:
        return CompressionResult(
            compressed_prompt=prompt,
            origin_tokens=origin_tokens,
            compressed_tokens=tokens,
            target_tokens=target,
            encoding=self._encoding.name,
            scorer_tokens=run.scorer_tokens if run else 0,
            scorer_seconds=run.scorer_seconds if run else 0.0,
            total_seconds=time.perf_counter() - started,
            context_order=context_order,
        )


def _check_texts(context: object, question: object, instruction: object) -> list[str]:
    if isinstance(context, str):
        contexts = [context]
    elif isinstance(context, Sequence) and not isinstance(context, (bytes, bytearray)):
        contexts = list(context)
    else:
        raise BadRequestError(
            f"context must be a string or a list of strings, not {type(context).__name__}"
        )
    for index, item in enumerate(contexts):
        if not isinstance(item, str):
            raise BadRequestError(f"context[{index}] must be a string, not {type(item).__name__}")
    if not any(contexts):
        raise BadRequestError("context is empty: give at least one non-empty text to compress")
    for name, value in (("question", question), ("instruction", instruction)):
        if not isinstance(value, str):
            raise BadRequestError(f"{name} must be a string, not {type(value).__name__}")
    return contexts
