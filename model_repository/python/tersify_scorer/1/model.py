"""Triton python-backend model: the ONNX scorer run with onnxruntime (``1/model.py``).

Copied into the model repository by ``tersify triton repo``; never imported by tersify.
The model folder's version directory holds ``model.onnx`` (+ ``.data``) and
``manifest.json`` beside this file. Each request of a merged batch is checked on its
own, so one bad request fails alone. Tensors cross the backend through DLPack: the
stub's numpy-based tensor conversion returns empty arrays under numpy 2.
"""

import json
import os
import sys
from pathlib import Path

# The backend stub does not put PYTHONPATH on sys.path; the launcher passes the
# environment that has onnxruntime and numpy.
for _entry in os.environ.get("TERSIFY_SITE_PACKAGES", "").split(os.pathsep):
    if _entry and _entry not in sys.path:
        sys.path.append(_entry)

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAME = "input_ids"
OUTPUT_NAME = "token_logprobs"
# Tokens per onnxruntime run: the graph holds [batch, seq, vocab] logits inside.
TOKENS_PER_RUN = 2048


class TritonPythonModel:
    """Scores merged batches of token windows."""

    def initialize(self, args):
        folder = Path(args["model_repository"]) / args["model_version"]
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        self.vocab_size = int(manifest["vocab_size"])
        self.max_positions = int(manifest["max_positions"])
        options = ort.SessionOptions()
        threads = os.environ.get("TERSIFY_ORT_THREADS")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def execute(self, requests):
        responses = [None] * len(requests)
        by_length = {}
        for index, request in enumerate(requests):
            try:
                ids = self._checked(request)
            except ValueError as exc:
                responses[index] = _error(str(exc))
                continue
            by_length.setdefault(ids.shape[1], []).append((index, ids))
        for members in by_length.values():
            batch = np.concatenate([ids for _, ids in members])
            try:
                scores = self._score(batch)
            except Exception as exc:
                for index, _ in members:
                    responses[index] = _error(f"scoring failed: {exc}")
                continue
            row = 0
            for index, ids in members:
                part = np.ascontiguousarray(scores[row : row + len(ids)])
                row += len(ids)
                tensor = pb_utils.Tensor.from_dlpack(OUTPUT_NAME, part)
                responses[index] = pb_utils.InferenceResponse(output_tensors=[tensor])
        return responses

    def _checked(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, INPUT_NAME)
        if tensor is None:
            raise ValueError(f"missing input {INPUT_NAME!r}")
        ids = np.from_dlpack(tensor)
        if ids.ndim != 2 or ids.shape[1] < 1:
            raise ValueError(f"{INPUT_NAME} must be [batch, seq] with seq >= 1, got {ids.shape}")
        if ids.shape[1] > self.max_positions:
            raise ValueError(
                f"{INPUT_NAME} is {ids.shape[1]} long; the model takes {self.max_positions}"
            )
        low, high = int(ids.min()), int(ids.max())
        if low < 0 or high >= self.vocab_size:
            raise ValueError(
                f"{INPUT_NAME} holds ids outside [0, {self.vocab_size}): min {low}, max {high}"
            )
        return np.ascontiguousarray(ids, dtype=np.int64)

    def _score(self, ids):
        rows = max(1, TOKENS_PER_RUN // ids.shape[1])
        parts = [
            self.session.run([OUTPUT_NAME], {INPUT_NAME: ids[start : start + rows]})[0]
            for start in range(0, len(ids), rows)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)


def _error(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
