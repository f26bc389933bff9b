"""One compression's selection: tokens, units, surprisal, which contexts and units stay.

Each piece is computed once and only when needed: the surprisal of a context is reused
by perplexity ranking and token scoring; question-conditioned surprisal only when asked.
What the scorer costs is measured by the scorer wrapper (``tersify.metering``), not here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tersify.assemble import fit_budget
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
from tersify.ranking import choose_sentences, relevance
from tersify.scoring import FloatArray, IntArray, Ranker, Scorer, Tokenized, Units, group_units
from tersify.sentences import SentenceFilter
from tersify.tokens import TokenFilter, selection_order, unit_scores
from tersify.windows import WindowPlan, iterative_losses, token_losses

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class ContextRanking:
    """What the coarse filter decided: contexts kept in prompt order, all contexts by rank.

    ``priority`` (with ``keep_sentences``) gives each unit of each kept context the rank of
    its sentence in keeping order: units are kept sentence by sentence in that order.
    ``scored`` are the contexts whose token scores can change what is kept (``None``: all).
    """

    order: list[int]
    ranked: list[int]
    weights: FloatArray | None
    priority: dict[int, npt.NDArray[np.float64]] | None = None
    scored: frozenset[int] | None = None


@dataclass(frozen=True)
class Fitted:
    """The prompt that fits, its size, and which units it keeps (flat over the order)."""

    prompt: str
    tokens: int
    keep: BoolArray
    scores: list[FloatArray]


class Selection:
    """One compression's scorer work and choices over ``texts``, each computed once."""

    def __init__(
        self,
        scorer: Scorer,
        window: WindowPlan,
        count: Callable[[str], int],
        texts: Sequence[str],
        question: str,
        token_filter: TokenFilter,
        keep_fraction: float = 0.5,
        ranker: Callable[[], Ranker] | None = None,
    ) -> None:
        if token_filter.needs_question and not question:
            raise BadRequestError(
                "condition_in_question / condition_compare score tokens against the "
                "question: give a question"
            )
        self._scorer = scorer
        self._window = window
        self._count = count
        self._texts = list(texts)
        self._question = question
        self.token_filter = token_filter
        self._keep_fraction = keep_fraction
        self._ranker = ranker
        self.tokens: list[Tokenized] = [scorer.tokenize(text) for text in self._texts]
        self._surprisal: dict[int, FloatArray] = {}
        self._units: dict[int, Units] = {}

    @property
    def n_scorer_tokens(self) -> int:
        """The texts' size in scorer tokens (the question once more when scores use it)."""
        size = sum(len(t.ids) for t in self.tokens)
        if self.token_filter.needs_question:
            size += len(self.question_ids())
        return size

    def question_ids(self, suffix: str = "") -> IntArray:
        """The question (and ``suffix``) in scorer ids."""
        return self._scorer.tokenize(self._question + suffix).ids

    def units(self, index: int) -> Units:
        """The units of text ``index``, grouped once."""
        if index not in self._units:
            self._units[index] = group_units(self.tokens[index].offsets, self._texts[index])
        return self._units[index]

    def _losses(self, indices: Sequence[int], prefix: IntArray | None) -> list[FloatArray]:
        ids = [self.tokens[i].ids for i in indices]
        if self.token_filter.iterative:
            return iterative_losses(self._scorer, ids, self._window, self._keep_fraction, prefix)
        return token_losses(self._scorer, ids, self._window, prefix)

    def surprisal(self, indices: Sequence[int]) -> list[FloatArray]:
        """Surprisal of every token of the texts ``indices``, computed once each."""
        missing = [i for i in indices if i not in self._surprisal]
        for i, loss in zip(missing, self._losses(missing, None), strict=True):
            self._surprisal[i] = loss
        return [self._surprisal[i] for i in indices]

    def unit_scores(
        self, order: Sequence[int], only: Collection[int] | None = None
    ) -> list[FloatArray]:
        """Unit scores of the texts in ``order``, as the token filter asks.

        With ``only``, texts outside it are not scored (their units score 0): a choice
        already made without scores (whole sentences kept) needs none.
        """
        if only is not None:
            wanted = [i for i in order if i in only]
            scored = dict(zip(wanted, self.unit_scores(wanted), strict=True))
            return [
                scored.get(i, np.zeros(len(self.units(i)), dtype=np.float32)) for i in order
            ]
        token_filter = self.token_filter
        uses_plain = not token_filter.condition_on_question or token_filter.contrastive
        plain = self.surprisal(order) if uses_plain else None
        conditioned = (
            self._losses(order, self.question_ids()) if token_filter.needs_question else None
        )
        return [
            unit_scores(
                self.units(i),
                None if plain is None else plain[k],
                None if conditioned is None else conditioned[k],
                token_filter,
            )
            for k, i in enumerate(order)
        ]

    def fit(
        self,
        order: Sequence[int],
        build: Callable[[BoolArray], str],
        target: int,
        weights: FloatArray | None,
        frozen: Collection[int] = (),
        sentences: SentenceFilter | None = None,
        priority: dict[int, npt.NDArray[np.float64]] | None = None,
        scored: Collection[int] | None = None,
    ) -> Fitted:
        """Keep units in selection order until the built prompt fits ``target``.

        Units of ``frozen`` texts are always kept. With ``sentences``, only units of the
        kept sentences (and forced units) may be kept. With ``priority`` (per text, a rank
        per unit), units go by that rank first and by score within it. With ``scored``,
        only those texts reach the scorer (the others' units score 0).
        """
        units = [self.units(i) for i in order]
        scores = self.unit_scores(order, scored)
        forced = [
            np.ones(len(u), dtype=np.bool_)
            if i in frozen
            else self.token_filter.forced(self._texts[i], u)
            for i, u in zip(order, units, strict=True)
        ]
        ranks = None if priority is None else [priority[i] for i in order]
        ranked = selection_order(scores, forced, weights, ranks)
        if sentences is not None:
            texts = [self._texts[i] for i in order]
            allowed = sentences.allowed(texts, units, scores, self._count, target)
            mask = np.concatenate(allowed) | np.concatenate(forced)
            ranked = ranked[mask[ranked]]
        n_units = sum(len(u) for u in units)
        prompt, tokens, keep = fit_budget(ranked, build, self._count, target, n_units)
        return Fitted(prompt=prompt, tokens=tokens, keep=keep, scores=scores)

    def rank_contexts(self, context_filter: ContextFilter, budget: int) -> ContextRanking:
        """Rank the texts as contexts, keep the best within the context budget, reorder.

        Also gives each kept context a weight when the filter asks for a dynamic ratio.
        """
        n = len(self._texts)
        bad = [i for i in context_filter.force_context_ids if i >= n]
        if bad:
            raise BadRequestError(f"force_context_ids {bad} are not among the {n} contexts")
        if context_filter.rank_method == "sentbert":
            return self._rank_by_ranker(context_filter, budget)
        if context_filter.rank_method == "bm25":
            relevance = bm25_scores(self._texts, self._question)
        elif context_filter.rank_method == "llmlingua":
            relevance = np.array(
                [float(np.mean(x)) if len(x) else 0.0 for x in self.surprisal(range(n))]
            )
        else:
            if not self._question:
                raise BadRequestError("rank_method='longllmlingua' ranks by the question: give one")
            relevance = question_scores(
                self._scorer,
                [t.ids for t in self.tokens],
                self.question_ids(QUESTION_SUFFIX),
                context_filter.question_placement,
            )
        ranked = np.argsort(-relevance, kind="stable").tolist()
        costs = [self._count(text) for text in self._texts]
        room = context_filter.context_tokens(budget)
        kept = keep_within_budget(ranked, costs, room, context_filter.force_context_ids)
        order = reorder(kept, ranked, context_filter.reorder)
        weights = None
        if context_filter.dynamic_ratio:
            share = context_filter.dynamic_ratio
            weights = dynamic_weights(order, ranked, share, self._keep_fraction)
        return ContextRanking(order=order, ranked=ranked, weights=weights)

    def _rank_by_ranker(self, context_filter: ContextFilter, budget: int) -> ContextRanking:
        """``sentbert``: rank by the ranker; with ``keep_sentences``, choose whole sentences.

        Only contexts that keep a sentence (or are forced, or hold the first sentence left
        out, which the token level trims to fill the budget) are kept; of them, only the
        forced ones and the one holding that first sentence left out reach the scorer: the
        whole sentences before it are kept whatever their tokens score.
        """
        if not self._question:
            raise BadRequestError("rank_method='sentbert' ranks by the question: give one")
        if self._ranker is None:
            raise BadRequestError("rank_method='sentbert' needs a ranker; this compressor has none")
        scored = relevance(self._ranker(), self._question, self._texts)
        ranked = np.argsort(-scored.documents, kind="stable").tolist()
        forced = context_filter.force_context_ids
        if not context_filter.keep_sentences:
            costs = [self._count(text) for text in self._texts]
            kept = keep_within_budget(
                ranked, costs, context_filter.context_tokens(budget), forced
            )
            order = reorder(kept, ranked, context_filter.reorder)
            weights = None
            if context_filter.dynamic_ratio:
                weights = dynamic_weights(
                    order, ranked, context_filter.dynamic_ratio, self._keep_fraction
                )
            return ContextRanking(order=order, ranked=ranked, weights=weights)
        keeping, chosen = choose_sentences(scored, self._texts, self._count, budget)
        rank_of = {pair: r for r, pair in enumerate(keeping)}
        holding = {c for c, _ in keeping[: chosen + 1]}
        boundary = {c for c, _ in keeping[chosen : chosen + 1]}
        kept = list(dict.fromkeys([*forced, *sorted(holding, key=ranked.index)]))
        order = reorder(kept, ranked, context_filter.reorder)
        priority: dict[int, npt.NDArray[np.float64]] = {}
        for c in order:
            starts = np.asarray(scored.sentences[c], dtype=np.int64)
            sentence_of = np.searchsorted(starts, self.units(c).starts, side="right") - 1
            ranks = np.array(
                [rank_of[(c, int(k))] for k in range(len(starts))], dtype=np.float64
            )
            priority[c] = ranks[np.clip(sentence_of, 0, len(starts) - 1)]
        return ContextRanking(
            order=order,
            ranked=ranked,
            weights=None,
            priority=priority,
            scored=frozenset(boundary | set(forced)),
        )
