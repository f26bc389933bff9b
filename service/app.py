"""HTTP service: ``POST /compress`` takes the seed's request and answers in its format.

``GET /healthz`` says the process is up; ``GET /readyz`` also checks the scorer (a
Triton scorer must answer). The OpenAPI schema is at ``/openapi.json``. Errors are JSON,
``{"error": {"type": ..., "message": ...}}``; a bad request is a 400 that names the field,
and the service stays up.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tersify.compressor import DEFAULT_PRICE_PER_1K, Compressor
from tersify.errors import (
    BadRequestError,
    ScorerTimeoutError,
    ScorerUnavailableError,
    TersifyError,
)
from tersify.request import CompressRequest, answer
from tersify.request import compress as compress_request

MAX_BODY_BYTES = 8 * 1024 * 1024

_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["context"],
    "additionalProperties": False,
    "properties": {
        "context": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "the text(s) to compress",
        },
        "question": {"type": "string", "description": "kept verbatim at the end"},
        "instruction": {"type": "string", "description": "kept verbatim at the start"},
        "rate": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "fraction kept",
        },
        "ratio": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "description": "fraction removed (LLMLingua 0.1)",
        },
        "target_token": {
            "type": "integer",
            "minimum": 1,
            "description": "size of the whole compressed prompt",
        },
    },
}
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
            "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}


def _error(status: int, exc: BaseException) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"type": type(exc).__name__, "message": str(exc)}},
    )


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        return _error(status, exc)

    return handle


def create_app(compressor: Compressor, *, price_per_1k: float = DEFAULT_PRICE_PER_1K) -> FastAPI:
    """The service around ``compressor``."""
    app = FastAPI(
        title="tersify",
        summary="Prompt compression with a small causal LM scorer.",
        version="0.1.0",
    )

    # Starlette picks the handler of the nearest class in the exception's MRO.
    for kind, status in (
        (BadRequestError, 400),
        (ScorerUnavailableError, 503),
        (ScorerTimeoutError, 504),
        (TersifyError, 500),
    ):
        app.add_exception_handler(kind, _handler(status))

    @app.post(
        "/compress",
        summary="Compress a prompt to a budget",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
            }
        },
        responses={
            200: {"content": {"application/json": {"schema": _ANSWER_SCHEMA}}},
            400: {"content": {"application/json": {"schema": _ERROR_SCHEMA}}},
            503: {"content": {"application/json": {"schema": _ERROR_SCHEMA}}},
        },
    )
    async def compress(request: Request) -> dict[str, Any]:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise BadRequestError(f"the request is larger than {MAX_BODY_BYTES} bytes")
        parsed = CompressRequest.from_json(body)
        result = await run_in_threadpool(compress_request, parsed, compressor)
        return answer(result, price_per_1k)

    @app.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="The scorer can be used")
    async def readyz() -> JSONResponse:
        check = getattr(compressor.scorer, "is_ready", None)
        ready = True if check is None else bool(await run_in_threadpool(check))
        return JSONResponse(
            status_code=200 if ready else 503,
            content={
                "status": "ready" if ready else "scorer unavailable",
                "scorer": compressor.scorer.name,
            },
        )

    return app
