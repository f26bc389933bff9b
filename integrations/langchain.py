"""LangChain: ``TersifyCompressor``, a document compressor in place of ``LLMLinguaCompressor``.

Needs ``pip install 'tersify[langchain]'``. Use it where a ``BaseDocumentCompressor`` goes,
for example in a ``ContextualCompressionRetriever``:

>>> from tersify.integrations.langchain import TersifyCompressor
>>> compressor = TersifyCompressor(rate=0.5)  # doctest: +SKIP
>>> compressor.compress_documents(documents, query="Who approved the plan?")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tersify.compressor import Compressor
from tersify.integrations.documents import DocumentPolicy, check_documents, compress_documents

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from pydantic import ConfigDict, PrivateAttr
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tersify.integrations.langchain needs LangChain: pip install 'tersify[langchain]'"
    ) from exc

RANK_KEY = "tersify_rank"
KEPT_KEY = "tersify_kept_fraction"


class TersifyCompressor(BaseDocumentCompressor):
    """Ranks the documents against the query, drops the least relevant, shortens the rest.

    The survivors come back most relevant first, each with its ``id`` and metadata, plus
    ``tersify_rank`` (0 is the most relevant) and ``tersify_kept_fraction`` (its size after
    over before, in target tokens). ``compressor`` is a :class:`tersify.Compressor`; when
    it is left out, the default scorer is opened on first use.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Compressor | None = None
    rate: float | None = 0.5
    target_token: int | None = None
    instruction: str = ""
    rank_method: str = "longllmlingua"
    reorder: str = "sort"
    context_budget: str = "+100"
    dynamic_ratio: float = 0.3
    question_aware: bool = True
    _opened: Compressor | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        """Check the options now, not at the first query."""
        super().model_post_init(context)
        self._policy()

    def _policy(self) -> DocumentPolicy:
        return DocumentPolicy(
            rate=self.rate,
            target_token=self.target_token,
            instruction=self.instruction,
            rank_method=self.rank_method,
            reorder=self.reorder,
            context_budget=self.context_budget,
            dynamic_ratio=self.dynamic_ratio,
            question_aware=self.question_aware,
        )

    def _compressor(self) -> Compressor:
        if self.compressor is not None:
            return self.compressor
        if self._opened is None:
            self._opened = Compressor()
        return self._opened

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """The surviving documents, compressed, most relevant first."""
        if not documents:
            return []
        texts = check_documents([d.page_content for d in documents])
        survivors = compress_documents(self._compressor(), texts, query, self._policy())
        out = []
        for kept in survivors:
            source = documents[kept.index]
            metadata = {**source.metadata, RANK_KEY: kept.rank, KEPT_KEY: kept.kept_fraction}
            out.append(Document(page_content=kept.text, metadata=metadata, id=source.id))
        return out
