"""The playground page at ``/``: compress a prompt in a browser and see what was dropped.

One self-contained HTML file shipped in the package (``static/playground.html``: its CSS
and JavaScript inline, no external assets, nothing from a CDN). It calls ``POST /compress``
with ``"explain": true`` from the same origin. It is served with a Content-Security-Policy
that allows exactly its own inline script and style (by SHA-256) and requests to this
service only, so the page can load nothing else and send text nowhere else.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from tersify.errors import InternalError

PAGE = "static/playground.html"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)
_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=1)
def page() -> tuple[bytes, str]:
    """The page's bytes and its Content-Security-Policy, read from the package once."""
    try:
        html = resources.files("tersify.service").joinpath(PAGE).read_text(encoding="utf-8")
    except (OSError, ModuleNotFoundError) as exc:
        raise InternalError(
            f"the playground page {PAGE} is missing from the installed tersify.service: "
            "reinstall tersify"
        ) from exc
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(html):
        digest = base64.b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode("ascii")
        hashes[kind].append(f"'sha256-{digest}'")
    scripts = " ".join(hashes["script"]) or "'none'"
    styles = " ".join(hashes["style"]) or "'none'"
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {styles}",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return html.encode("utf-8"), policy


def add_playground(
    app: FastAPI, path: str = "/", *, open_path: Callable[[str], None] | None = None
) -> None:
    """Serve the playground page at ``path`` of ``app`` (``GET`` and ``HEAD``).

    The page holds no secret, so ``open_path(path)`` (the service guard's) lets it load
    without a token; the page then sends the token the user types with each compression.
    """
    if open_path is not None:
        open_path(path)

    async def playground() -> HTMLResponse:
        # Read on first use: a damaged install breaks this page (a 500), not the API.
        body, policy = page()
        return HTMLResponse(content=body, headers={**_HEADERS, "Content-Security-Policy": policy})

    app.add_api_route(
        path,
        playground,
        methods=["GET", "HEAD"],
        include_in_schema=False,
        response_class=HTMLResponse,
    )
