"""HTTP service: ``POST /compress`` takes a JSON compression request (``tersify.request``).

``GET /healthz`` says the process is up; ``GET /readyz`` also checks the scorer (a
Triton scorer must answer); ``GET /metrics`` is Prometheus text. The OpenAPI schema is at
``/openapi.json``. Every route obeys the serving contract through one
:class:`~tersify.service.guard.Guard` (admission, limits, deadline, auth, errors,
metrics); every non-2xx answer is ``{"error": {"type", "message", "request_id"}}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tersify.compressor import DEFAULT_PRICE_PER_1K, Compressor
from tersify.errors import ScorerUnavailableError
from tersify.limits import Deadline
from tersify.request import CompressRequest, answer, request_schema
from tersify.request import compress as compress_request
from tersify.service.config import ServeConfig
from tersify.service.errors import (
    HTTPError,
    MethodNotAllowedError,
    NotFoundError,
    error_response,
)
from tersify.service.gateway import Gateway, add_gateway
from tersify.service.guard import Guard
from tersify.service.metrics import CONTENT_TYPE
from tersify.service.middleware import GuardMiddleware
from tersify.service.playground import add_playground

_ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {
            "type": "object",
            "properties": {
                "compressed_prompt": {"type": "string"},
                "origin_tokens": {"type": "integer"},
                "compressed_tokens": {"type": "integer"},
                "ratio": {"type": "string", "example": "1.3x"},
                "rate": {"type": "string", "example": "75.1%"},
                "saving": {"type": "string", "example": ", Saving $0.1 in GPT-4."},
            },
        }
    },
}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }
    },
}


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status in (400, 401, 408, 413, 415, 421, 429, 500, 503, 504)
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own 404/405 (and any other HTTPException) in the one error shape.
    status = getattr(exc, "status_code", 500)
    kind: HTTPError
    if status == 404:
        kind = NotFoundError(f"no route {request.url.path}: see /openapi.json")
    elif status == 405:
        method = request.scope.get("state", {}).get("method", request.method)  # HEAD runs as GET
        kind = MethodNotAllowedError(
            f"{method} is not allowed on {request.url.path}: see /openapi.json"
        )
    else:
        kind = HTTPError(str(getattr(exc, "detail", exc)))
        kind.status = status
    # Starlette's own headers stay (a 405's Allow, RFC 9110).
    return error_response(kind, request.state.request_id, getattr(exc, "headers", None))


def create_app(
    compressor: Compressor,
    *,
    price_per_1k: float = DEFAULT_PRICE_PER_1K,
    config: ServeConfig | None = None,
    guard: Guard | None = None,
    gateway: Gateway | None = None,
) -> FastAPI:
    """The service around ``compressor``; ``config`` (or a ready ``guard``) sets its bounds.

    With a ``gateway``, ``POST /v1/chat/completions`` compresses chats on their way to it.
    """
    guard = guard or Guard(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        guard.admission.cancel_all()  # past the grace period: stop what still runs
        if gateway is not None:
            await gateway.aclose()

    app = FastAPI(
        title="tersify",
        summary="Prompt compression with a small causal LM scorer.",
        version="0.1.0",
        lifespan=lifespan,
        # `/healthz/` is a 404 in the error shape, not an empty-bodied 307 to `/healthz`.
        redirect_slashes=False,
        # FastAPI's /docs and /redoc load their scripts from CDNs: no external assets.
        docs_url=None,
        redoc_url=None,
    )
    app.state.guard = guard
    app.add_middleware(GuardMiddleware, guard=guard)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.post(
        "/compress",
        summary="Compress a prompt to a budget",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": request_schema()}},
            }
        },
        responses={200: {"content": {"application/json": {"schema": _ANSWER_SCHEMA}}}, **_ERRORS},
    )
    async def compress(request: Request) -> dict[str, Any]:
        async with guard.admit(request) as admitted:
            body = await admitted.body()
            # Checked before the queue, off the event loop: a bad request is a 400 at once.
            parsed = await run_in_threadpool(CompressRequest.from_json, body)

            def work(deadline: Deadline) -> dict[str, Any]:
                result = compress_request(parsed, compressor, deadline=deadline)
                guard.metrics.observe_work(result.scorer_tokens, result.scorer_seconds)
                return answer(result, price_per_1k)

            return await admitted.run(work)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The scorer can be used")
    async def readyz(request: Request) -> JSONResponse:
        check = getattr(compressor.scorer, "is_ready", None)
        ready = True if check is None else bool(await run_in_threadpool(check))
        if ready:
            return JSONResponse({"status": "ready", "scorer": compressor.scorer.name})
        refusal = error_response(
            ScorerUnavailableError(f"the scorer {compressor.scorer.name} does not answer"),
            request.state.request_id,
        )
        body = json.loads(bytes(refusal.body))
        body.update(status="scorer unavailable", scorer=compressor.scorer.name)
        return JSONResponse(status_code=503, content=body)

    @app.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(guard.metrics.render(), media_type=CONTENT_TYPE)

    # Further pages and routes (the playground at /, the gateway) mount here, each using
    # `guard` for the serving contract.
    add_playground(app, open_path=guard.open_path)
    if gateway is not None:
        add_gateway(app, guard, compressor, gateway)
    return app
