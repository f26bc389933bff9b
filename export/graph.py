"""The scorer graph: a causal LM with its log-prob head inside, exported to ONNX.

``token_logprobs[b, t] = log p(input_ids[b, t] | input_ids[b, :t])`` for ``t >= 1`` and
0 at ``t = 0``. The log-softmax and the gather run inside the graph, so full-vocabulary
logits never leave it. With causal attention and right padding, padding never changes a
real token's score, so the graph takes no attention mask.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tersify.bundle import INPUT_NAME, OUTPUT_NAME
from tersify.errors import ExportError

OPSET = 17

# Real text for checking the export: English, Chinese and code.
SAMPLES = (
    "The quick brown fox jumps over the lazy dog. Prompt compression keeps what a model "
    "cannot predict and drops what it can, so the prompt gets shorter and cheaper.",
    "LLMLingua利用经过对齐的小语言模型来检测和剔除提示中的不重要词元，"
    "将其转化为一种人类很难理解但是大模型能很好理解的形式。",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
)


def logprob_module(model: Any) -> Any:
    """Wrap a causal LM so that it returns per-token log-probs instead of logits."""
    import torch

    class TokenLogprobs(torch.nn.Module):
        def __init__(self, lm: Any) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            # An all-ones mask keeps transformers off its packed-sequence detection, which
            # uses an operator ONNX lacks; right padding needs no real mask (see above).
            mask = torch.ones_like(input_ids)
            out = self.lm(input_ids=input_ids, attention_mask=mask, use_cache=False)
            logits = out.logits[:, :-1, :].float()
            # logit of the next token minus logsumexp: log-softmax without a second
            # full-vocabulary tensor.
            target = input_ids[:, 1:].unsqueeze(-1)
            picked = torch.gather(logits, 2, target).squeeze(-1)
            logprobs = picked - torch.logsumexp(logits, dim=-1)
            first = torch.zeros_like(logprobs[:, :1])
            return torch.cat([first, logprobs], dim=1)

    return TokenLogprobs(model).eval()


def export_onnx(module: Any, path: Path, example_ids: np.ndarray) -> None:
    """Trace ``module`` to ``path``, weights in one ``.data`` file, dynamic batch and length."""
    import onnx
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    # The tracer may scatter weights over many files: trace into a scratch folder, then
    # save once with every weight in a single external-data file beside the graph.
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        traced = Path(scratch) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about shape-dependent Python branches in transformers' mask
            # code; with an all-ones mask they are constant, and the export is checked
            # against PyTorch on longer inputs afterwards.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(example_ids),),
                str(traced),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAME: {0: "batch", 1: "seq"},
                    OUTPUT_NAME: {0: "batch", 1: "seq"},
                },
                opset_version=OPSET,
                dynamo=False,
                external_data=True,
            )
        model = onnx.load(str(traced), load_external_data=True)
    data_name = path.name + ".data"
    path.with_name(data_name).unlink(missing_ok=True)
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data_name,
        size_threshold=1024,
    )


def torch_logprobs(module: Any, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Reference log-probs from PyTorch, one window at a time."""
    import torch

    with torch.no_grad():
        return [module(torch.from_numpy(w[None, :]))[0].numpy() for w in windows]


def onnx_logprobs(path: Path, windows: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Log-probs from the exported file, one window at a time.

    One window's logits are its length x the vocabulary in fp32 (Gemma 3: 0.5 GB for 500
    tokens); a batch of every check window held several GB at once, the export's peak.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [session.run([OUTPUT_NAME], {INPUT_NAME: w[None, :]})[0][0] for w in windows]


def max_difference(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """The largest absolute difference between matching arrays."""
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


def quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (onnxruntime's quantizer)."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ExportError("int8 export needs onnxruntime's quantization tools") from exc
    for stale in (target, target.with_name(target.name + ".data")):
        stale.unlink(missing_ok=True)
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        use_external_data_format=True,
        extra_options={"MatMulConstBOnly": True},
    )
