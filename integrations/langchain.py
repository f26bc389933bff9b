"""LangChain: ``TersifyCompressor``, a document compressor in place of ``LLMLinguaCompressor``.

Needs ``pip install 'tersify[langchain]'``. Use it where a ``BaseDocumentCompressor`` goes,
for example in a ``ContextualCompressionRetriever``:

>>> from tersify.integrations.langchain import TersifyCompressor
>>> compressor = TersifyCompressor(rate=0.5)  # doctest: +SKIP
>>> compressor.compress_documents(documents, query="Who approved the plan?")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

from tersify.integrations.documents import check_documents, compress_documents
from tersify.integrations.dropin import DropIn

try:
    from langchain_core.callbacks import Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tersify.integrations.langchain needs LangChain: pip install 'tersify[langchain]'"
    ) from exc

RANK_KEY = "tersify_rank"
KEPT_KEY = "tersify_kept_fraction"


class TersifyCompressor(BaseDocumentCompressor, DropIn):  # type: ignore[misc]
    """Ranks the documents against the query, drops the least relevant, shortens the rest.

    The survivors come back most relevant first, each with its ``id`` and metadata, plus
    ``tersify_rank`` (0 is the most relevant) and ``tersify_kept_fraction`` (its size after
    over before, in target tokens). ``compressor`` is a :class:`tersify.Compressor`; when
    it is left out, the default scorer is opened on first use. The other options are
    :class:`~tersify.integrations.documents.DocumentPolicy`'s.
    """

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
        survivors = compress_documents(self.opened(), texts, query, self.policy())
        out = []
        for kept in survivors:
            source = documents[kept.index]
            metadata = {**source.metadata, RANK_KEY: kept.rank, KEPT_KEY: kept.kept_fraction}
            out.append(Document(page_content=kept.text, metadata=metadata, id=source.id))
        return out
