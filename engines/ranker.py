"""The embedded ranker: an exported sentence-embedding graph run in-process by onnxruntime.

``tersify.client.ranker.open_ranker`` opens it (or its Triton twin) by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tersify.bundle import RANKER_INPUTS, RANKER_KIND, RANKER_OUTPUT, Bundle
from tersify.engines.tokenizer import load_tokenizer
from tersify.errors import ScorerError, ScorerUnavailableError
from tersify.limits import check_deadline
from tersify.scoring import FloatArray, IntArray

# Tokens per onnxruntime run, texts sorted by length so that padding stays small: small
# batches stay in cache (all-MiniLM-L6-v2, 2 cores: 512 tokens 0.58 s a request, 4096 0.99 s).
BATCH_TOKENS = 512


class RankerTokenizer:
    """BERT-style tokenization of an exported ranker: truncated ids and their masks."""

    def __init__(self, bundle: Bundle) -> None:
        if bundle.manifest.kind != RANKER_KIND:
            raise ScorerUnavailableError(
                f"{bundle.folder} holds a {bundle.manifest.kind}, not a ranker; export one "
                "with `tersify export --model all-minilm-l6-v2`"
            )
        self._tokenizer = load_tokenizer(bundle)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(bundle.manifest.max_positions)
        self.pad_id = int(bundle.manifest.verification.get("pad_token_id", 0))

    def encode(self, texts: Sequence[str]) -> list[IntArray]:
        """Each text's ids, special tokens included, cut to the model's length."""
        return [
            np.asarray(e.ids, dtype=np.int64)
            for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=True)
        ]

    def batches(self, texts: Sequence[str]) -> list[tuple[list[int], IntArray, IntArray]]:
        """(indices, ids, mask) batches, longest texts first, each padded to its longest."""
        encoded = self.encode(texts)
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        out: list[tuple[list[int], IntArray, IntArray]] = []
        group: list[int] = []
        for index in order:
            if group and len(encoded[group[0]]) * (len(group) + 1) > BATCH_TOKENS:
                out.append(_padded(group, encoded, self.pad_id))
                group = []
            group.append(index)
        if group:
            out.append(_padded(group, encoded, self.pad_id))
        return out


def _padded(
    group: list[int], encoded: list[IntArray], pad_id: int
) -> tuple[list[int], IntArray, IntArray]:
    width = max(len(encoded[i]) for i in group)
    ids = np.full((len(group), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(group), width), dtype=np.int64)
    for row, index in enumerate(group):
        ids[row, : len(encoded[index])] = encoded[index]
        mask[row, : len(encoded[index])] = 1
    return group, ids, mask


class OnnxRanker:
    """Embeds texts with an exported ranker in-process (onnxruntime, CPU)."""

    def __init__(self, bundle: Bundle, *, threads: int | None = None) -> None:
        from tersify.engines.onnx import session  # onnxruntime loads only when needed

        self._bundle = bundle
        self._tokenizer = RankerTokenizer(bundle)
        self._session = session(bundle, "fp32", providers=["CPUExecutionProvider"], threads=threads)

    @property
    def name(self) -> str:
        """The exported model's name."""
        return self._bundle.manifest.name

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """One L2-normalised embedding per text, ``[len(texts), dim]``."""
        dimension = int(self._bundle.manifest.verification.get("dimension", 0))
        result = np.zeros((len(texts), dimension), dtype=np.float32)
        for indices, ids, mask in self._tokenizer.batches(texts):
            check_deadline()
            try:
                (out,) = self._session.run(
                    [RANKER_OUTPUT], {RANKER_INPUTS[0]: ids, RANKER_INPUTS[1]: mask}
                )
            except Exception as exc:  # onnxruntime's errors have no common public base
                raise ScorerError(f"the ranker failed on a {list(ids.shape)} batch: {exc}") from exc
            if result.shape[1] != out.shape[1]:
                result = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
            result[indices] = out
        return result
