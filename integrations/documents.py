"""Compress a list of documents for a query, and get each survivor's own compressed text.

The framework drop-ins (LangChain, LlamaIndex) share this: the documents are the
contexts of one question-aware compression (LongLLMLingua's coarse step ranks and drops
them, the token level shortens the rest), and the compression's explanation says what
each document kept, its rank and its place in the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tersify.coarse import ContextFilter
from tersify.compressor import CompressionResult, Compressor
from tersify.errors import BadRequestError, InternalError
from tersify.limits import Deadline
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
    """How documents are compressed: the budget (``rate`` or ``target_token``) and ranking.

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
        self.context_filter()  # checks the ranking options

    def context_filter(self) -> ContextFilter:
        """The coarse step's options."""
        return ContextFilter(
            rank_method=self.rank_method,  # type: ignore[arg-type]  # checked by ContextFilter
            reorder=self.reorder,  # type: ignore[arg-type]
            context_budget=self.context_budget,
            dynamic_ratio=self.dynamic_ratio,
        )

    def token_filter(self, query: str) -> TokenFilter:
        """LongLLMLingua's question-aware token scores when there is a query (and asked)."""
        aware = self.question_aware and bool(query)
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
        rate=policy.rate if policy.target_token is None else None,
        target_token=policy.target_token,
        context_filter=policy.context_filter(),
        token_filter=policy.token_filter(query),
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
