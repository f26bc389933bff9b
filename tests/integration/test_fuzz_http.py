"""A property-based fuzz of the HTTP API: whatever arrives, no 5xx and one error shape.

Generated requests mix every route and method, headers (content types, tokens, timeouts,
request ids) and bodies (request-shaped JSON with every known field holding any JSON
value, lone surrogates, huge integers, deep nesting, random bytes). The service is the
real app with a fake scorer, in process, so thousands of requests take seconds.
``TERSIFY_FUZZ_EXAMPLES`` sets how many (CI: 2,000; ``make fuzz``: 10,000).
"""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tersify import Compressor
from tersify.limits import Limits
from tersify.request import request_schema
from tersify.service import create_app
from tersify.service.config import ServeConfig

from fakes import FakeScorer

EXAMPLES = int(os.environ.get("TERSIFY_FUZZ_EXAMPLES", "2000"))
TOKEN = "fuzz-token"
FIELDS = sorted(request_schema()["properties"])
LIMITS = Limits(max_body_bytes=32_768, max_contexts=16, max_scorer_tokens=4_000)


def _app(token: str | None) -> TestClient:
    compressor = Compressor(FakeScorer(), limits=LIMITS)
    config = ServeConfig(max_inflight=2, max_queue=2, timeout_s=10, limits=LIMITS, token=token)
    return TestClient(create_app(compressor, config=config), base_url="http://127.0.0.1")


CLIENTS = {"open": _app(None), "token": _app(TOKEN)}

words = st.text(
    alphabet=st.sampled_from(list("abcdefghij klmnop.,!?\n\t中文字😀\u200d\u202e\u0301é")),
    max_size=300,
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**6), max_value=10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | words
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
plausible = {
    "context": words | st.lists(words, min_size=1, max_size=5),
    "question": words,
    "instruction": words,
    "rate": st.floats(min_value=0, max_value=1.2),
    "ratio": st.floats(min_value=-0.1, max_value=1),
    "target_token": st.integers(min_value=-5, max_value=400),
    "mode": st.sampled_from(["token", "question-aware", "other"]),
    "explain": st.booleans(),
}


@st.composite
def request_objects(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True))
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["context"] = draw(plausible["context"])
    for name in names:
        wild = draw(st.integers(0, 3)) == 0 or name not in plausible
        body[name] = draw(json_values if wild else plausible[name])
    if draw(st.integers(0, 9)) == 0:
        body[draw(st.text(max_size=10))] = draw(json_values)
    return body


def _encode(value: dict[str, Any]) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


nasty = st.sampled_from(
    [
        b'{"context": "\\ud800"}',
        b'{"context": "x", "question": "\\udfff"}',
        b'{"context": "x", "target_token": 1' + b"0" * 5000 + b"}",
        b'{"context": "x", "rate": 1e999}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"context": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"context": ["' + b"a " * 20_000 + b'"]}',
        b'{"context": ' + json.dumps(["w"] * 40).encode() + b"}",
        b"\xff\xfe\x00",
        b"",
        b"null",
        b'"just a string"',
        b'{"context": "x"}garbage',
    ]
)
sensible = st.fixed_dictionaries(
    {"context": st.lists(words.filter(str.strip), min_size=1, max_size=4)},
    optional={
        "question": words,
        "instruction": words,
        "rate": st.floats(min_value=0.05, max_value=1),
        "mode": st.sampled_from(["token", "question-aware"]),
        "explain": st.booleans(),
    },
)
bodies = st.one_of(
    sensible.map(_encode),
    sensible.map(_encode),
    request_objects().map(_encode),
    nasty,
    st.binary(max_size=200),
)

PATHS = ["/compress"] * 8 + ["/healthz", "/readyz", "/metrics", "/"]
PATHS += ["/openapi.json", "/docs", "/nowhere", "/compress/", "//compress", "/%00"]
PATHS += ["/v1/chat/completions"]
paths = st.sampled_from(PATHS)
methods = st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
header_sets = st.fixed_dictionaries(
    {},
    optional={
        "content-type": st.sampled_from(
            [
                "application/json",
                "application/json; charset=utf-8",
                "APPLICATION/JSON",
                "text/plain",
                "application/x-www-form-urlencoded",
                "multipart/form-data; boundary=x",
                "",
            ]
        ),
        "authorization": st.sampled_from(
            [f"Bearer {TOKEN}", "Bearer wrong", "Basic Zm9vOmJhcg==", "Bearer", TOKEN, ""]
        ),
        "x-tersify-timeout": st.sampled_from(["5", "0", "-1", "abc", "1e9", "nan", "0.5", ""]),
        "x-request-id": st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=80
        ),
    },
)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(
    which=st.sampled_from(sorted(CLIENTS)),
    method=methods,
    path=paths,
    headers=header_sets,
    proper=st.integers(0, 9),
    body=bodies,
)
def test_no_request_gets_a_5xx_and_every_error_has_the_shape(
    which: str, method: str, path: str, headers: dict[str, str], proper: int, body: bytes
) -> None:
    client = CLIENTS[which]
    if proper < 7:  # mostly well-formed requests, so that the body reaches the compressor
        headers = {**headers, "content-type": "application/json"}
        if which == "token":
            headers["authorization"] = f"Bearer {TOKEN}"
        headers.pop("x-tersify-timeout", None)
    content = body if method in ("POST", "PUT", "PATCH") else None
    response = client.request(method, path, content=content, headers=headers)
    status = response.status_code
    event(f"{method} {path.split('?')[0]} {status}")
    assert status < 500, (status, response.text[:500])
    assert response.headers["x-request-id"]
    if status >= 400:
        error = response.json()["error"]
        assert set(error) == {"type", "message", "request_id"}
        assert isinstance(error["type"], str) and error["type"]
        assert isinstance(error["message"], str) and "Traceback" not in error["message"]
        assert error["request_id"] == response.headers["x-request-id"]
    elif method == "POST" and path == "/compress":
        data = response.json()["data"]
        assert data["compressed_tokens"] <= data["origin_tokens"] or data["origin_tokens"] == 0
        assert "\ufffd" not in data["compressed_prompt"]
