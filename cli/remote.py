"""``tersify compress --server grpc://HOST:PORT REQUEST``: the whole request to Triton.

The request goes, as it is, to the ``tersify_compress`` model as one BYTES element; its
``RESPONSE`` (BYTES) is what ``tersify compress`` would print, byte for byte. Triton's
errors come back as tersify's: ``INVALID_ARGUMENT`` is the caller's fault (exit 2), the
rest are runtime failures (exit 1), each with the server's one-line message.

>>> CompressServer.parse("grpc://triton:8001")
CompressServer(address='triton:8001', model='tersify_compress', timeout_s=None)
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

from tersify.errors import (
    BadRequestError,
    DeadlineExceededError,
    ScorerError,
    ScorerUnavailableError,
    TersifyError,
)

COMPRESS_MODEL = "tersify_compress"
# Triton's gRPC status codes, by whose fault they are.
_KINDS: dict[str, type[TersifyError]] = {
    "StatusCode.INVALID_ARGUMENT": BadRequestError,
    "StatusCode.UNAVAILABLE": ScorerUnavailableError,
    "StatusCode.DEADLINE_EXCEEDED": DeadlineExceededError,
    "StatusCode.NOT_FOUND": ScorerUnavailableError,
}


@dataclass(frozen=True)
class CompressServer:
    """Where ``tersify_compress`` is served: ``grpc://HOST:PORT[/model][?timeout=S]``."""

    address: str
    model: str = COMPRESS_MODEL
    timeout_s: float | None = None

    @classmethod
    def parse(cls, url: str) -> CompressServer:
        """Parse a server URL; a bad one is a :class:`BadRequestError` that says the form."""
        parsed = urlparse(url)
        try:
            port = parsed.port
        except ValueError:
            port = None
        query = parse_qs(parsed.query)
        if parsed.scheme != "grpc" or not parsed.hostname or not port or set(query) - {"timeout"}:
            raise BadRequestError(
                f"--server {url!r}: give grpc://HOST:PORT[/MODEL][?timeout=SECONDS]"
            )
        timeout = query.get("timeout", [None])[0]
        try:
            timeout_s = None if timeout is None else float(timeout)
        except ValueError:
            timeout_s = -1.0
        if timeout_s is not None and not timeout_s > 0:
            raise BadRequestError(f"--server {url!r}: timeout must be a positive number of seconds")
        return cls(f"{parsed.hostname}:{port}", parsed.path.strip("/") or COMPRESS_MODEL, timeout_s)


def compress_remote(server: CompressServer, request: bytes) -> bytes:
    """Send one JSON request to ``tersify_compress``; return its answer's bytes."""
    import numpy as np

    try:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
    except ImportError as exc:
        raise ScorerUnavailableError(
            "--server needs tritonclient: pip install 'tersify[triton]'"
        ) from exc

    # One BYTES element (shape [1, 1]: a batch of one); an object array keeps every byte.
    data = np.array([[request]], dtype=np.object_)
    tensor = grpcclient.InferInput("REQUEST", list(data.shape), "BYTES")
    tensor.set_data_from_numpy(data)
    client = grpcclient.InferenceServerClient(server.address)
    try:
        result = client.infer(server.model, [tensor], client_timeout=server.timeout_s)
    except InferenceServerException as exc:
        kind = _KINDS.get(str(exc.status()), ScorerError)
        message = exc.message() or str(exc)
        if kind is ScorerUnavailableError and "failed to connect" in message:
            message = f"no Triton answers at {server.address} ({message})"
        raise kind(" ".join(message.split())) from None
    finally:
        client.close()
    answer = result.as_numpy("RESPONSE")
    if answer is None or answer.size != 1 or not isinstance(answer.flat[0], bytes):
        raise ScorerError(f"{server.model} at {server.address} answered without one BYTES RESPONSE")
    return bytes(answer.flat[0])


def add_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--server`` to ``tersify compress``."""
    parser.add_argument(
        "--server",
        default=None,
        metavar="grpc://HOST:PORT",
        help="send the whole request to Triton's tersify_compress model instead of "
        "compressing here (--scorer, --encoding and --price-per-1k are then the server's)",
    )


def run(url: str, request: bytes) -> str:
    """What ``tersify compress --server URL`` prints for ``request``."""
    return compress_remote(CompressServer.parse(url), request).decode("utf-8")
