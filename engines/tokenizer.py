"""What every bundle-backed scorer shares: the exported tokenizer and the manifest's facts.

Transports (onnxruntime in-process, Triton over gRPC) differ only in ``logprobs`` and
``max_window``.
"""

from __future__ import annotations

import hashlib

import numpy as np
from tokenizers import Tokenizer

from tersify.bundle import Bundle
from tersify.errors import ScorerUnavailableError
from tersify.scoring import Tokenized


def load_tokenizer(bundle: Bundle) -> Tokenizer:
    """The exported ``tokenizer.json`` of ``bundle`` (a scorer's or a ranker's)."""
    try:
        return Tokenizer.from_file(str(bundle.tokenizer_path))
    except Exception as exc:  # tokenizers raises its own exception type
        raise ScorerUnavailableError(
            f"cannot read {bundle.tokenizer_path}: {exc}; export the {bundle.manifest.kind} again"
        ) from exc


class BundleTokenizer:
    """Tokenizes text with an exported scorer's ``tokenizer.json``."""

    def __init__(self, bundle: Bundle) -> None:
        self._tokenizer = load_tokenizer(bundle)

    def tokenize(self, text: str) -> Tokenized:
        """Token ids and character offsets of ``text``, without special tokens."""
        # encode_batch runs without the GIL, encode holds it (1 MB of hex: 0.9 s during
        # which a server's event loop stood still); the lists are read a slice at a time
        # for the same reason (884k offsets at once held it 0.2 s).
        encoding = self._tokenizer.encode_batch([text], add_special_tokens=False)[0]
        parts = [encoding]
        if len(encoding) > _SLICE:
            encoding.truncate(_SLICE, stride=0)
            parts += encoding.overflowing
        return Tokenized(
            ids=np.concatenate([np.asarray(p.ids, dtype=np.int64) for p in parts]),
            offsets=np.concatenate(
                [np.asarray(p.offsets, dtype=np.int64).reshape(-1, 2) for p in parts]
            ),
        )


_SLICE = 32_768  # tokens read from the tokenizer at a time


class BundleScorerBase:
    """Name, BOS and tokenization of an exported scorer; subclasses bring the log-probs."""

    def __init__(self, bundle: Bundle, *, variant: str = "fp32") -> None:
        self._bundle = bundle
        self._tokenizer = BundleTokenizer(bundle)
        identity = f"{type(self).__name__}:{variant}\n{bundle.manifest.to_json()}"
        self._fingerprint = hashlib.sha256(identity.encode("utf-8")).hexdigest()

    @property
    def fingerprint(self) -> str:
        """Engine, variant and manifest (every file's SHA-256) hashed: a score cache's key.

        A re-export changes the manifest, so cached scores of the old model are never reused.
        """
        return self._fingerprint

    @property
    def name(self) -> str:
        """The exported model's name."""
        return self._bundle.manifest.name

    @property
    def bos_token_id(self) -> int | None:
        """The id put before each window."""
        return self._bundle.manifest.bos_token_id

    def tokenize(self, text: str) -> Tokenized:
        """Token ids and character offsets of ``text``, without special tokens."""
        return self._tokenizer.tokenize(text)
