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


class BundleTokenizer:
    """Tokenizes text with an exported scorer's ``tokenizer.json``."""

    def __init__(self, bundle: Bundle) -> None:
        try:
            self._tokenizer = Tokenizer.from_file(str(bundle.tokenizer_path))
        except Exception as exc:  # tokenizers raises its own exception type
            raise ScorerUnavailableError(
                f"cannot read {bundle.tokenizer_path}: {exc}; export the scorer again"
            ) from exc

    def tokenize(self, text: str) -> Tokenized:
        """Token ids and character offsets of ``text``, without special tokens."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return Tokenized(
            ids=np.asarray(encoding.ids, dtype=np.int64),
            offsets=np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2),
        )


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
