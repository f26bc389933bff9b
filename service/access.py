"""Who may ask, and in what framing: repeated headers, ``Host``, the bearer token.

:class:`Access` refuses a request before any route runs: ambiguous framing (400), a
``Host`` the server does not answer for (421), a missing or wrong token (401). The token is
compared in constant time; ``/healthz`` (and the probes, unless protected) stay open.

>>> header_map({"headers": [(b"Host", b"127.0.0.1:8080")]})
{'host': '127.0.0.1:8080'}
>>> hostname("[::1]:8080"), hostname("localhost:80")
('[::1]', 'localhost')
"""

from __future__ import annotations

import hmac

from starlette.types import Scope

from tersify.service.config import ServeConfig
from tersify.service.errors import (
    MalformedRequestError,
    MisdirectedRequestError,
    UnauthorizedError,
)
from tersify.service.metrics import Metrics

TIMEOUT_HEADER = "x-tersify-timeout"
ALWAYS_OPEN = frozenset({"/healthz"})
PROBES = frozenset({"/readyz", "/metrics"})
# Headers that say one thing once: sent twice, a proxy and this server could each read a
# different one (the first, the last), so a repeat is refused rather than resolved.
SINGLE_HEADERS = frozenset(
    {
        "authorization",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "transfer-encoding",
        TIMEOUT_HEADER,
        "x-request-id",
    }
)


class Access:
    """The access checks of one service: its allowed hosts, its token, its open paths."""

    def __init__(self, config: ServeConfig, metrics: Metrics) -> None:
        self._config = config
        self._metrics = metrics
        self._open = set(ALWAYS_OPEN) | (set() if config.protect_probes else set(PROBES))
        self._token = None if config.token is None else config.token.strip().encode()

    def open_path(self, path: str) -> None:
        """Serve ``path`` without a token (a static page, say)."""
        self._open.add(path)

    def check(self, scope: Scope) -> None:
        """Refuse ambiguous framing (400), a wrong ``Host`` (421), a missing token (401).

        A header of :data:`SINGLE_HEADERS` sent twice is ambiguous framing too.
        """
        repeated = repeated_header(scope)
        if repeated:
            self._metrics.reject("framing")
            raise MalformedRequestError(
                f"the header {repeated} is sent more than once: send it once"
            )
        headers = header_map(scope)
        if "content-length" in headers and "transfer-encoding" in headers:
            # h11 lets Transfer-Encoding win; a proxy in front may not (request smuggling).
            self._metrics.reject("framing")
            raise MalformedRequestError(
                "Content-Length and Transfer-Encoding together are refused: send one of them"
            )
        allowed = self._config.allowed_hosts
        if allowed is not None:
            host = hostname(headers.get("host", ""))
            if host not in allowed:
                self._metrics.reject("host")
                raise MisdirectedRequestError(
                    f"this server answers for {', '.join(sorted(allowed))}, "
                    f"not Host {host!r}: use one of those names"
                )
        if self._token is None or scope.get("path") in self._open:
            return
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self._token
        ):
            self._metrics.reject("auth")
            raise UnauthorizedError(
                "a bearer token is required: send 'Authorization: Bearer TOKEN' with the "
                "server's token"
            )


def repeated_header(scope: Scope) -> str | None:
    """The first header of :data:`SINGLE_HEADERS` that ``scope`` carries twice, if any."""
    seen: set[str] = set()
    for key, _ in scope.get("headers", ()):
        name: str = key.decode("latin-1").lower()
        if name in SINGLE_HEADERS:
            if name in seen:
                return name
            seen.add(name)
    return None


def header_map(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of a repeated one)."""
    return {
        key.decode("latin-1").lower(): value.decode("latin-1")
        for key, value in scope.get("headers", ())
    }


def hostname(host: str) -> str:
    """The name part of a ``Host`` header, lower case, without its port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
