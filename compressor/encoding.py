"""The target LLM's tokenizer: budgets are counted in its tokens.

The BPE files ship inside the package (``tersify/encodings``), so counting never
downloads anything. ``cl100k_base`` (GPT-4, GPT-3.5) is the default; ``o200k_base``
(GPT-4o and later) is the other one shipped.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from importlib import resources

import tiktoken

from tersify.errors import BadRequestError, InternalError

DEFAULT_ENCODING = "cl100k_base"
SHIPPED_ENCODINGS = ("cl100k_base", "o200k_base")


@functools.lru_cache(maxsize=len(SHIPPED_ENCODINGS))
def load_encoding(name: str = DEFAULT_ENCODING) -> tiktoken.Encoding:
    """Return the shipped tiktoken encoding called ``name``, read from package files.

    >>> len(load_encoding("cl100k_base").encode("hello world"))
    2
    """
    if name not in SHIPPED_ENCODINGS:
        raise BadRequestError(
            f"encoding={name!r} is not shipped with tersify; use one of {list(SHIPPED_ENCODINGS)}"
        )
    folder = resources.files("tersify").joinpath("encodings")
    spec = json.loads(folder.joinpath(f"{name}.json").read_text(encoding="utf-8"))
    raw = folder.joinpath(f"{name}.tiktoken").read_bytes()
    if hashlib.sha256(raw).hexdigest() != spec["sha256"]:
        raise InternalError(f"the installed {name}.tiktoken is corrupt; reinstall tersify")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in raw.splitlines() if line)
    }
    return tiktoken.Encoding(
        name=name,
        pat_str=spec["pat_str"],
        mergeable_ranks=ranks,
        special_tokens={str(k): int(v) for k, v in spec["special_tokens"].items()},
    )


def count_tokens(encoding: tiktoken.Encoding, text: str) -> int:
    """Count ``text`` in target tokens; special-token text counts as ordinary text."""
    return len(encoding.encode_ordinary(text))
