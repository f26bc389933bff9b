"""The scorer run by OpenVINO on a CPU: the ``openvino`` variants of an exported scorer.

OpenVINO does not run the fp32 graph right (its ReduceLogSumExp reduces every axis, and it
drops the Slice before the GatherElements), so ``tersify export --openvino`` writes a
graph of its own with the same contract: the next token's logit taken with a flat Gather
over every position, the normaliser as max + log(sum(exp(x - max))), the shift done on
``[batch, seq]`` floats. ``openvino`` runs it in fp32 (the same log-probs as onnxruntime,
faster on these CPUs); ``openvino-int8`` is the same graph quantized statically (NNCF,
calibrated on real text with SmoothQuant); ``openvino-shortlist`` runs the ``shortlist``
graph (:mod:`tersify.export.shortlist`), which OpenVINO runs right as it is. Each variant
is checked against fp32 at export on which units it keeps, and refused there when it does
not agree.

Needs ``openvino`` (``pip install 'tersify[openvino]'``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from tersify.bundle import Bundle
from tersify.engines.onnx import LOGITS_BUDGET_BYTES, MIN_BATCH_TOKENS, length_batches
from tersify.engines.tokenizer import BundleScorerBase
from tersify.errors import BadRequestError, ScorerError, ScorerUnavailableError
from tersify.limits import check_deadline
from tersify.scoring import FloatArray, IntArray

try:
    import openvino as ov
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the OpenVINO scorer needs openvino: pip install 'tersify[openvino]'"
    ) from exc

VARIANTS = ("openvino", "openvino-int8", "openvino-shortlist")
DEFAULT_MAX_WINDOW = 2048


class OpenVinoScorer(BundleScorerBase):
    """Scores token windows with OpenVINO on the CPU, batched by length like onnxruntime."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        variant: str = "openvino",
        threads: int | None = None,
        precision: str = "f32",
        batch_tokens: int | None = None,
    ) -> None:
        if variant not in VARIANTS:
            raise BadRequestError(f"variant={variant!r} is not an OpenVINO variant {VARIANTS}")
        if batch_tokens is not None and batch_tokens < 1:
            raise BadRequestError(f"batch_tokens={batch_tokens} must be positive")
        super().__init__(bundle, variant=f"{variant}:{precision}")
        self._local = threading.local()
        self._batch_tokens = batch_tokens or max(
            MIN_BATCH_TOKENS, LOGITS_BUDGET_BYTES // (4 * max(1, bundle.manifest.vocab_size))
        )
        # Without a hint OpenVINO runs bf16 where the CPU has it; fp32 keeps the checked path.
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self._compiled = ov.Core().compile_model(str(bundle.model_path(variant)), "CPU", config)
            self._compiled.create_infer_request()  # fails here, not on the first request
        except (RuntimeError, ValueError) as exc:  # OpenVINO raises RuntimeError subclasses
            raise ScorerUnavailableError(
                f"OpenVINO cannot load the {variant!r} scorer in {bundle.folder}: {exc}; "
                "export it again or use variant='fp32'"
            ) from exc

    @property
    def _request(self) -> Any:
        """The calling thread's infer request, made on its first call.

        One request must not run in two threads at once (the service scores two
        compressions at a time); a request per thread leaves the scheduling to OpenVINO.
        """
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self._compiled.create_infer_request()
        return request

    @property
    def max_window(self) -> int:
        """The longest window scored in one row."""
        return min(self._bundle.manifest.max_positions, DEFAULT_MAX_WINDOW)

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        """Per-token log-probs of each window, run in length-sorted, right-padded batches."""
        results: list[FloatArray] = [np.zeros(0, dtype=np.float32)] * len(windows)
        for batch in length_batches([len(w) for w in windows], self._batch_tokens):
            check_deadline()  # a passed deadline or a caller that left stops here
            width = max(len(windows[i]) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            for row, index in enumerate(batch):
                ids[row, : len(windows[index])] = windows[index]
            try:
                out = self._request.infer({0: ids})[0]
            except RuntimeError as exc:
                raise ScorerError(
                    f"the OpenVINO scorer failed on a [{len(batch)}, {width}] batch: {exc}"
                ) from exc
            for row, index in enumerate(batch):
                results[index] = np.array(out[row, : len(windows[index])], dtype=np.float32)
        return results
