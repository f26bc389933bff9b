"""The serving contract in process: admission, limits, deadlines, auth, errors, metrics.

The app is the real one (`create_app`) with a fake scorer that can be made slow; requests
go through httpx's ASGI transport, several at once where the test needs it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Sequence

import httpx
import pytest

from tersify import Compressor
from tersify.limits import Limits
from tersify.scoring import FloatArray, IntArray
from tersify.service import create_app
from tersify.service.config import ServeConfig
from tersify.service.metrics import Metrics

from fakes import FakeScorer
from texts import sample_text

JSON = {"content-type": "application/json"}
SMALL = json.dumps({"context": "The quick brown fox jumps over the lazy dog.", "rate": 0.5})


class SlowScorer(FakeScorer):
    """The fake scorer, ``delay`` seconds per scorer call; counts calls that ran."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.running = 0
        self.peak = 0
        self._lock = threading.Lock()

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        with self._lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            time.sleep(self.delay)
            return super().logprobs(windows)
        finally:
            with self._lock:
                self.running -= 1


def _client(scorer: FakeScorer | None = None, **config: object) -> httpx.AsyncClient:
    compressor = Compressor(scorer or FakeScorer(), limits=config.get("limits"))  # type: ignore[arg-type]
    app = create_app(compressor, config=ServeConfig(**config))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


def _run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)


def check_error(response: httpx.Response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "request_id"}
    assert error["type"] == kind and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    return error


def test_a_flood_gets_fast_429s_while_admitted_requests_succeed() -> None:
    scorer = SlowScorer(0.3)

    async def flood() -> list[httpx.Response]:
        async with _client(scorer, max_inflight=2, max_queue=2) as client:
            started = time.monotonic()
            responses = await asyncio.gather(
                *[client.post("/compress", content=SMALL, headers=JSON) for _ in range(12)]
            )
            for response in responses:
                if response.status_code == 429:
                    assert time.monotonic() - started < 5
            return list(responses)

    responses = _run(flood())
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 4 and codes.count(429) == 8, codes
    for response in responses:
        if response.status_code == 429:
            check_error(response, 429, "OverloadedError")
            assert int(response.headers["retry-after"]) >= 1
    assert scorer.peak <= 2  # never more compressions at once than slots


def test_the_deadline_answers_504_and_a_request_may_ask_for_less() -> None:
    scorer = SlowScorer(1.0)

    async def slow() -> tuple[httpx.Response, float]:
        async with _client(scorer, timeout_s=30) as client:
            started = time.monotonic()
            headers = {**JSON, "x-tersify-timeout": "0.3"}
            response = await client.post("/compress", content=SMALL, headers=headers)
            return response, time.monotonic() - started

    response, took = _run(slow())
    check_error(response, 504, "DeadlineExceededError")
    assert took < 0.9  # answered at the deadline, not when the scorer call ended


def test_a_queued_request_past_its_deadline_is_504() -> None:
    scorer = SlowScorer(0.6)

    async def queued() -> list[httpx.Response]:
        async with _client(scorer, max_inflight=1, max_queue=4) as client:
            admission = client._transport.app.state.guard.admission  # type: ignore[attr-defined]
            first = asyncio.ensure_future(client.post("/compress", content=SMALL, headers=JSON))
            while admission.running == 0:
                await asyncio.sleep(0.01)
            second = await client.post(
                "/compress", content=SMALL, headers={**JSON, "x-tersify-timeout": "0.2"}
            )
            return [await first, second]

    first, second = _run(queued())
    assert first.status_code == 200
    assert "slot" in check_error(second, 504, "DeadlineExceededError")["message"]


@pytest.mark.parametrize(
    "value", ["0", "-1", "soon", "inf", "nan", "1_0", "0x10", "1e", "infinity", "1e999"]
)
def test_a_bad_timeout_header_is_400(value: str) -> None:
    async def go() -> httpx.Response:
        async with _client() as client:
            headers = {**JSON, "x-tersify-timeout": value}
            return await client.post("/compress", content=SMALL, headers=headers)

    assert "x-tersify-timeout" in check_error(_run(go()), 400, "HTTPError")["message"]


