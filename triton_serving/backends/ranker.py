"""Triton python-backend model ``tersify_ranker``: sentence embeddings with onnxruntime.

Imported by the model folder's ``model.py`` (:mod:`tersify.triton.backends`).
The version directory holds ``manifest.json`` and ``ranker.onnx`` beside this file
(``tersify export``'s ranker folder). ``input_ids`` and ``attention_mask`` INT64
``[batch, seq]`` in (tokenized and padded by the caller), ``embeddings`` FP32
``[batch, dim]`` out, L2-normalised. Each request of a merged batch is checked on its own,
so one bad request fails alone; requests of one length run together. Tensors cross the
backend through DLPack: the stub's numpy-based conversion returns empty arrays under
numpy 2.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from tersify.triton.backends import checked_ids

INPUTS = ("input_ids", "attention_mask")
OUTPUT = "embeddings"
# Tokens per onnxruntime run: small runs stay in cache (tersify.engines.ranker's BATCH_TOKENS).
TOKENS_PER_RUN = 512


class TritonPythonModel:
    """Embeds merged batches of tokenized texts."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open ``ranker.onnx`` from the version folder (checked against its manifest)."""
        import onnxruntime as ort

        folder = Path(args["model_repository"]) / args["model_version"]
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        if manifest.get("kind") != "ranker":
            raise ValueError(f"{folder} holds a {manifest.get('kind')!r}, not a ranker")
        self.vocab_size = int(manifest["vocab_size"])
        self.max_positions = int(manifest["max_positions"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = os.environ.get("TERSIFY_ORT_THREADS")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(
            str(folder / manifest["model_files"]["fp32"]),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

    def execute(self, requests: list[Any]) -> list[Any]:
        """One response per request: its embeddings, or its own error."""
        responses: list[Any] = [None] * len(requests)
        by_length: dict[int, list[tuple[int, Any, Any]]] = {}
        for index, request in enumerate(requests):
            try:
                ids, mask = self._checked(request)
            except ValueError as exc:
                responses[index] = _error(str(exc))
                continue
            by_length.setdefault(ids.shape[1], []).append((index, ids, mask))
        for members in by_length.values():
            ids = np.concatenate([m[1] for m in members])
            mask = np.concatenate([m[2] for m in members])
            try:
                out = self._embed(ids, mask)
            except Exception as exc:
                for index, _, _ in members:
                    responses[index] = _error(f"the ranker failed: {exc}")
                continue
            row = 0
            for index, part_ids, _ in members:
                part = np.ascontiguousarray(out[row : row + len(part_ids)], dtype=np.float32)
                row += len(part_ids)
                tensor = pb_utils.Tensor.from_dlpack(OUTPUT, part)
                responses[index] = pb_utils.InferenceResponse(output_tensors=[tensor])
        return responses

    def _checked(self, request: Any) -> tuple[Any, Any]:
        arrays = []
        for name in INPUTS:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input {name!r}")
            arrays.append(np.ascontiguousarray(np.from_dlpack(tensor), dtype=np.int64))
        ids, mask = arrays
        ids = checked_ids(
            ids, name=INPUTS[0], max_positions=self.max_positions, vocab_size=self.vocab_size
        )
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask is {mask.shape}; input_ids is {ids.shape}")
        if not np.isin(mask, (0, 1)).all():
            raise ValueError("attention_mask holds values other than 0 and 1")
        return ids, mask

    def _embed(self, ids: Any, mask: Any) -> Any:
        rows = max(1, TOKENS_PER_RUN // ids.shape[1])
        parts = [
            self.session.run([OUTPUT], {INPUTS[0]: ids[start:end], INPUTS[1]: mask[start:end]})[0]
            for start, end in ((s, s + rows) for s in range(0, len(ids), rows))
        ]
        return np.concatenate(parts)


def _error(message: str) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
