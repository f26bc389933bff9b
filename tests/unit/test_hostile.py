"""No request can freeze the service: hostile text shapes, header tricks, logs.

The core's text handling timed on 1 MB of each hostile shape (growth, not absolute times:
the machine is shared); the app in process (headers, HEAD, log lines). A real ``tersify
serve`` under hostile requests is in tests/integration/test_hostile_served.py.
docs/reliability.md lists what each test holds.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable
from unittest import mock

import httpx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tersify import Compressor
from tersify.encoding import (
    _CHUNK,
    _CHUNKS,
    _CUT_BEFORE,
    _PIECE,
    _PIECES,
    count_tokens,
    forget_counts,
    load_encoding,
)
from tersify.graphemes import bidi_anchors, cluster_spans
from tersify.scoring import group_units
from tersify.service import create_app
from tersify.service.config import ServeConfig
from tersify.service.logs import JsonFormatter, TextFormatter

from fakes import FakeScorer
from texts import MB, hostile_text

SHAPES = [
    "one-letter",
    "one-digit",
    "spaces",
    "hex",
    "base64",
    "minified-json",
    "cjk",
    "emoji",
    "bidi",
]


def _best_of(work: Callable[[], object], times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def _grows_linearly(work: Callable[[str], object], shape: str) -> tuple[float, float]:
    """Best-of-3 seconds for 250 kB and 1 MB of ``shape``; fails on super-linear growth.

    4x the text: linear code takes about 4x, quadratic code 16x. tiktoken's BPE of one
    1 MB piece (a run without cuts) is n log n and took 6-7x here: the bound is 10x,
    plus 50 ms where both times are too short to measure on a shared machine.
    """
    small, big = hostile_text(shape, MB // 4), hostile_text(shape, MB)
    quarter = _best_of(lambda: work(small))
    whole = _best_of(lambda: work(big))
    assert whole <= 10 * quarter + 0.05, (shape, quarter, whole)
    return quarter, whole


# -- the core's text handling: linear in the input, whatever its shape -------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_cutting_for_counts_is_linear(shape: str) -> None:
    _grows_linearly(_PIECES.findall, shape)
    _grows_linearly(_CHUNKS.findall, shape)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("coarse", [False, True])
def test_counting_is_linear(shape: str, coarse: bool) -> None:
    encoding = load_encoding()

    def count(text: str) -> int:
        forget_counts()  # cold each time: nothing remembered from the run before
        return count_tokens(encoding, text, coarse=coarse)

    _, whole = _grows_linearly(count, shape)
    assert whole < 10.0  # the 40,000 'x' took 8.6 s; 1 MB is well under a second


@pytest.mark.parametrize("shape", SHAPES)
def test_segmentation_into_units_is_linear(shape: str) -> None:
    def units(text: str) -> object:
        # one token per character: the most units a text can have
        starts = np.arange(len(text), dtype=np.int64)
        group_units(np.stack([starts, starts + 1], axis=1), text)
        return bidi_anchors(text), cluster_spans(text)

    _grows_linearly(units, shape)


SLOW_CUT = {
    size: re.compile(rf"(?s).{{{size},}}?[^\W_](?=[{_CUT_BEFORE}])") for size in (_PIECE, _CHUNK)
}
CUT_WORDS = st.sampled_from(["a", "7", "_", " ", ".", "\n", "x" * 30, "压缩", "’", "é", "-"])


@settings(max_examples=300, deadline=None)
@given(st.lists(CUT_WORDS, max_size=400).map("".join))
def test_the_linear_cut_finds_the_parts_of_the_obvious_pattern(text: str) -> None:
    assert _PIECES.findall(text) == SLOW_CUT[_PIECE].findall(text)
    assert _CHUNKS.findall(text) == SLOW_CUT[_CHUNK].findall(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(CUT_WORDS, max_size=200).map("".join), st.integers(1, 40))
def test_the_cut_looked_for_a_stretch_at_a_time_misses_no_end(text: str, stretch: int) -> None:
    with mock.patch("tersify.encoding._STRETCH", stretch):
        assert _PIECES.findall(text) == SLOW_CUT[_PIECE].findall(text)
        assert _CHUNKS.findall(text) == SLOW_CUT[_CHUNK].findall(text)


def test_a_long_run_is_counted_right_and_not_remembered() -> None:
    encoding = load_encoding()
    forget_counts()
    for text in ("x" * 50_000, "ab " * 10 + "f0" * 20_000, " " * 30_000 + "end"):
        assert count_tokens(encoding, text) == len(encoding.encode_ordinary(text))
    from tersify.encoding import _remembered

    assert max(map(len, _remembered(encoding)), default=0) <= 4096


# -- the app in process: headers, HEAD, the log ------------------------------------------


def _client(**config: object) -> httpx.AsyncClient:
    app = create_app(Compressor(FakeScorer()), config=ServeConfig(**config))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


def _exchange(
    *requests: tuple[str, str, dict[str, object]], **config: object
) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with _client(**config) as client:
            return [await client.request(m, path, **kw) for m, path, kw in requests]  # type: ignore[arg-type]

    return asyncio.run(run())


@pytest.mark.parametrize(
    "name",
    ["Authorization", "Content-Type", "Content-Encoding", "X-Tersify-Timeout", "X-Request-Id"],
)
def test_a_header_sent_twice_is_refused_whichever_it_is(name: str) -> None:
    values = {
        "Authorization": ("Bearer s3cret", "Bearer other"),
        "Content-Type": ("application/json", "text/plain"),
        "Content-Encoding": ("identity", "gzip"),
        "X-Tersify-Timeout": ("5", "50"),
        "X-Request-Id": ("one", "two"),
    }[name]
    headers = [("authorization", "Bearer s3cret"), ("content-type", "application/json")]
    headers = [h for h in headers if h[0] != name.lower()]
    headers += [(name, values[0]), (name, values[1])]
    body = json.dumps({"context": "a b c d e f", "rate": 0.5})
    (response,) = _exchange(
        ("POST", "/compress", {"content": body, "headers": headers}), token="s3cret"
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "MalformedRequestError" and name.lower() in error["message"]
    assert response.headers["connection"] == "close"


def test_the_same_header_once_is_answered() -> None:
    headers = [("authorization", "Bearer s3cret"), ("content-type", "application/json")]
    body = json.dumps({"context": "a b c d e f", "rate": 0.5})
    (response,) = _exchange(
        ("POST", "/compress", {"content": body, "headers": headers}), token="s3cret"
    )
    assert response.status_code == 200, response.text


def test_head_is_answered_wherever_get_is() -> None:
    paths = ["/healthz", "/readyz", "/metrics", "/openapi.json", "/"]
    gets = _exchange(*[("GET", p, {}) for p in paths])
    heads = _exchange(*[("HEAD", p, {}) for p in paths])
    for path, get, head in zip(paths, gets, heads, strict=True):
        assert get.status_code == head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]
    (compress,) = _exchange(("HEAD", "/compress", {}))
    assert compress.status_code == 405 and compress.headers["allow"] == "POST"


def _log_lines(formatter: logging.Formatter, path: str) -> list[str]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("tersify.access")
    handler, level = Keep(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        _exchange(("GET", path, {}))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert records
    return "\n".join(formatter.format(r) for r in records).split("\n")


FORGERIES = [
    "/b%0aFORGED-LINE 200",
    "/b%0d%0aFORGED",
    "/esc%1b[2J",
    "/nul%00x",
    "/del%7f",
    "/c1%c2%85next",
    "/ls%e2%80%a8next",
    "/bidi%e2%80%aeevil",
    "/back%5cnslash",
]


@pytest.mark.parametrize("path", FORGERIES)
@pytest.mark.parametrize("form", ["text", "json"])
def test_no_request_adds_a_line_or_a_control_character_to_the_log(path: str, form: str) -> None:
    formatter = TextFormatter() if form == "text" else JsonFormatter()
    lines = _log_lines(formatter, path)
    assert len(lines) == 1, lines
    (line,) = lines
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]", line), repr(line)
    assert len(line.splitlines()) == 1
    if form == "json":
        logged = json.loads(line)["path"]
        assert logged == urllib.request.unquote(path.split("?")[0])  # exact, once parsed