def test_body_limit_from_content_length_and_while_streaming() -> None:
    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with _client(limits=Limits(max_body_bytes=1000)) as client:
            declared = await client.post(
                "/compress", content=b"{}", headers={**JSON, "content-length": "10000000000"}
            )

            async def chunks():  # type: ignore[no-untyped-def]
                for _ in range(100):
                    yield b" " * 100

            streamed = await client.post("/compress", content=chunks(), headers=JSON)
            fits = await client.post("/compress", content=SMALL, headers=JSON)
            return declared, streamed, fits

    declared, streamed, fits = _run(go())
    assert "10000000000 bytes" in check_error(declared, 413, "LimitExceededError")["message"]
    assert "1000 bytes" in check_error(streamed, 413, "LimitExceededError")["message"]
    assert fits.status_code == 200


def test_too_many_contexts_is_413_naming_the_limit() -> None:
    async def go() -> httpx.Response:
        async with _client(limits=Limits(max_contexts=3)) as client:
            body = json.dumps({"context": ["a b", "c d", "e f", "g h"], "rate": 0.5})
            return await client.post("/compress", content=body, headers=JSON)

    message = check_error(_run(go()), 413, "LimitExceededError")["message"]
    assert "4 contexts" in message and "limit of 3" in message


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_json_is_415(media: str) -> None:
    async def go() -> httpx.Response:
        async with _client() as client:
            headers = {"content-type": media} if media else {}
            return await client.post("/compress", content=SMALL, headers=headers)

    check_error(_run(go()), 415, "UnsupportedMediaTypeError")


def test_bearer_token_guards_everything_but_healthz() -> None:
    async def go() -> dict[str, int]:
        async with _client(token="s3cret-token") as client:
            good = {**JSON, "authorization": "Bearer s3cret-token"}
            bad = {**JSON, "authorization": "Bearer s3cret-tokem"}
            none = await client.post("/compress", content=SMALL, headers=JSON)
            check_error(none, 401, "UnauthorizedError")
            assert none.headers["www-authenticate"].startswith("Bearer")
            return {
                "none": none.status_code,
                "wrong": (await client.post("/compress", content=SMALL, headers=bad)).status_code,
                "basic": (
                    await client.post(
                        "/compress", content=SMALL, headers={**JSON, "authorization": "Basic x"}
                    )
                ).status_code,
                "good": (await client.post("/compress", content=SMALL, headers=good)).status_code,
                "healthz": (await client.get("/healthz")).status_code,
                "readyz": (await client.get("/readyz")).status_code,
                "metrics": (await client.get("/metrics")).status_code,
            }

    assert _run(go()) == {
        "none": 401,
        "wrong": 401,
        "basic": 401,
        "good": 200,
        "healthz": 200,
        "readyz": 200,
        "metrics": 200,
    }


def test_protected_probes_need_the_token_too() -> None:
    async def go() -> tuple[int, int, int]:
        async with _client(token="t0ken", protect_probes=True) as client:
            return (
                (await client.get("/healthz")).status_code,
                (await client.get("/readyz")).status_code,
                (await client.get("/metrics")).status_code,
            )

    assert _run(go()) == (200, 401, 401)


def test_a_loopback_server_answers_only_loopback_host_names() -> None:
    async def go() -> list[httpx.Response]:
        async with _client(allowed_hosts=frozenset({"127.0.0.1", "localhost", "[::1]"})) as c:
            return [
                await c.get("/healthz", headers={"host": host})
                for host in ("127.0.0.1:8080", "localhost", "[::1]:80", "evil.example:8080")
            ]

    *good, rebound = _run(go())
    assert [r.status_code for r in good] == [200, 200, 200]
    check_error(rebound, 421, "MisdirectedRequestError")


def test_404_405_and_bad_json_share_the_error_shape() -> None:
    async def go() -> list[httpx.Response]:
        async with _client() as client:
            return [
                await client.get("/nowhere"),
                await client.get("/compress"),
                await client.post("/compress", content=b"{oops", headers=JSON),
                await client.post("/compress", content=b'{"context": "\\ud800"}', headers=JSON),
            ]

    missing, method, bad, surrogate = _run(go())
    check_error(missing, 404, "NotFoundError")
    check_error(method, 405, "MethodNotAllowedError")
    check_error(bad, 400, "BadRequestError")
    assert "surrogate" in check_error(surrogate, 400, "BadRequestError")["message"]


