"""The chat-message policy and the per-document cut, on the fake scorer (fast)."""

from __future__ import annotations

import pytest

from tersify import Compressor
from tersify.assemble import join_prompt
from tersify.errors import BadRequestError
from tersify.integrations.documents import (
    DocumentPolicy,
    compress_documents,
    kept_parts,
)
from tersify.integrations.messages import MessagePolicy, compress_messages

from texts import sample_text

LONG = sample_text("english", 900, 0)


def _is_subsequence(part: str, text: str) -> bool:
    it = iter(text)
    return all(ch in it for ch in part)


def test_documents_survive_ranked_and_compressed(fake_compressor: Compressor) -> None:
    docs = [sample_text(kind, 300, n) for n, kind in enumerate(("english", "code", "mixed"))]
    survivors = compress_documents(fake_compressor, docs, "Why?", DocumentPolicy(rate=0.4))
    assert survivors
    assert [s.rank for s in survivors] == list(range(len(survivors)))
    assert len({s.index for s in survivors}) == len(survivors)
    for kept in survivors:
        assert kept.text and _is_subsequence(kept.text, docs[kept.index])
        assert 0 < kept.kept_fraction <= 1


def test_kept_parts_rebuild_the_prompt(fake_compressor: Compressor) -> None:
    docs = ["First.\n\nSecond para " + LONG[:200], LONG[200:500], "", LONG[500:]]
    result = fake_compressor.compress(
        docs, question="Q?", instruction="Do it.", rate=0.5, explain=True
    )
    parts = kept_parts(result, docs)
    assert join_prompt("Do it.", [p for _, p in parts], "Q?") == result.compressed_prompt
    assert all(_is_subsequence(p, docs[i]) for i, p in parts)


def test_policy_keeps_question_assistant_and_non_text_parts(fake_compressor: Compressor) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "system", "content": "You answer from the documents. " + LONG[:300]},
        {"role": "user", "content": LONG[300:600]},
        {"role": "assistant", "content": "An earlier answer " + LONG[:100], "name": "bot"},
        {"role": "tool", "content": LONG[100:200], "tool_call_id": "x"},
        {
            "role": "user",
            "content": [image, {"type": "text", "text": LONG[600:] + "\n\nWhat happened?"}],
        },
    ]
    done = compress_messages(fake_compressor, messages, MessagePolicy(rate=0.4))
    out = done.messages
    assert [m["role"] for m in out] == [m["role"] for m in messages]
    assert out[2] == messages[2] and out[3] == messages[3]
    assert out[4]["content"][0] == image
    last, original = out[4]["content"][1]["text"], messages[4]["content"][1]["text"]
    assert last.endswith("What happened?") and _is_subsequence(last, original)
    assert len(last) < len(original)
    assert len(out[0]["content"]) < len(messages[0]["content"])
    for before, after in zip(messages[:2], out[:2]):
        assert _is_subsequence(after["content"], before["content"])
    assert done.result is not None and done.compressed_tokens <= done.result.target_tokens
    assert messages[0]["content"].startswith("You answer")  # the input is untouched


def test_request_options(fake_compressor: Compressor) -> None:
    messages = [{"role": "user", "content": LONG + "\n\nWhy?"}]
    policy = MessagePolicy()
    off = compress_messages(fake_compressor, messages, policy.with_options({"compress": False}))
    assert off.messages == messages and off.result is None
    small = compress_messages(fake_compressor, messages, policy.with_options({"target_token": 40}))
    assert small.compressed_tokens <= 40
    for bad in ({"rate": 2}, {"rate": "x"}, {"speed": 1}, [1], {"compress": "no"}):
        with pytest.raises(BadRequestError):
            policy.with_options(bad)


def test_a_long_question_over_a_short_system_prompt_is_not_refused(
    fake_compressor: Compressor,
) -> None:
    question = LONG[:600].replace("\n\n", " ")
    messages = [
        {"role": "system", "content": "You are a helpful assistant who answers briefly."},
        {"role": "user", "content": question},
    ]
    done = compress_messages(fake_compressor, messages, MessagePolicy(rate=0.3))
    assert done.messages[1]["content"] == question
    assert done.result is not None and done.compressed_tokens <= done.result.target_tokens


@pytest.mark.parametrize("question", ["What is the capital of France?", "\n\nWhy?"])
def test_a_question_alone_is_not_compressed(fake_compressor: Compressor, question: str) -> None:
    messages = [{"role": "user", "content": question}]
    done = compress_messages(fake_compressor, messages, MessagePolicy(rate=0.1))
    assert done.messages == messages and done.result is None


@pytest.mark.parametrize(
    "messages",
    [
        [],
        "hi",
        [{"content": "x"}],
        [{"role": "user", "content": 3}],
        [{"role": "user", "content": [{"type": "text", "text": 1}]}],
    ],
)
def test_bad_messages_name_the_field(fake_compressor: Compressor, messages: object) -> None:
    with pytest.raises(BadRequestError, match="messages"):
        compress_messages(fake_compressor, messages, MessagePolicy())
