"""Compress a list of documents for a query, and get each survivor's own compressed text.

The framework drop-ins (LangChain, LlamaIndex) share this: the documents are the
contexts of one question-aware compression (LongLLMLingua's coarse step ranks and drops
them, the token level shortens the rest), and the compression's explanation says what
each document kept, its rank and its place in the prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tersify.assemble import join_prompt
from tersify.budget import DEFAULT_RATE, Budget
from tersify.coarse import ContextFilter
from tersify.compressor import CompressionResult, Compressor
from tersify.errors import BadRequestError, InternalError
from tersify.limits import Deadline
from tersify.scoring import Scorer
from tersify.tokens import TokenFilter


@dataclass(frozen=True)
class CompressedDocument:
    """One surviving document: its index in the input, rank, compressed text, kept fraction."""

    index: int
    rank: int
    text: str
    kept_fraction: float


@dataclass(frozen=True)
class DocumentPolicy:
    """How documents are compressed: the budget and the ranking.

    ``rate`` is the fraction of the documents' text kept (the query and instruction are
    kept on top); ``target_token``, when given, is the whole prompt's size instead.

    The defaults are the quality harness's question-aware mode (README, "Quality"): rank
    with LongLLMLingua's question-conditioned perplexity, give better-ranked documents more
    room (``dynamic_ratio``), score tokens by what the question makes predictable
    (``question_aware``), and return the survivors most relevant first (``reorder="sort"``).
    """

    rate: float | None = 0.5
    target_token: int | None = None
    instruction: str = ""
    rank_method: str = "longllmlingua"
    reorder: str = "sort"
    context_budget: str = "+100"
    dynamic_ratio: float = 0.3
    question_aware: bool = True

    def __post_init__(self) -> None:
        Budget(rate=self.rate, target_token=self.target_token)  # checks both
        self.context_filter()  # checks the ranking options

    def context_filter(self) -> ContextFilter:
        """The coarse step's options."""
        return ContextFilter(
            rank_method=self.rank_method,  # type: ignore[arg-type]  # checked by ContextFilter
            reorder=self.reorder,  # type: ignore[arg-type]
            context_budget=self.context_budget,
            dynamic_ratio=self.dynamic_ratio,
        )

    def token_filter(self, query: str, scorer: Scorer) -> TokenFilter:
        """LongLLMLingua's question-aware token scores when asked and the query fits."""
        aware = self.question_aware and question_fits(scorer, query)
        return TokenFilter(condition_on_question=aware, contrastive=aware)


def compress_documents(
    compressor: Compressor,
    texts: Sequence[str],
    query: str,
    policy: DocumentPolicy,
    deadline: Deadline | None = None,
) -> list[CompressedDocument]:
    """The surviving documents of ``texts`` for ``query``, compressed, in the prompt's order."""
    if not any(texts):
        return []
    result = compressor.compress(
        list(texts),
        question=query,
        instruction=policy.instruction,
        target_token=policy.target_token
        or context_target(compressor, texts, query, policy.instruction, policy.rate),
        context_filter=policy.context_filter(),
        token_filter=policy.token_filter(query, compressor.scorer),
        deadline=deadline,
        explain=True,
    )
    parts = kept_parts(result, texts)
    ranks = {c.index: c.rank for c in result.explanation.contexts} if result.explanation else {}
    out = []
    for position, (index, text) in enumerate(parts):
        rank = ranks.get(index)
        origin = compressor.count(texts[index])
        kept = compressor.count(text) / origin if origin else 1.0
        out.append(
            CompressedDocument(index, position if rank is None else rank, text, min(1.0, kept))
        )
    return out


def question_fits(scorer: Scorer, question: str) -> bool:
    """Whether a scorer window can hold ``question`` before its text and still have half left.

    Question-aware scores put the question before every window; a longer question is
    scored plainly rather than refused.
    """
    return bool(question) and len(scorer.tokenize(question).ids) <= scorer.max_window // 2


def context_target(
    compressor: Compressor,
    texts: Sequence[str],
    question: str,
    instruction: str,
    rate: float | None,
) -> int:
    """The whole prompt's budget when ``rate`` is the fraction kept of the texts alone.

    The instruction and question are kept verbatim on top, so a long question over short
    documents is never refused for want of room (a plain ``rate`` counts them in).
    """
    fixed = compressor.count(join_prompt(instruction, [], question))
    whole = compressor.count(join_prompt(instruction, list(texts), question))
    fraction = DEFAULT_RATE if rate is None else rate
    return max(fixed + 1, fixed + math.floor((whole - fixed) * fraction + 0.5))


def kept_parts(result: CompressionResult, texts: Sequence[str]) -> list[tuple[int, str]]:
    """``(context index, its kept text)`` for each context the prompt holds, in its order.

    ``result`` must come from ``compress(..., explain=True)`` on ``texts``.
    """
    if result.explanation is None or len(result.explanation.contexts) != len(texts):
        raise InternalError("kept_parts needs the explanation of a compression of these texts")
    placed = sorted(
        (c.position, c.index, c.kept_text(texts[c.index]))
        for c in result.explanation.contexts
        if c.position is not None
    )
    return [(index, text) for _, index, text in placed if text]


def check_documents(texts: Sequence[object]) -> list[str]:
    """The documents' texts, checked."""
    out = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise BadRequestError(f"document {index} has no text: its content must be a string")
        out.append(text)
    return out
