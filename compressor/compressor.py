"""The public entry point: ``Compressor`` and its frozen ``CompressionResult``."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tiktoken

from tersify.budget import Budget
from tersify.coarse import (
    QUESTION_SUFFIX,
    ContextFilter,
    bm25_scores,
    dynamic_weights,
    keep_within_budget,
    question_scores,
    reorder,
)
from tersify.encoding import DEFAULT_ENCODING, count_tokens, load_encoding
from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, IntArray, Scorer, Units, group_units
from tersify.select import Assembler, fit_budget, join_prompt
from tersify.tokens import TokenFilter, selection_order, unit_scores
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
        token_filter: TokenFilter | None = None,
    ) -> CompressionResult:
        """Compress ``context`` so the whole prompt fits the budget; keep the rest verbatim.

        The budget covers the whole prompt, instruction and question included (both are
        kept as they are). With no budget given, half is kept (``rate=0.5``).
        ``context_filter`` first keeps and reorders the contexts that matter most (with
        several contexts); ``token_filter`` changes how units are scored and which are
        always kept.
        """
        started = time.perf_counter()
        contexts = _check_texts(context, question, instruction)
        budget = Budget(rate=rate, ratio=ratio, target_token=target_token)
        original = join_prompt(instruction, contexts, question)
        origin_tokens = self.count(original)
        target = budget.target(origin_tokens)
        if target >= origin_tokens:
            return self._result(original, origin_tokens, origin_tokens, target, started)
        run = _Run(self, contexts, question, token_filter or TokenFilter())
        order: list[int] = list(range(len(contexts)))
        weights = None
        if context_filter is not None and len(contexts) > 1:
            fixed = self.count(join_prompt(instruction, [], question))
            order, weights = run.filter_contexts(context_filter, max(0, target - fixed))
        texts = [contexts[i] for i in order]
        units = [run.units(i) for i in order]
        scores = run.unit_scores(order)
        forced = [run.how.forced(text, u) for text, u in zip(texts, units, strict=True)]
        assembler = Assembler(instruction, texts, units, question)
        prompt, tokens = fit_budget(
            selection_order(scores, forced, weights), assembler.build, self.count, target
        )
        return self._result(
            prompt,
            origin_tokens,
            tokens,
            target,
            started,
            scorer_tokens=run.scorer_tokens,
            scorer_seconds=run.scorer_seconds,
            context_order=tuple(order),
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
        context_order: tuple[int, ...] = (),
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
            context_order=context_order,
        )


class _Run:
    """One compression's scorer work, each piece computed once and only when needed."""

    def __init__(
        self, compressor: Compressor, contexts: list[str], question: str, how: TokenFilter
    ) -> None:
        if how.needs_question and not question:
            raise BadRequestError(
                "condition_in_question / condition_compare score tokens against the "
                "question: give a question"
            )
        self._compressor = compressor
        self._scorer = compressor.scorer
        self._contexts = contexts
        self._question = question
        self.how = how
        self._tokens = [self._scorer.tokenize(text) for text in contexts]
        self._plain: dict[int, FloatArray] = {}
        self.scorer_tokens = 0
        self.scorer_seconds = 0.0

    def units(self, index: int) -> Units:
        return group_units(self._tokens[index].offsets, len(self._contexts[index]))

    def _timed_losses(self, indices: Sequence[int], prefix: IntArray | None) -> list[FloatArray]:
        started = time.perf_counter()
        ids = [self._tokens[i].ids for i in indices]
        losses = token_losses(self._scorer, ids, self._compressor._window, prefix)
        self.scorer_seconds += time.perf_counter() - started
        self.scorer_tokens += sum(len(x) for x in ids)
        return losses

    def plain(self, indices: Sequence[int]) -> list[FloatArray]:
        missing = [i for i in indices if i not in self._plain]
        for i, loss in zip(missing, self._timed_losses(missing, None), strict=True):
            self._plain[i] = loss
        return [self._plain[i] for i in indices]

    def unit_scores(self, order: Sequence[int]) -> list[FloatArray]:
        plain = (
            self.plain(order)
            if not self.how.condition_on_question or self.how.contrastive
            else None
        )
        conditioned = None
        if self.how.needs_question:
            question = self._scorer.tokenize(self._question).ids
            conditioned = self._timed_losses(order, question)
        return [
            unit_scores(
                self.units(i),
                None if plain is None else plain[k],
                None if conditioned is None else conditioned[k],
                self.how,
            )
            for k, i in enumerate(order)
        ]

    def filter_contexts(
        self, how: ContextFilter, budget: int
    ) -> tuple[list[int], FloatArray | None]:
        """Rank, keep within the context budget, reorder; and per-context weights."""
        n = len(self._contexts)
        bad = [i for i in how.force_context_ids if i >= n]
        if bad:
            raise BadRequestError(f"force_context_ids {bad} are not among the {n} contexts")
        if how.rank_method == "bm25":
            relevance = bm25_scores(self._contexts, self._question)
        elif how.rank_method == "llmlingua":
            relevance = np.array(
                [float(np.mean(x)) if len(x) else 0.0 for x in self.plain(range(n))]
            )
        else:
            if not self._question:
                raise BadRequestError("rank_method='longllmlingua' ranks by the question: give one")
            question = self._scorer.tokenize(self._question + QUESTION_SUFFIX).ids
            started = time.perf_counter()
            relevance = question_scores(
                self._scorer, [t.ids for t in self._tokens], question, how.question_placement
            )
            self.scorer_seconds += time.perf_counter() - started
        ranked = np.argsort(-relevance, kind="stable").tolist()
        costs = [self._compressor.count(text) for text in self._contexts]
        kept = keep_within_budget(ranked, costs, how.context_tokens(budget), how.force_context_ids)
        order = reorder(kept, ranked, how.reorder)
        weights = dynamic_weights(order, ranked, how.dynamic_ratio) if how.dynamic_ratio else None
        return order, weights


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
