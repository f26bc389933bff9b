"""Compress a prompt with the ``tersify_compress`` Triton model, from Python with tritonclient.

    python examples/triton_compress.py grpc://127.0.0.1:8001 examples/seed_request.json

Start a Triton that serves it with ``tersify triton start`` (it prints the gRPC URL). The
JSON request travels as one BYTES element (``REQUEST``, shape [1, 1]: a batch of one); the
answer comes back the same way (``RESPONSE``), byte for byte what ``tersify compress``
prints, with its two token counts (INT64) beside it.
Several requests can be in flight at once: Triton merges their scorer windows.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException


def compress(url: str, request: bytes) -> tuple[bytes, int, int]:
    """Send one request; return the answer's bytes, origin tokens and compressed tokens."""
    parsed = urlparse(url)
    client = grpcclient.InferenceServerClient(f"{parsed.hostname}:{parsed.port}")
    tensor = grpcclient.InferInput("REQUEST", [1, 1], "BYTES")
    # An object array of bytes: np.bytes_ would drop trailing NUL bytes.
    tensor.set_data_from_numpy(np.array([[request]], dtype=np.object_))
    try:
        result = client.infer("tersify_compress", [tensor], client_timeout=300)
    finally:
        client.close()
    return (
        bytes(result.as_numpy("RESPONSE")[0, 0]),
        int(result.as_numpy("ORIGIN_TOKENS")[0, 0]),
        int(result.as_numpy("COMPRESSED_TOKENS")[0, 0]),
    )


def main(argv: list[str]) -> int:
    """Compress the request file ``argv[1]`` on the server ``argv[0]``."""
    if len(argv) != 2:
        sys.stderr.write(__doc__.strip().splitlines()[2].strip() + "\n")
        return 2
    try:
        answer, origin, compressed = compress(argv[0], Path(argv[1]).read_bytes())
    except InferenceServerException as exc:
        sys.stderr.write(f"tersify: error: {exc.message()}\n")
        return 2 if exc.status() == "StatusCode.INVALID_ARGUMENT" else 1
    sys.stdout.buffer.write(answer)
    sys.stderr.write(f"origin_tokens={origin} compressed_tokens={compressed}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