def test_request_id_is_echoed_or_made() -> None:
    async def go() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with _client() as client:
            return (
                await client.get("/healthz", headers={"x-request-id": "abc-123"}),
                await client.get("/healthz", headers={"x-request-id": "bad id;drop"}),
                await client.get("/nowhere", headers={"x-request-id": "req.7"}),
            )

    echoed, replaced, error = _run(go())
    assert echoed.headers["x-request-id"] == "abc-123"
    assert len(replaced.headers["x-request-id"]) == 32
    assert error.json()["error"]["request_id"] == "req.7"


def test_metrics_count_requests_rejections_and_scorer_work() -> None:
    async def go() -> str:
        async with _client(max_inflight=1, max_queue=0) as client:
            await client.post("/compress", content=SMALL, headers=JSON)
            await client.post("/compress", content=b"{}", headers={"content-type": "text/plain"})
            await client.get("/nowhere")
            return (await client.get("/metrics")).text

    text = _run(go())
    assert 'tersify_requests_total{route="/compress",status="200"} 1' in text
    assert 'tersify_requests_total{route="/compress",status="415"} 1' in text
    assert 'tersify_requests_total{route="other",status="404"} 1' in text
    assert 'tersify_rejections_total{reason="media_type"} 1' in text
    assert 'tersify_request_duration_seconds_count{route="/compress"} 2' in text
    assert "tersify_in_flight 0" in text and "tersify_queue_depth 0" in text
    tokens = next(line for line in text.splitlines() if line.startswith("tersify_scorer_tokens"))
    assert float(tokens.split()[1]) > 0


def test_metrics_exposition_escapes_label_values() -> None:
    metrics = Metrics()
    metrics.observe_request('a"b\\c', 200, 0.01)
    assert 'route="a\\"b\\\\c"' in metrics.render()


def test_a_real_text_compresses_through_the_guard() -> None:
    async def go() -> httpx.Response:
        async with _client() as client:
            body = json.dumps({"context": [sample_text("english", 2000, 3)], "rate": 0.5})
            return await client.post("/compress", content=body, headers=JSON)

    data = _run(go()).json()["data"]
    assert 0 < data["compressed_tokens"] < data["origin_tokens"]


def test_a_request_that_would_wait_past_its_deadline_is_refused_at_once() -> None:
    scorer = SlowScorer(0.3)
    bodies = iter(  # all different: a repeated text would come from the score cache
        json.dumps({"context": f"Request number {n} is about the fox.", "rate": 0.5})
        for n in range(100)
    )

    async def go() -> tuple[httpx.Response, float]:
        async with _client(scorer, max_inflight=1, max_queue=8) as client:
            admission = client._transport.app.state.guard.admission  # type: ignore[attr-defined]
            for _ in range(3):  # the admission learns how long one compression takes
                answer = await client.post("/compress", content=next(bodies), headers=JSON)
                assert answer.is_success
            running = asyncio.ensure_future(
                client.post("/compress", content=next(bodies), headers=JSON)
            )
            while admission.running == 0:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            # The slot frees in about 0.3 s: a 0.1 s deadline cannot fit that wait.
            hurried = await client.post(
                "/compress", content=next(bodies), headers={**JSON, "x-tersify-timeout": "0.1"}
            )
            took = time.monotonic() - started
            assert (await running).status_code == 200
            return hurried, took

    hurried, took = _run(go())
    assert "deadline" in check_error(hurried, 429, "OverloadedError")["message"]
    assert took < 0.2


def test_a_bad_request_is_refused_without_waiting_for_a_slot() -> None:
    scorer = SlowScorer(1.0)

    async def go() -> tuple[httpx.Response, float]:
        async with _client(scorer, max_inflight=1, max_queue=4) as client:
            admission = client._transport.app.state.guard.admission  # type: ignore[attr-defined]
            busy = asyncio.ensure_future(client.post("/compress", content=SMALL, headers=JSON))
            while admission.running == 0:
                await asyncio.sleep(0.01)
            started = time.monotonic()
            bad = await client.post("/compress", content=b'{"context": 7}', headers=JSON)
            took = time.monotonic() - started
            assert (await busy).status_code == 200
            return bad, took

    bad, took = _run(go())
    check_error(bad, 400, "BadRequestError")
    assert took < 0.5


