"""The scorer's tokenizer, read from an exported scorer folder; shared by all transports."""

from __future__ import annotations

import numpy as np
from tokenizers import Tokenizer

from tersify.client.bundle import Bundle
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
