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
from typing import Any, Literal

from tersify.bundle import Bundle
from tersify.engines.onnx import LOGITS_BUDGET_BYTES, MIN_BATCH_TOKENS, batched_logprobs
from tersify.engines.tokenizer import BundleScorerBase
from tersify.errors import BadRequestError, ScorerUnavailableError
from tersify.scoring import FloatArray, IntArray

try:
    import openvino as ov
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "the OpenVINO scorer needs openvino: pip install 'tersify[openvino]'"
    ) from exc

VARIANTS = ("openvino", "openvino-int8", "openvino-shortlist")
DEFAULT_MAX_WINDOW = 2048
AGREEMENT_BAR = 0.97  # the export's bar on kept units vs fp32 (tersify.export.openvino)
# The precision a variant runs in is checked at export, on the exporting CPU: the manifest's
# verification holds "<variant>_bf16_unit_agreement" where that CPU had bf16.
Precision = Literal["f32", "bf16"]


def pick_precision(variant: str, capabilities: Sequence[str], verification: Any) -> Precision:
    """bf16 where this CPU has it and the export checked it for ``variant``, else f32.

    Measured on an AVX2-only AMD EPYC (no VNNI, no bf16), Gemma 3's shortlist graph: int8
    weights (NNCF INT8_SYM/ASYM) ran 0.95x f32, static int8 (NNCF) 0.85x with 78 % of the
    units kept, so f32 is what such a CPU runs. ``capabilities`` is OpenVINO's
    ``OPTIMIZATION_CAPABILITIES`` for the CPU.

    >>> pick_precision("openvino-shortlist", ["FP32", "INT8"], {})
    'f32'
    """
    checked = verification.get(f"{variant.replace('-', '_')}_bf16_unit_agreement")
    has_bf16 = "BF16" in capabilities
    if has_bf16 and isinstance(checked, float) and checked >= AGREEMENT_BAR:
        return "bf16"
    return "f32"


class OpenVinoScorer(BundleScorerBase):
    """Scores token windows with OpenVINO on the CPU, batched by length like onnxruntime."""

    def __init__(
        self,
        bundle: Bundle,
        *,
        variant: str = "openvino",
        threads: int | None = None,
        precision: str | None = None,
        batch_tokens: int | None = None,
    ) -> None:
        if precision is None:  # what this CPU runs best of what the export checked
            capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            precision = pick_precision(variant, capabilities, bundle.manifest.verification)
        if variant not in VARIANTS:
            raise BadRequestError(f"variant={variant!r} is not an OpenVINO variant {VARIANTS}")
        if batch_tokens is not None and batch_tokens < 1:
            raise BadRequestError(f"batch_tokens={batch_tokens} must be positive")
        super().__init__(bundle, variant=f"{variant}:{precision}")
        self._local = threading.local()
        self._batch_tokens = batch_tokens or max(
            MIN_BATCH_TOKENS, LOGITS_BUDGET_BYTES // (4 * max(1, bundle.manifest.vocab_size))
        )
        # Without a hint OpenVINO runs bf16 where the CPU has it: the hint keeps to the
        # precision the export checked.
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
        return batched_logprobs(
            windows,
            self._batch_tokens,
            lambda ids: self._request.infer({0: ids})[0],
            engine="the OpenVINO scorer",
            errors=(RuntimeError,),
        )