def test_a_slow_past_never_locks_out_an_idle_server() -> None:
    # The probe: compressions slower than --timeout taught the admission an estimate above
    # every deadline, and from then on an idle server refused everything with 429.
    scorer = SlowScorer(0.6)
    bodies = iter(
        json.dumps({"context": f"Request number {n} is about the fox.", "rate": 0.5})
        for n in range(100)
    )

    async def go() -> tuple[list[int], list[httpx.Response]]:
        async with _client(scorer, max_inflight=1, max_queue=4, timeout_s=0.3) as client:
            admission = client._transport.app.state.guard.admission  # type: ignore[attr-defined]
            slow = []
            for _ in range(3):
                slow.append(await client.post("/compress", content=next(bodies), headers=JSON))
                while admission.running:  # the abandoned work still ends (and is timed)
                    await asyncio.sleep(0.01)
            scorer.delay = 0.0
            answers = [
                await client.post("/compress", content=next(bodies), headers=JSON) for _ in range(4)
            ]
            tiny = {**JSON, "x-tersify-timeout": "1e-9"}
            answers.append(await client.post("/compress", content=next(bodies), headers=tiny))
            return [r.status_code for r in slow], answers

    slow, answers = _run(go())
    assert slow == [504, 504, 504]
    assert [r.status_code for r in answers[:4]] == [200] * 4, answers[0].text
    check_error(answers[4], 504, "DeadlineExceededError")  # a passed deadline, not a 429


def test_bodies_being_read_hold_no_ticket_and_have_their_own_bound() -> None:
    async def dripping(first: bytes = b" "):  # type: ignore[no-untyped-def]
        yield first
        for _ in range(20):
            await asyncio.sleep(0.2)
            yield b" "

    async def go() -> tuple[list[httpx.Response], httpx.Response, list[httpx.Response]]:
        config = {"max_inflight": 1, "max_queue": 1, "read_timeout_s": 1.5}
        async with _client(limits=Limits(max_body_bytes=1000), **config) as client:
            guard = client._transport.app.state.guard  # type: ignore[attr-defined]
            assert guard.bodies.max_reading_bytes == 4000
            drippers = [
                asyncio.ensure_future(client.post("/compress", content=dripping(), headers=JSON))
                for _ in range(10)  # more than max_inflight + max_queue
            ]
            while guard.bodies.reading_bytes < 10:
                await asyncio.sleep(0.01)
            # Body senders take no ticket: whole requests still get in meanwhile.
            whole = [await client.post("/compress", content=SMALL, headers=JSON) for _ in range(3)]
            assert guard.admission.waiting == 0
            # The bytes they buffer have a bound: 4 x 900 bytes held, 900 more are refused.
            big = [
                asyncio.ensure_future(
                    client.post("/compress", content=dripping(b" " * 900), headers=JSON)
                )
                for _ in range(4)
            ]
            while guard.bodies.reading_bytes < 3600:
                await asyncio.sleep(0.01)
            refused = await client.post("/compress", content=dripping(b" " * 900), headers=JSON)
            done = list(await asyncio.gather(*drippers, *big))
            assert guard.bodies.reading_bytes == 0
            return done, refused, whole

    done, refused, whole = _run(go())
    assert [r.status_code for r in whole] == [200, 200, 200]
    for response in done:  # the whole body within the read timeout, not per chunk
        check_error(response, 408, "RequestTimeoutError")
    check_error(refused, 429, "OverloadedError")


def test_405_says_what_is_allowed_and_a_trailing_slash_is_a_404_in_the_error_shape() -> None:
    async def go() -> list[httpx.Response]:
        async with _client() as client:
            return [
                await client.get("/compress"),
                await client.delete("/healthz"),
                await client.get("/healthz/"),
                await client.post("/compress/", content=SMALL, headers=JSON),
            ]

    get_compress, delete_healthz, healthz_slash, compress_slash = _run(go())
    check_error(get_compress, 405, "MethodNotAllowedError")
    assert get_compress.headers["allow"] == "POST"
    check_error(delete_healthz, 405, "MethodNotAllowedError")
    assert "GET" in delete_healthz.headers["allow"]
    check_error(healthz_slash, 404, "NotFoundError")
    check_error(compress_slash, 404, "NotFoundError")


def test_no_page_loads_assets_from_elsewhere_but_the_schema_stays() -> None:
    async def go() -> list[httpx.Response]:
        async with _client() as client:
            return [await client.get(path) for path in ("/docs", "/redoc", "/openapi.json")]

    docs, redoc, schema = _run(go())
    check_error(docs, 404, "NotFoundError")
    check_error(redoc, 404, "NotFoundError")
    assert "/compress" in schema.json()["paths"]
