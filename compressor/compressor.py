"""The public entry point: ``Compressor`` and its frozen ``CompressionResult``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tiktoken

from tersify.budget import Budget
from tersify.encoding import DEFAULT_ENCODING, count_tokens, load_encoding
from tersify.errors import BadRequestError
from tersify.scoring import Scorer, group_units
from tersify.select import Assembler, fit_budget, join_prompt, rank
from tersify.windows import WindowPlan, token_losses

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
    ) -> CompressionResult:
        """Compress ``context`` so the whole prompt fits the budget; keep the rest verbatim.

        The budget covers the whole prompt, instruction and question included (both are
        kept as they are). With no budget given, half is kept (``rate=0.5``).
        """
        started = time.perf_counter()
        contexts = _check_texts(context, question, instruction)
        budget = Budget(rate=rate, ratio=ratio, target_token=target_token)
        original = join_prompt(instruction, contexts, question)
        origin_tokens = self.count(original)
        target = budget.target(origin_tokens)
        if target >= origin_tokens:
            return self._result(original, origin_tokens, origin_tokens, target, started)

        tokenized = [self._scorer.tokenize(text) for text in contexts]
        units = [
            group_units(t.offsets, len(text)) for t, text in zip(tokenized, contexts, strict=True)
        ]
        scoring_started = time.perf_counter()
        losses = token_losses(self._scorer, [t.ids for t in tokenized], self._window)
        scorer_seconds = time.perf_counter() - scoring_started
        scores = np.concatenate(
            [
                np.bincount(u.token_unit, weights=loss, minlength=len(u)).astype(np.float32)
                for u, loss in zip(units, losses, strict=True)
            ]
        )
        assembler = Assembler(instruction, contexts, units, question)
        prompt, tokens = fit_budget(rank(scores), assembler.build, self.count, target)
        return self._result(
            prompt,
            origin_tokens,
            tokens,
            target,
            started,
            scorer_tokens=sum(len(t.ids) for t in tokenized),
            scorer_seconds=scorer_seconds,
        )

    def _result(
        self,
        prompt: str,
        origin_tokens: int,
        tokens: int,
        target: int,
        started: float,
        scorer_tokens: int = 0,
        scorer_seconds: float = 0.0,
    ) -> CompressionResult:
        return CompressionResult(
            compressed_prompt=prompt,
            origin_tokens=origin_tokens,
            compressed_tokens=tokens,
            target_tokens=target,
            encoding=self._encoding.name,
            scorer_tokens=scorer_tokens,
            scorer_seconds=scorer_seconds,
            total_seconds=time.perf_counter() - started,
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
