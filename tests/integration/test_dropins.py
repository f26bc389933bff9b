"""The framework drop-ins, each with its real framework: LangChain, LlamaIndex, LiteLLM."""

from __future__ import annotations

import asyncio

from tersify import Compressor

from texts import FACT, QUESTION, needle_documents


def _documents() -> list[str]:
    return needle_documents(FACT, 500, 200)


def _is_subsequence(part: str, text: str) -> bool:
    it = iter(text)
    return all(ch in it for ch in part)


def test_langchain_compressor(smollm2_compressor: Compressor) -> None:
    from langchain_core.documents import BaseDocumentCompressor, Document

    from tersify.integrations.langchain import TersifyCompressor

    docs = [
        Document(page_content=t, metadata={"source": f"doc{i}"}, id=f"id{i}")
        for i, t in enumerate(_documents())
    ]
    compressor = TersifyCompressor(compressor=smollm2_compressor, rate=0.3)
    assert isinstance(compressor, BaseDocumentCompressor)
    out = compressor.compress_documents(docs, QUESTION)
    assert 0 < len(out) < len(docs)  # the coarse step dropped the least relevant
    by_id = {d.id: d for d in docs}
    assert [d.metadata["tersify_rank"] for d in out] == sorted(
        d.metadata["tersify_rank"] for d in out
    )
    for doc in out:
        source = by_id[doc.id]
        assert doc.metadata["source"] == source.metadata["source"]
        assert _is_subsequence(doc.page_content, source.page_content)
        assert 0 < doc.metadata["tersify_kept_fraction"] <= 1
    # The document with the answer is ranked first and keeps the most.
    assert out[0].id == "id3"
    assert out[0].metadata["tersify_kept_fraction"] == max(
        d.metadata["tersify_kept_fraction"] for d in out
    )
    assert compressor.compress_documents([], QUESTION) == []


def test_llamaindex_postprocessor(smollm2_compressor: Compressor) -> None:
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from tersify.integrations.llamaindex import TersifyPostprocessor

    nodes = [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"page": i}), score=1.0 - i / 10)
        for i, t in enumerate(_documents())
    ]
    post = TersifyPostprocessor(compressor=smollm2_compressor, rate=0.3)
    assert isinstance(post, BaseNodePostprocessor)
    out = post.postprocess_nodes(nodes, QueryBundle(QUESTION))
    assert 0 < len(out) < len(nodes)
    by_id = {n.node.node_id: n for n in nodes}
    for item in out:
        source = by_id[item.node.node_id]
        assert item.score == source.score
        assert item.node.metadata["page"] == source.node.metadata["page"]
        assert _is_subsequence(item.node.get_content(), source.node.get_content())
    assert out[0].node.node_id == "n3"
    assert nodes[3].node.get_content().startswith(_documents()[3][:50])  # inputs untouched
    no_query = post.postprocess_nodes(nodes)  # ranked by perplexity instead
    assert no_query and all("tersify_rank" in n.node.metadata for n in no_query)


def test_litellm_hook_compresses_then_litellm_asks_the_real_llm(
    smollm2_compressor: Compressor, local_llm: object
) -> None:
    import litellm
    from litellm.caching.dual_cache import DualCache
    from litellm.integrations.custom_logger import CustomLogger

    from tersify.integrations.litellm import TersifyHook

    hook = TersifyHook(smollm2_compressor, rate=0.5)
    assert isinstance(hook, CustomLogger)
    context = "\n\n".join(_documents())
    data = {
        "model": "openai/smollm2",
        "messages": [
            {"role": "system", "content": "Answer from the documents."},
            {"role": "user", "content": context + "\n\n" + QUESTION},
        ],
        "tersify": {"rate": 0.4},
    }
    out = asyncio.run(hook.async_pre_call_hook(None, DualCache(), data, "acompletion"))
    assert "tersify" not in out
    figures = out["metadata"]["tersify"]
    assert figures["compressed_tokens"] < 0.5 * figures["origin_tokens"]
    assert out["messages"][1]["content"].endswith("\n\n" + QUESTION)
    # What the hook hands on is a valid call: LiteLLM sends it to the local LLM.
    reply = litellm.completion(
        model=out["model"],
        messages=out["messages"],
        api_base=local_llm.url,  # type: ignore[attr-defined]
        api_key="none",
        max_tokens=8,
        temperature=0,
    )
    assert reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 0
    embedding = {"model": "m", "input": ["x"], "tersify": {"rate": 0.5}}
    untouched = asyncio.run(hook.async_pre_call_hook(None, DualCache(), embedding, "embedding"))
    assert untouched == {"model": "m", "input": ["x"]}
