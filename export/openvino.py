"""The ``openvino`` variant: the scorer graph in a form OpenVINO runs right, checked at export.

OpenVINO 2026.4 mis-runs the fp32 graph in two places: its ReduceLogSumExp reduces every
axis instead of the last (every log-prob off by ~10 nats), and it drops the Slice of the
logits before the GatherElements (the graph does not compile). This graph keeps the same
contract (``token_logprobs[b, t] = log p(ids[b, t] | ids[b, :t])``, 0 at ``t = 0``) with
neither: the next token's logit is taken with a flat Gather over every position (the last
position's is dropped afterwards, on ``[batch, seq]`` floats), and the normaliser is
``max + log(sum(exp(x - max)))``.

The variant is published only when OpenVINO, in fp32, gives the fp32 ONNX graph's log-probs
within the export tolerance, and keeps the same units at rates 0.25 and 0.5 (at least
:data:`AGREEMENT_BAR` of them) on English, Chinese and code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tersify.errors import ExportError
from tersify.scoring import group_units

VARIANT = "openvino"
GRAPH_FILE = "model.ov.onnx"
AGREEMENT_BAR = 0.97
RATES = (0.25, 0.5)


def openvino_module(model: Any) -> Any:
    """Wrap a causal LM so that it returns per-token log-probs, in ops OpenVINO runs right."""
    import torch

    class TokenLogprobs(torch.nn.Module):
        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            mask = torch.ones_like(input_ids)  # see graph.logprob_module
            out = self.lm(input_ids=input_ids, attention_mask=mask, use_cache=False)
            logits = out.logits.float()
            # The next id of every position; the last one's (a dummy 0) is dropped below.
            target = torch.cat([input_ids[:, 1:], torch.zeros_like(input_ids[:, :1])], dim=1)
            flat = logits.reshape(-1, logits.shape[-1])
            rows = torch.arange(flat.shape[0], device=flat.device)
            picked = flat[rows, target.reshape(-1)].reshape(target.shape)
            top = logits.amax(dim=-1, keepdim=True)
            normaliser = (top + torch.log(torch.exp(logits - top).sum(-1, keepdim=True)))[..., 0]
            logprobs = picked - normaliser
            return torch.cat([torch.zeros_like(logprobs[:, :1]), logprobs[:, :-1]], dim=1)

    return TokenLogprobs(model).eval()


def openvino_logprobs(
    path: Path, windows: Sequence[np.ndarray], precision: str = "f32"
) -> list[np.ndarray]:
    """Log-probs from OpenVINO in ``precision`` (f32 or bf16), one window at a time."""
    try:
        import openvino as ov
    except ImportError as exc:
        raise ExportError("the openvino variant needs openvino: pip install openvino") from exc
    config = {"INFERENCE_PRECISION_HINT": precision}
    compiled = ov.Core().compile_model(str(path), "CPU", config)
    request = compiled.create_infer_request()
    return [np.array(request.infer({0: w[None, :]})[0][0], dtype=np.float32) for w in windows]


def cpu_has_bf16() -> bool:
    """Whether OpenVINO runs bf16 on this CPU (a bf16 check means something only there)."""
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def kept_units(losses: np.ndarray, offsets: np.ndarray, text: str, rate: float) -> set[int]:
    """The units the compressor would rank into the kept ``rate`` of ``text`` (no budget)."""
    units = group_units(offsets, text)
    scores = np.bincount(units.token_unit, weights=losses, minlength=len(units))
    n_keep = max(1, round(rate * len(units)))
    return set(np.argsort(-scores, kind="stable")[:n_keep].tolist())


def selection_agreement(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    texts: Sequence[tuple[str, np.ndarray]],
    rates: Sequence[float] = RATES,
) -> float:
    """The lowest share, over texts and rates, of the candidate's kept units that fp32 keeps.

    ``reference[i]`` and ``candidate[i]`` are the log-prob rows of ``BOS + ids`` of text
    ``i``; ``texts[i]`` is the text and its tokens' character offsets.
    """
    lowest = 1.0
    for ref, cand, (text, offsets) in zip(reference, candidate, texts, strict=True):
        for rate in rates:
            ours = kept_units(-cand[1:], offsets, text, rate)
            theirs = kept_units(-ref[1:], offsets, text, rate)
            lowest = min(lowest, len(ours & theirs) / len(ours))
    return lowest


def check_texts(tokenizer: Any, samples: Sequence[str], max_tokens: int = 500) -> list[Any]:
    """English, Chinese and code to check on: the export samples and longer real text."""
    import inspect
    import textwrap
    from pydoc_data.topics import topics

    texts = [*samples, topics["for"], topics["try"], inspect.getsource(textwrap)[:3000]]
    out = []
    for text in texts:
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = encoding["input_ids"][:max_tokens]
        offsets = np.asarray(encoding["offset_mapping"][:max_tokens], dtype=np.int64)
        end = int(offsets[-1, 1]) if len(offsets) else 0
        out.append((text[:end], np.asarray(ids, np.int64), offsets.reshape(-1, 2)))
    return out


def write_and_check(
    lm: Any,
    folder: Path,
    graph: Any,
    tokenizer: Any,
    bos: int,
    tolerance: float,
) -> dict[str, Any]:
    """Write the OpenVINO graph into ``folder`` and check it against the fp32 ONNX graph.

    Returns what goes into the manifest's verification; raises :class:`ExportError` when
    OpenVINO's log-probs or kept units disagree with fp32.
    """
    checks = check_texts(tokenizer, graph.SAMPLES)
    windows = [np.concatenate([[bos], ids]).astype(np.int64) for _, ids, _ in checks]
    path = folder / GRAPH_FILE
    graph.export_onnx(openvino_module(lm), path, windows[0][None, :8])
    reference = graph.onnx_logprobs(folder / "model.onnx", windows)
    got = openvino_logprobs(path, windows)
    diff = graph.max_difference(reference, got)
    agreement = selection_agreement(reference, got, [(t, o) for t, _, o in checks])
    if not diff <= tolerance or agreement < AGREEMENT_BAR:
        raise ExportError(
            f"OpenVINO disagrees with the fp32 graph (largest |log p| difference {diff:.2e}, "
            f"tolerance {tolerance:.0e}; {agreement:.1%} of kept units in common, bar "
            f"{AGREEMENT_BAR:.0%}); export without --openvino"
        )
    return {"openvino_max_abs_diff": diff, "openvino_unit_agreement": agreement}
