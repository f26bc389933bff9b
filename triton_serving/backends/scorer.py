"""Triton python-backend model: the scorer on CUDA with PyTorch, or with onnxruntime.

Imported by the model folder's ``model.py`` (:mod:`tersify.triton.backends`).
The model folder's version directory holds ``manifest.json`` and the exported files
beside this file. The ``engine`` parameter picks the engine: ``torch`` (the PyTorch
engine of ``tersify.engines.torch_engine``, bf16 with CUDA graphs per bucket),
``onnxruntime`` (on the CPU: the ``shortlist`` graph where exported, else ``model.onnx``),
``openvino`` (the ``openvino-shortlist`` variant), or ``auto``: torch where the scorer has
its files and CUDA is there, else what the embedded scorer runs by default (OpenVINO on the
shortlist graph where both are there, then onnxruntime), so that a CPU Triton answers as
``tersify compress`` does. Each request of a merged batch is checked on
its own, so one bad request fails alone. Tensors cross the backend through DLPack: the
stub's numpy-based tensor conversion returns empty arrays under numpy 2.
"""

import json
import locale
import os
from pathlib import Path

# The stub embeds Python without setting the locale: files would open as ASCII, and
# torch.compile reads its UTF-8 kernel templates that way (UnicodeDecodeError).
if locale.getpreferredencoding(False).lower().replace("-", "") != "utf8":
    try:
        locale.setlocale(locale.LC_CTYPE, "C.UTF-8")
    except locale.Error:
        pass

import numpy as np
import triton_python_backend_utils as pb_utils

from tersify.triton.backends import checked_ids

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
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.engine_name = _choose_engine(parameters.get("engine", "auto"), manifest)
        if self.engine_name == "torch":
            from tersify.engines.torch_engine import EngineOptions, TorchEngine

            self.engine = TorchEngine.load(folder, EngineOptions.from_parameters(parameters))
            self.engine.capture()
            pb_utils.Logger.log_info(f"tersify scorer: {self.engine.describe()}")
            self._score = self.engine.score
            return
        files = manifest.get("model_files", {})
        threads = os.environ.get("TERSIFY_ORT_THREADS")
        if self.engine_name == "openvino":
            import openvino as ov

            config = {"INFERENCE_PRECISION_HINT": "f32"}  # the precision checked at export
            if threads:
                config["INFERENCE_NUM_THREADS"] = int(threads)
            # A run folder links the files in: OpenVINO refuses external data that resolves
            # outside the graph's folder, so it reads the graph where the link points.
            graph = (folder / files["openvino-shortlist"]).resolve()
            request = ov.Core().compile_model(str(graph), "CPU", config).create_infer_request()
            self._run = lambda ids: np.array(request.infer({0: ids})[0])
            self._score = self._score_in_runs
            return
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        graph = folder / files.get("shortlist", files.get("fp32", "model.onnx"))
        session = ort.InferenceSession(
            str(graph), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._run = lambda ids: session.run([OUTPUT_NAME], {INPUT_NAME: ids})[0]
        self._score = self._score_in_runs

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
                tensor = pb_utils.Tensor.from_dlpack(OUTPUT_NAME, self._exported(part))
                responses[index] = pb_utils.InferenceResponse(output_tensors=[tensor])
        return responses

    def _exported(self, array):
        # Seen on an H100 with numpy 2.5: the stub refused numpy's own DLPack capsule
        # ("PyCapsule_GetPointer called with incorrect name"); torch's legacy capsule is
        # the one it reads. Without torch (the onnxruntime engine) numpy's is used.
        if self.engine_name != "torch":
            return array
        import torch.utils.dlpack

        return torch.utils.dlpack.to_dlpack(torch.from_numpy(array))

    def _checked(self, request):
        tensor = pb_utils.get_input_tensor_by_name(request, INPUT_NAME)
        if tensor is None:
            raise ValueError(f"missing input {INPUT_NAME!r}")
        return checked_ids(
            np.from_dlpack(tensor),
            name=INPUT_NAME,
            max_positions=self.max_positions,
            vocab_size=self.vocab_size,
        )

    def _score_in_runs(self, ids):
        # The CPU engines' graphs hold [rows, seq, head] logits: at most TOKENS_PER_RUN a run.
        rows = max(1, TOKENS_PER_RUN // ids.shape[1])
        parts = [self._run(ids[start : start + rows]) for start in range(0, len(ids), rows)]
        return np.concatenate(parts).astype(np.float32, copy=False)


def _choose_engine(wanted, manifest):
    files = manifest.get("model_files", {})
    if wanted == "auto":
        if "torch" in files and _cuda():
            return "torch"
        return "openvino" if "openvino-shortlist" in files and _has("openvino") else "onnxruntime"
    if wanted == "torch" and "torch" not in files:
        raise ValueError("engine=torch, but the scorer has no torch files: export it again")
    if wanted == "openvino" and "openvino-shortlist" not in files:
        raise ValueError("engine=openvino, but the scorer has no openvino-shortlist variant")
    if wanted not in ("torch", "onnxruntime", "openvino"):
        raise ValueError(f"engine={wanted!r}: use auto, torch, onnxruntime or openvino")
    return wanted


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _error(message):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
