"""One compression's scorer work: tokens, units, losses, context filtering, fitting.

Each piece is computed once and only when needed: plain losses of a context are reused
by perplexity ranking and token scoring; question-conditioned losses only when asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

import numpy as np
import numpy.typing as npt

from tersify.coarse import (
    QUESTION_SUFFIX,
    ContextFilter,
    bm25_scores,
    dynamic_weights,
    keep_within_budget,
    question_scores,
    reorder,
)
from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, IntArray, Scorer, Units, group_units
from tersify.select import fit_budget
from tersify.sentences import SentenceFilter
from tersify.tokens import TokenFilter, selection_order, unit_scores
from tersify.windows import WindowPlan, iterative_losses, token_losses


class Pipeline:
    """One compression's scorer work, each piece computed once and only when needed."""

    def __init__(
        self,
        scorer: Scorer,
        window: WindowPlan,
        count: Callable[[str], int],
        contexts: list[str],
        question: str,
        how: TokenFilter,
        keep_fraction: float = 0.5,
    ) -> None:
        if how.needs_question and not question:
            raise BadRequestError(
                "condition_in_question / condition_compare score tokens against the "
                "question: give a question"
            )
        self._scorer = scorer
        self._window = window
        self._count = count
        self._contexts = contexts
        self._question = question
        self.how = how
        self._keep_fraction = keep_fraction
        self._tokens = [self._scorer.tokenize(text) for text in contexts]
        self._plain: dict[int, FloatArray] = {}
        self._units: dict[int, Units] = {}
        self.scorer_tokens = 0
        self.scorer_seconds = 0.0

    def units(self, index: int) -> Units:
        """The units of text ``index``, grouped once."""
        if index not in self._units:
            self._units[index] = group_units(
                self._tokens[index].offsets, len(self._contexts[index])
            )
        return self._units[index]

    def _timed_losses(self, indices: Sequence[int], prefix: IntArray | None) -> list[FloatArray]:
        started = time.perf_counter()
        ids = [self._tokens[i].ids for i in indices]
        if self.how.iterative:
            losses = iterative_losses(self._scorer, ids, self._window, self._keep_fraction, prefix)
        else:
            losses = token_losses(self._scorer, ids, self._window, prefix)
        self.scorer_seconds += time.perf_counter() - started
        self.scorer_tokens += sum(len(x) for x in ids)
        return losses

    def plain(self, indices: Sequence[int]) -> list[FloatArray]:
        """Surprisal of every token of the texts ``indices``, computed once each."""
        missing = [i for i in indices if i not in self._plain]
        for i, loss in zip(missing, self._timed_losses(missing, None), strict=True):
            self._plain[i] = loss
        return [self._plain[i] for i in indices]

    def fit(
        self,
        order: Sequence[int],
        units: Sequence[Units],
        build: Callable[[npt.NDArray[np.bool_]], str],
        target: int,
        weights: FloatArray | None,
        frozen: Collection[int] = (),
        sentences: SentenceFilter | None = None,
    ) -> tuple[str, int]:
        """Keep units in selection order until the built prompt fits ``target``.

        With ``sentences``, only units of the kept sentences (and forced units) may be kept.
        """
        scores = self.unit_scores(order)
        forced = [
            np.ones(len(u), dtype=np.bool_)
            if i in frozen
            else self.how.forced(self._contexts[i], u)
            for i, u in zip(order, units, strict=True)
        ]
        ranked = selection_order(scores, forced, weights)
        if sentences is not None:
            texts = [self._contexts[i] for i in order]
            allowed = sentences.allowed(texts, units, scores, self._count, target)
            mask = np.concatenate(allowed) | np.concatenate(forced)
            ranked = ranked[mask[ranked]]
        n_units = sum(len(u) for u in units)
        return fit_budget(ranked, build, self._count, target, n_units)

    def unit_scores(self, order: Sequence[int]) -> list[FloatArray]:
        """Unit scores of the texts in ``order``, as the token filter asks."""
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
            self.scorer_tokens += sum(len(t.ids) + len(question) for t in self._tokens)
        ranked = np.argsort(-relevance, kind="stable").tolist()
        costs = [self._count(text) for text in self._contexts]
        kept = keep_within_budget(ranked, costs, how.context_tokens(budget), how.force_context_ids)
        order = reorder(kept, ranked, how.reorder)
        weights = None
        if how.dynamic_ratio:
            weights = dynamic_weights(order, ranked, how.dynamic_ratio, self._keep_fraction)
        return order, weights
