"""LlamaIndex: TersifyPostprocessor in place of LongLLMLinguaPostprocessor.

pip install 'tersify[llamaindex]'; in a query engine:
``index.as_query_engine(node_postprocessors=[TersifyPostprocessor(rate=0.5)])``.
"""

from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from tersify import Compressor
from tersify.integrations.llamaindex import TersifyPostprocessor

nodes = [
    NodeWithScore(node=TextNode(text=text, id_=f"node-{i}"), score=0.5)
    for i, text in enumerate(
        [
            "The library's roof was repaired in March.",
            "The committee approved the budget on Tuesday.",
            "Tea is served in the reading room at four.",
        ]
    )
]
post = TersifyPostprocessor(compressor=Compressor("smollm2-135m"), rate=0.5)
for item in post.postprocess_nodes(nodes, QueryBundle("When was the budget approved?")):
    print(item.node.node_id, item.node.metadata, item.node.get_content())
