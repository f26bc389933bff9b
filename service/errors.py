"""One error contract for every HTTP front: ``{"error": {"type", "message", "request_id"}}``.

The kinds only HTTP has (a missing token, a wrong ``Content-Type``, an unknown path) are
:class:`~tersify.errors.BadRequestError` subclasses with their own status; the core's
kinds map to a status by the table below, nearest class first. Anything else is a bug:
an ``InternalError`` 500 whose message says nothing about the inside (the traceback goes
to the server's log, never to the client).

>>> status_of(LimitExceededError("too big"))
413
>>> status_of(KeyError("x"))
500
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import JSONResponse

from tersify.errors import (
    BadRequestError,
    CancelledError,
    DeadlineExceededError,
    ExportError,
    InternalError,
    LimitExceededError,
    OverloadedError,
    ScorerError,
    ScorerTimeoutError,
    ScorerUnavailableError,
    TersifyError,
    UpstreamError,
)


class HTTPError(BadRequestError):
    """A request that HTTP itself refuses; ``status`` is its code."""

    status = 400


class MalformedRequestError(HTTPError):
    """HTTP framing that cannot be trusted (``Content-Length`` with ``Transfer-Encoding``).

    Answered with ``Connection: close``: what follows on the connection cannot be framed.
    """


class UnauthorizedError(HTTPError):
    """No valid bearer token."""

    status = 401


class NotFoundError(HTTPError):
    """No such path."""

    status = 404


class MethodNotAllowedError(HTTPError):
    """The path exists, the method does not."""

    status = 405


class RequestTimeoutError(HTTPError):
    """The client sent its body too slowly."""

    status = 408


class UnsupportedMediaTypeError(HTTPError):
    """The body is not ``application/json``."""

    status = 415


class MisdirectedRequestError(HTTPError):
    """The ``Host`` header names a host this server does not answer for."""

    status = 421


class ShuttingDownError(TersifyError):
    """The server is stopping and gave up on this request: send it elsewhere."""


# The nearest class in an error's MRO decides (a LimitExceededError is a BadRequestError).
STATUS: dict[type[BaseException], int] = {
    LimitExceededError: 413,
    BadRequestError: 400,
    OverloadedError: 429,
    CancelledError: 499,
    DeadlineExceededError: 504,
    ScorerTimeoutError: 504,
    ScorerUnavailableError: 503,
    # Any other scorer failure (a Triton restarting mid-request, say): the scorer's, and
    # a retry may succeed; the message carries what the scorer said.
    ScorerError: 503,
    UpstreamError: 502,
    ShuttingDownError: 503,
    ExportError: 500,
    InternalError: 500,
    TersifyError: 500,
}
INTERNAL_MESSAGE = "an internal error occurred; the server's log has the details"


def status_of(exc: BaseException) -> int:
    """The HTTP status for ``exc``."""
    if isinstance(exc, HTTPError):
        return exc.status
    for kind in type(exc).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def error_body(exc: BaseException, request_id: str) -> dict[str, Any]:
    """The JSON body for ``exc``; an unexpected exception shows as an ``InternalError``."""
    if isinstance(exc, TersifyError):
        kind, message = type(exc).__name__, str(exc)
    else:
        kind, message = InternalError.__name__, INTERNAL_MESSAGE
    return {"error": {"type": kind, "message": message, "request_id": request_id}}


def error_response(
    exc: BaseException, request_id: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The answer for ``exc``, with ``Retry-After`` on a 429 and a challenge on a 401.

    ``headers`` are kept too (``Allow`` on a 405, say).
    """
    status = status_of(exc)
    headers = {**(headers or {}), "x-request-id": request_id}
    if isinstance(exc, OverloadedError):
        headers["retry-after"] = str(max(1, round(exc.retry_after)))
    if isinstance(exc, UnauthorizedError):
        headers["www-authenticate"] = 'Bearer realm="tersify"'
    if isinstance(exc, MalformedRequestError):
        headers["connection"] = "close"
    return JSONResponse(status_code=status, content=error_body(exc, request_id), headers=headers)
