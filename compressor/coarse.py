"""Context-level filtering (LongLLMLingua's coarse step): rank, keep, reorder.

Contexts are ranked by a sentence-embedding ranker against the question, with BM25
beside it (``sentbert``, :mod:`tersify.ranking`), by how well each lets the scorer predict
the question (``longllmlingua``), by their own perplexity (``llmlingua``), or by BM25
against the question (``bm25``); the best are kept while they fit a context budget, then
reordered against "lost in the middle", and may get a compression rate by rank (dynamic
ratio). With ``keep_sentences`` (``sentbert`` only) whole sentences are chosen instead.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, IntArray, Scorer
from tersify.validate import choice, fraction, non_negative_int, show

RankMethod = Literal["sentbert", "longllmlingua", "llmlingua", "bm25"]
Reorder = Literal["original", "sort", "two_stage"]
Placement = Literal["after", "before"]
RANK_METHODS = ("sentbert", "longllmlingua", "llmlingua", "bm25")
REORDERS = ("original", "sort", "two_stage")
# LongLLMLingua's question suffix for question-aware ranking.
QUESTION_SUFFIX = " We can get the answer to this question in the given documents."
_BUDGET = re.compile(r"^\s*([+\-*])\s*([0-9]{1,9}(?:\.[0-9]{1,6})?)\s*$")
_TERMS = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")


@dataclass(frozen=True)
class ContextFilter:
    """How to choose among several contexts before token-level compression.

    ``context_budget`` is LLMLingua's string, applied to the prompt's token budget without
    ``eval``: ``"+100"`` (100 more), ``"-50"``, ``"*1.5"``. ``question_placement`` is where
    the question goes when ``longllmlingua`` scores a context: ``"after"`` scores
    log p(question | context), ``"before"`` log p(context | question). ``keep_sentences``
    (with ``sentbert``) keeps whole sentences, the most relevant first, from every context
    (:func:`tersify.ranking.sentence_plan`) instead of whole contexts within the budget.
    """

    rank_method: RankMethod = "longllmlingua"
    context_budget: str = "+100"
    force_context_ids: tuple[int, ...] = ()
    reorder: Reorder = "original"
    dynamic_ratio: float = 0.0
    question_placement: Placement = "after"
    keep_sentences: bool = False

    def __post_init__(self) -> None:
        choice("rank_method", self.rank_method, RANK_METHODS)
        choice("reorder", self.reorder, REORDERS)
        choice("question_placement", self.question_placement, ("after", "before"))
        fraction("dynamic_ratio", self.dynamic_ratio)
        for i, index in enumerate(self.force_context_ids):
            non_negative_int(f"force_context_ids[{i}]", index)
        self.context_tokens(100)  # checks the budget string
        if self.keep_sentences and self.rank_method != "sentbert":
            raise BadRequestError(
                f"keep_sentences needs rank_method='sentbert', not {show(self.rank_method)}"
            )

    def context_tokens(self, budget: int) -> int:
        """The context budget for a prompt budget of ``budget`` tokens.

        >>> ContextFilter(context_budget="*1.5").context_tokens(200)
        300
        """
        match = _BUDGET.match(self.context_budget)
        if match is None:
            raise BadRequestError(
                f"context_budget={show(self.context_budget)} must look like '+100', '-50' or "
                "'*1.5' (at most 9 digits)"
            )
        op, value = match.group(1), float(match.group(2))
        result = {"+": budget + value, "-": budget - value, "*": budget * value}[op]
        return max(0, math.floor(result))


def question_scores(
    scorer: Scorer, contexts: Sequence[IntArray], question: IntArray, placement: Placement
) -> FloatArray:
    """Mean log-prob of the question given each context (or of each context given the question).

    A context longer than a window is cut into chunks; it scores as its best chunk. All
    chunks of all contexts go to the scorer in one call.
    """
    bos = [] if scorer.bos_token_id is None else [scorer.bos_token_id]
    room = scorer.max_window - len(bos) - len(question)
    if room < 16:
        raise BadRequestError(
            f"the question ({len(question)} scorer tokens) leaves no room in a "
            f"{scorer.max_window}-token window for context; shorten it"
        )
    windows, owners, spans = [], [], []
    for index, ids in enumerate(contexts):
        for start in range(0, max(1, len(ids)), room):
            chunk = ids[start : start + room]
            if placement == "after":
                window = np.concatenate([bos, chunk, question]).astype(np.int64)
                span = (len(bos) + len(chunk), len(window))
            else:
                window = np.concatenate([bos, question, chunk]).astype(np.int64)
                span = (len(bos) + len(question), len(window))
            windows.append(window)
            owners.append(index)
            spans.append(span)
    rows = scorer.logprobs(windows)
    best = np.full(len(contexts), -np.inf, dtype=np.float32)
    for owner, (start, stop), row in zip(owners, spans, rows, strict=True):
        if stop > start:
            best[owner] = max(best[owner], float(np.mean(row[start:stop])))
    return best


def bm25_scores(
    contexts: Sequence[str], question: str, k1: float = 1.5, b: float = 0.75
) -> FloatArray:
    """Okapi BM25 of each context against the question's terms (words and CJK characters).

    >>> bm25_scores(["the cat sat", "a dog ran", "cats and dogs"], "dog").argmax()
    np.int64(1)
    """
    docs = [Counter(_TERMS.findall(text.lower())) for text in contexts]
    query = set(_TERMS.findall(question.lower()))
    lengths = np.array([sum(d.values()) for d in docs], dtype=np.float64)
    average = float(lengths.mean()) or 1.0
    scores = np.zeros(len(docs), dtype=np.float64)
    for term in query:
        having = sum(1 for d in docs if term in d)
        idf = math.log(1 + (len(docs) - having + 0.5) / (having + 0.5))
        for i, doc in enumerate(docs):
            tf = doc.get(term, 0)
            scores[i] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / average))
    return scores.astype(np.float32)


def keep_within_budget(
    ranked: Sequence[int], costs: Sequence[int], budget: int, forced: Sequence[int] = ()
) -> list[int]:
    """Forced contexts, then the best ranked ones until the budget is passed (LLMLingua's rule).

    The context that crosses the budget is kept (token-level compression trims it), and
    at least one context always is.

    >>> keep_within_budget([2, 0, 1], [50, 60, 70], 100)
    [2, 0]
    """
    kept = list(dict.fromkeys(forced))
    total = sum(costs[i] for i in kept)
    for index in ranked:
        if total >= budget and kept:
            break
        if index not in kept:
            kept.append(index)
            total += costs[index]
    return kept


def reorder(kept: Sequence[int], ranked: Sequence[int], order: Reorder) -> list[int]:
    """Order the kept contexts: as they came, best first, or best at both ends (two_stage).

    >>> reorder([0, 1, 2, 3], [3, 1, 0, 2], "two_stage")
    [3, 0, 2, 1]
    """
    position = {index: p for p, index in enumerate(ranked)}
    by_rank = sorted(kept, key=lambda i: position[i])
    if order == "sort":
        return by_rank
    if order == "two_stage":
        return by_rank[0::2] + by_rank[1::2][::-1]
    return sorted(kept)


def dynamic_weights(
    order: Sequence[int], ranked: Sequence[int], strength: float, overall: float
) -> FloatArray:
    """Relative kept fraction of each context in ``order``: more for better-ranked ones.

    LLMLingua's meaning of ``dynamic_context_compression_ratio``: the best context keeps
    ``overall + strength`` of itself, the worst ``overall - strength``, linear in rank
    (never below a sliver); returned relative to ``overall``.

    >>> dynamic_weights([0, 1, 2], [2, 1, 0], 0.2, 0.4).round(2).tolist()
    [0.5, 1.0, 1.5]
    """
    kept = set(order)
    position = {index: p for p, index in enumerate(i for i in ranked if i in kept)}
    span = max(1, len(order) - 1)
    floor = 0.05 * overall
    return np.array(
        [
            max(floor, overall + strength * (1.0 - 2.0 * position[i] / span)) / overall
            for i in order
        ],
        dtype=np.float32,
    )
