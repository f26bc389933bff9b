"""Properties of every compression, over generated requests.

Prompts spread evenly from 200 to 20,000 target tokens (``SIZES``); instructions and
questions are empty, short Unicode, or long; rates, kinds of text, contexts, the target
encoding and the iterative mode vary. Each answer is recounted (``answers``): its size is
the truth and within budget, it lands within a few tokens of the budget, and a refusal
happens only when the budget really leaves no room. The fake scorer keeps it fast.
"""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tersify import BadRequestError, Budget, Compressor, TokenFilter
from tersify.assemble import join_prompt
from tersify.encoding import SHIPPED_ENCODINGS
from tersify.limits import Limits

from answers import check_properties, encoding_named, recount
from fakes import FakeScorer
from texts import KINDS, sample_text

SIZES = list(range(200, 20_001, 2_200))  # 200, 2,400, ..., 20,000: evenly spread
# Adding one unit grows the prompt by a few target tokens at most (a word, a character, a
# separator and what BPE merges around them): the fitted prompt is that close to budget.
SLACK = 8
# A budget may leave room for the separator but no unit: then the request is refused.
NO_ROOM = 10

WORDS = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
LONG = st.builds(sample_text, st.sampled_from(KINDS), st.integers(300, 3_000), st.integers(0, 99))
PIECES = st.one_of(st.just(""), WORDS, LONG)


@functools.cache
def _pool(kind: str, seed: int) -> str:
    return sample_text(kind, 120_000, seed)


def _text_of(kind: str, n_tokens: int, seed: int, encoding: str) -> str:
    """A text of ``kind`` of ``n_tokens`` target tokens (a few more where BPE merges)."""
    text = _pool(kind, seed % 7)[(seed * 7919) % 10_000 :]
    tokens = encoding_named(encoding).encode_ordinary(text)
    assert len(tokens) > n_tokens
    # The first n tokens' bytes may end inside a character: keep the whole characters.
    head = b"".join(encoding_named(encoding).decode_tokens_bytes(tokens[:n_tokens]))
    return text[: len(head.decode("utf-8", errors="ignore"))]


def check_compression(
    compressor: Compressor,
    encoding: str,
    contexts: list[str],
    instruction: str,
    question: str,
    rate: float,
    token_filter: TokenFilter,
) -> None:
    """Compress; the answer is true and on budget, or the refusal is honest."""
    origin = recount(join_prompt(instruction, contexts, question), encoding)
    target = Budget(rate=rate).target(origin)
    floor = recount(join_prompt(instruction, [], question), encoding)
    try:
        result = compressor.compress(
            contexts, instruction=instruction, question=question, rate=rate,
            token_filter=token_filter,
        )
    except BadRequestError as exc:
        if target < floor:
            assert f"budget of {target} tokens is below the {floor} tokens" in str(exc)
        else:
            assert "leaves no room" in str(exc) and target - floor <= NO_ROOM, str(exc)
        return
    assert target >= floor, "a budget below instruction and question must be refused"
    check_properties(result, contexts, question, instruction)
    assert result.origin_tokens == origin and result.target_tokens == target
    assert result.encoding == encoding
    assert result.target_tokens - result.compressed_tokens <= SLACK
    if origin >= 50 * SLACK:
        assert abs(result.rate - rate) <= 0.02


@pytest.mark.parametrize("size", SIZES)
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 1000),
    rate=st.floats(0.05, 0.95),
    n_contexts=st.integers(1, 3),
    instruction=PIECES,
    question=PIECES,
    encoding=st.sampled_from(SHIPPED_ENCODINGS),
    iterative=st.booleans(),
)
def test_every_answer_is_true_and_on_budget(
    size: int,
    kind: str,
    seed: int,
    rate: float,
    n_contexts: int,
    instruction: str,
    question: str,
    encoding: str,
    iterative: bool,
) -> None:
    fixed = recount(join_prompt(instruction, [], question), encoding)
    share = max(20, (size - fixed) // n_contexts)
    contexts = [_text_of(kind, share, seed + i, encoding) for i in range(n_contexts)]
    # The fake scorer cuts CJK characters into byte tokens: lift the service's token limit.
    limits = Limits(max_scorer_tokens=1_000_000)
    compressor = Compressor(FakeScorer(), encoding=encoding, limits=limits)
    how = TokenFilter(iterative=iterative)
    check_compression(compressor, encoding, contexts, instruction, question, rate, how)


def test_sizes_spread_evenly() -> None:
    gaps = {b - a for a, b in itertools.pairwise(SIZES)}
    assert SIZES[0] == 200 and SIZES[-1] == 20_000 and len(gaps) == 1
    for size in (200, 5_000, 20_000):
        text = _text_of("mixed", size, 3, "cl100k_base")
        assert size <= recount(text) <= size + 4


@pytest.mark.parametrize("encoding", SHIPPED_ENCODINGS)
def test_the_budget_is_counted_in_the_target_encoding(encoding: str) -> None:
    text = sample_text("chinese", 6_000, 5)
    result = Compressor(FakeScorer(), encoding=encoding).compress(
        [text], question="这是什么?", target_token=700
    )
    check_properties(result, [text], "这是什么?")
    assert result.encoding == encoding and 700 - SLACK <= result.compressed_tokens <= 700


def test_o200k_counts_differ_from_cl100k() -> None:
    # Not the same tokens: a compressor counting in the wrong one would be caught above.
    text = sample_text("chinese", 3_000, 6)
    assert recount(text, "o200k_base") != recount(text, "cl100k_base")
