"""The embedded scorer: the exported ONNX graph run in-process by onnxruntime."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnxruntime as ort

from tersify.bundle import INPUT_NAME, OUTPUT_NAME, Bundle
from tersify.engines.tokenizer import BundleScorerBase
from tersify.errors import BadRequestError, ScorerError, ScorerUnavailableError
from tersify.limits import check_deadline
from tersify.scoring import FloatArray, IntArray

DEFAULT_MAX_WINDOW = 2048
# The graph holds [batch, seq, vocab] fp32 logits inside, so tokens per onnxruntime run
# are bounded by their size: 512 tokens for Gemma's 262k vocabulary, 1,365 for SmolLM2's
# 49k. Measured on the example request (2 cores): Gemma at 512 tokens per run took 9.7 s
# and 3.8 GB, at 1,024 10.2 s and 6.0 GB.
LOGITS_BUDGET_BYTES = 256 * 1024 * 1024
MIN_BATCH_TOKENS = 512


class OnnxScorer(BundleScorerBase):
    """Scores token windows with onnxruntime; windows are batched by length to limit padding."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        variant: str = "fp32",
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        batch_tokens: int | None = None,
    ) -> None:
        if batch_tokens is not None and batch_tokens < 1:
            raise BadRequestError(f"batch_tokens={batch_tokens} must be positive")
        super().__init__(bundle, variant=variant)
        logits_per_token = 4 * max(1, bundle.manifest.vocab_size)
        self._batch_tokens = batch_tokens or max(
            MIN_BATCH_TOKENS, LOGITS_BUDGET_BYTES // logits_per_token
        )
        self._session = session(bundle, variant, providers=providers, threads=threads)

    @property
    def max_window(self) -> int:
        """The longest window scored in one row."""
        return min(self._bundle.manifest.max_positions, DEFAULT_MAX_WINDOW)

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        """Per-token log-probs of each window, run in length-sorted, padded batches."""
        return batched_logprobs(
            windows,
            self._batch_tokens,
            lambda ids: self._session.run([OUTPUT_NAME], {INPUT_NAME: ids})[0],
            engine="the ONNX scorer",
            errors=(Exception,),  # onnxruntime's errors have no common public base
        )


def session(
    bundle: Bundle,
    variant: str,
    *,
    providers: Sequence[str] | None = None,
    threads: int | None = None,
) -> ort.InferenceSession:
    """An onnxruntime session on ``bundle``'s ``variant`` graph, every optimisation on.

    ``providers`` are tried in order where this onnxruntime has them (default: all it has).
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
    available = ort.get_available_providers()
    chosen = [p for p in (providers or available) if p in available] or ["CPUExecutionProvider"]
    try:
        return ort.InferenceSession(
            str(bundle.model_path(variant)), sess_options=options, providers=chosen
        )
    except Exception as exc:  # onnxruntime raises its own base types
        raise ScorerUnavailableError(
            f"cannot load the {bundle.manifest.kind} in {bundle.folder}: {exc}; export it again"
        ) from exc


def batched_logprobs(
    windows: Sequence[IntArray],
    batch_tokens: int,
    run: Callable[[IntArray], FloatArray],
    *,
    engine: str,
    errors: tuple[type[Exception], ...],
) -> list[FloatArray]:
    """``run`` over the windows in :func:`length_batches`, right-padded; each window's row.

    The padding is never read: a row's log-probs depend on the ids before each position.
    ``errors`` raised by ``run`` become a :class:`ScorerError` naming ``engine`` and the batch.
    """
    results: list[FloatArray] = [np.zeros(0, dtype=np.float32)] * len(windows)
    for batch in length_batches([len(w) for w in windows], batch_tokens):
        check_deadline()  # a passed deadline or a caller that left stops here
        width = max(len(windows[i]) for i in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        for row, index in enumerate(batch):
            ids[row, : len(windows[index])] = windows[index]
        try:
            out = run(ids)
        except errors as exc:
            raise ScorerError(f"{engine} failed on a {list(ids.shape)} batch: {exc}") from exc
        for row, index in enumerate(batch):
            results[index] = np.array(out[row, : len(windows[index])], dtype=np.float32)
    return results


def length_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Group window indices, longest first, so each padded batch holds about ``batch_tokens``.

    >>> length_batches([5, 9, 4, 9], 18)
    [[1, 3], [0, 2]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for index in order:
        if batches and lengths[batches[-1][0]] * (len(batches[-1]) + 1) <= batch_tokens:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches
