"""Tagged segments (own rate, compress=False) and JSON compression."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tersify import BadRequestError, Budget, Compressor, Segment, parse_tagged
from tersify.encoding import load_encoding
from tersify.structured import JsonLayout

from answers import check_result
from fakes import FakeScorer
from texts import sample_text


def test_parser_keeps_other_angle_brackets_as_content() -> None:
    prompt = (
        "if a < b and <b>bold</b>:\n"
        "<llmlingua, rate=0.4>x <y> z</llmlingua>"
        "<llmlingua, compress=False><keep> & </keep></llmlingua> tail"
    )
    assert parse_tagged(prompt) == [
        Segment("if a < b and <b>bold</b>:\n"),
        Segment("x <y> z", rate=0.4),
        Segment("<keep> & </keep>", compress=False),
        Segment(" tail"),
    ]


@pytest.mark.parametrize(
    ("prompt", "words"),
    [
        ("<llmlingua, rate=0.5>open", "never closed"),
        ("text</llmlingua>", "closes no open tag"),
        ("<llmlingua>a<llmlingua>b</llmlingua></llmlingua>", "nest"),
        ("<llmlingua, rate=fast>a</llmlingua>", "not a number"),
        ("<llmlingua, rate=1.5>a</llmlingua>", "rate=1.5"),
        ("<llmlingua, compress=maybe>a</llmlingua>", "True or False"),
        ("<llmlingua, colour=red>a</llmlingua>", "unknown attribute"),
    ],
)
def test_parser_names_the_problem(prompt: str, words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        parse_tagged(prompt)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 100),
    st.floats(0.15, 0.8),
    st.text(alphabet=st.sampled_from("<>ab 压,\n"), min_size=1, max_size=40),
)
def test_uncompressed_segments_survive_byte_for_byte(seed: int, rate: float, frozen: str) -> None:
    background = sample_text("english", 3000, seed)
    tagged = (
        f"<llmlingua, rate=0.9>{sample_text('mixed', 1500, seed + 1)}</llmlingua>"
        f"{background}<llmlingua, compress=False>{frozen}</llmlingua>"
    )
    result = Compressor(FakeScorer()).compress_segments(tagged, question="Why?", rate=rate)
    assert frozen in result.compressed_prompt
    assert result.compressed_prompt.endswith("\n\nWhy?")
    check_result(result)
    assert abs(result.rate - rate) <= 0.02 or result.target_tokens - result.compressed_tokens <= 3


def test_segment_rates_shift_the_share_kept() -> None:
    a, b = (sample_text("english", 3000, k).replace("\n\n", " ") for k in (1, 2))
    segments = [Segment(a, rate=0.6), Segment("\n\n", compress=False), Segment(b, rate=0.1)]
    result = Compressor(FakeScorer()).compress_segments(segments, rate=0.35)
    first, second = result.compressed_prompt.split("\n\n", 1)
    assert len(first) > 3 * len(second)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 100), st.floats(0.1, 0.9))
def test_json_output_always_parses(seed: int, rate: float) -> None:
    value = {
        "id": seed,
        "title": sample_text("english", 200, seed),
        "body": [sample_text("mixed", 800, seed + 1), {"note": sample_text("code", 600, seed + 2)}],
        "quote": 'He said "stop" \\ then\n left\t.',
        "ok": True,
        "none": None,
    }
    layout = JsonLayout.of(value, keep_keys=("title",))
    floor = len(load_encoding().encode(layout.render([""] * len(layout.strings))))
    compressor = Compressor(FakeScorer())
    target = Budget(rate=rate).target(compressor.count(layout.render(layout.strings)))
    if target < floor:  # structure, keys, numbers and the kept key's value must stay
        refusal = f"budget of {target} tokens is below the {floor}"
        with pytest.raises(BadRequestError, match=refusal):
            compressor.compress_json(value, rate=rate, keep_keys=("title",))
        return
    try:
        result = compressor.compress_json(value, rate=rate, keep_keys=("title",))
    except BadRequestError as exc:  # honest only when no string's first unit fits
        assert "leaves no room" in str(exc) and target - floor <= 10, str(exc)
        return
    parsed = json.loads(result.compressed_prompt)
    assert parsed["id"] == seed and parsed["ok"] is True and parsed["none"] is None
    assert parsed["title"] == value["title"]  # kept key
    assert set(parsed) == set(value)
    check_result(result, layout.render(layout.strings))


def test_json_text_and_errors() -> None:
    compressor = Compressor(FakeScorer())
    result = compressor.compress_json(json.dumps({"a": sample_text("english", 2000, 3)}), rate=0.3)
    assert abs(result.rate - 0.3) <= 0.02
    with pytest.raises(BadRequestError, match="does not parse"):
        compressor.compress_json("{broken", rate=0.5)


def test_recover_expands_fragments_of_a_real_compression() -> None:
    from tersify import PromptCompressor, recover

    original = sample_text("english", 4000, 9)
    compressed = Compressor(FakeScorer()).compress([original], rate=0.4).compressed_prompt
    # an answer quoting the compressed prompt word for word
    response = " ".join(compressed.split()[:60])
    recovered = recover(original, compressed, response)

    def foreign(text: str) -> int:
        words = re.findall(r"[A-Za-z0-9]+", text)
        return sum(1 for w in words if not re.search(rf"\b{re.escape(w)}\b", original))

    assert foreign(response) > 0
    assert foreign(recovered) < foreign(response) / 2
    assert recover(original, compressed, "") == ""
    assert PromptCompressor(FakeScorer()).recover(original, compressed, response) == recovered  # type: ignore[arg-type]
    assert recover("abc", "xyz", "xyz") == "xyz"  # not a subsequence: unchanged
