"""LlamaIndex: ``TersifyPostprocessor``, in place of ``LongLLMLinguaPostprocessor``.

Needs ``pip install 'tersify[llamaindex]'``. Put it in a query engine's
``node_postprocessors``:

>>> from tersify.integrations.llamaindex import TersifyPostprocessor
>>> engine = index.as_query_engine(
...     node_postprocessors=[TersifyPostprocessor(rate=0.5)])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from tersify.compressor import Compressor
from tersify.integrations.documents import DocumentPolicy, check_documents, compress_documents

try:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
    from pydantic import PrivateAttr
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tersify.integrations.llamaindex needs LlamaIndex: pip install 'tersify[llamaindex]'"
    ) from exc

RANK_KEY = "tersify_rank"
KEPT_KEY = "tersify_kept_fraction"


class TersifyPostprocessor(BaseNodePostprocessor):
    """Ranks the nodes against the query, drops the least relevant, shortens the rest.

    Unlike ``LongLLMLinguaPostprocessor``, which returns one node holding the whole
    compressed prompt, each surviving node comes back on its own, most relevant first,
    with its ``id_``, metadata, relationships and score, its text compressed, and
    ``tersify_rank`` and ``tersify_kept_fraction`` in its metadata. Without a query the
    nodes are ranked by their own perplexity.
    """

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
        self._policy(has_query=True)

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name for this component."""
        return "TersifyPostprocessor"

    def _policy(self, *, has_query: bool) -> DocumentPolicy:
        return DocumentPolicy(
            rate=self.rate,
            target_token=self.target_token,
            instruction=self.instruction,
            rank_method=self.rank_method if has_query else "llmlingua",
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

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        if not nodes:
            return []
        query = query_bundle.query_str if query_bundle is not None else ""
        texts = check_documents(
            [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        )
        policy = self._policy(has_query=bool(query))
        out = []
        for kept in compress_documents(self._compressor(), texts, query, policy):
            source = nodes[kept.index]
            node = source.node.model_copy(deep=True)
            node.set_content(kept.text)
            node.metadata[RANK_KEY] = kept.rank
            node.metadata[KEPT_KEY] = kept.kept_fraction
            out.append(NodeWithScore(node=node, score=source.score))
        return out
