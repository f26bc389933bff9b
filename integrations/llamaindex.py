"""LlamaIndex: ``TersifyPostprocessor``, in place of ``LongLLMLinguaPostprocessor``.

Needs ``pip install 'tersify[llamaindex]'``. Put it in a query engine's
``node_postprocessors``:

>>> from tersify.integrations.llamaindex import TersifyPostprocessor
>>> engine = index.as_query_engine(
...     node_postprocessors=[TersifyPostprocessor(rate=0.5)])  # doctest: +SKIP
"""

from __future__ import annotations

from tersify.integrations.documents import check_documents, compress_documents
from tersify.integrations.dropin import DropIn

try:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tersify.integrations.llamaindex needs LlamaIndex: pip install 'tersify[llamaindex]'"
    ) from exc

RANK_KEY = "tersify_rank"
KEPT_KEY = "tersify_kept_fraction"


class TersifyPostprocessor(BaseNodePostprocessor, DropIn):  # type: ignore[misc]
    """Ranks the nodes against the query, drops the least relevant, shortens the rest.

    Unlike ``LongLLMLinguaPostprocessor``, which returns one node holding the whole
    compressed prompt, each surviving node comes back on its own, most relevant first,
    with its ``id_``, metadata, relationships and score, its text compressed, and
    ``tersify_rank`` and ``tersify_kept_fraction`` in its metadata. Without a query the
    nodes are ranked by their own perplexity.
    """

    @classmethod
    def class_name(cls) -> str:
        """LlamaIndex's name for this component."""
        return "TersifyPostprocessor"

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
        policy = self.policy(rank_method=self.rank_method if query else "llmlingua")
        out = []
        for kept in compress_documents(self.opened(), texts, query, policy):
            source = nodes[kept.index]
            node = source.node.model_copy(deep=True)
            node.set_content(kept.text)
            node.metadata[RANK_KEY] = kept.rank
            node.metadata[KEPT_KEY] = kept.kept_fraction
            out.append(NodeWithScore(node=node, score=source.score))
        return out
