"""What the PyTorch (CUDA) engine loads, written beside the ONNX file by ``tersify export``.

Two files: the model's configuration (``config.json``) and its weights in fp32
(``model.safetensors``, tied weights stored once). The engine
(``tersify.engines.torch_engine``) casts them to bf16 or fp16 on a GPU. After writing,
the files are read back with transformers and scored: they must agree with the ONNX graph
within the export's tolerance, or the export fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tersify.errors import ExportError

VARIANT = "torch"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def write_engine(lm: Any, folder: Path) -> str:
    """Write ``config.json`` and ``model.safetensors`` of ``lm`` into ``folder``.

    Returns the weights file's name (the ``torch`` variant in the manifest).
    """
    from safetensors.torch import save_model

    config = lm.config
    config.to_json_file(str(folder / CONFIG_FILE))
    save_model(lm, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    return WEIGHTS_FILE


def check_engine(
    folder: Path, windows: Sequence[np.ndarray], onnx_logprobs: Sequence[np.ndarray]
) -> float:
    """Largest |log p| difference between the written engine files and the ONNX graph."""
    import torch
    from transformers import AutoModelForCausalLM

    from tersify.export import graph

    try:
        lm = AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch.float32, attn_implementation="eager"
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExportError(f"the PyTorch engine files in {folder} do not load: {exc}") from exc
    reloaded = graph.torch_logprobs(graph.logprob_module(lm), windows)
    return graph.max_difference(list(onnx_logprobs), reloaded)
