"""The scorer's Triton configuration, in two forms from one source.

- ``onnxruntime``: production, in NGC's Triton container. The ONNX file on the GPU
  (CUDA execution provider, TensorRT with FP16 as an option).
- ``python``: development and CI, for the ``tritonserver`` inside the ``nvidia-pytriton``
  wheel, which has only the python backend. ``model.py`` runs the same ONNX file with
  onnxruntime and checks each request of a merged batch on its own.

Both share the model name, tensor names and shapes, batching and warm-up: they differ only
in backend, instance kind and accelerator. ``tersify triton repo`` writes them;
``model_repository/`` holds the generated files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tersify.bundle import INPUT_NAME, OUTPUT_NAME, Bundle

MODEL_NAME = "tersify_scorer"
FORMS = ("onnxruntime", "python")
Form = Literal["onnxruntime", "python"]
BACKEND_FILE = Path(__file__).with_name("triton_backend.py")


@dataclass(frozen=True)
class Batching:
    """Dynamic batching: requests of one padded length are merged up to ``max_batch_size``."""

    max_batch_size: int = 16
    preferred_batch_sizes: tuple[int, ...] = (4, 8, 16)
    max_queue_delay_us: int = 2000
    # Windows are padded to these lengths so that requests from many callers match.
    padded_lengths: tuple[int, ...] = (64, 128, 256, 512)
    warmup_length: int = 128


@dataclass(frozen=True)
class ScorerConfig:
    """Everything one ``config.pbtxt`` says."""

    form: Form
    name: str = MODEL_NAME
    batching: Batching = field(default_factory=Batching)
    instance_count: int = 1
    tensorrt_fp16: bool = False

    def render(self) -> str:
        """The ``config.pbtxt`` text."""
        b = self.batching
        lines = [
            f'name: "{self.name}"',
            f'backend: "{self.form}"',
            f"max_batch_size: {b.max_batch_size}",
            "input [",
            f'  {{ name: "{INPUT_NAME}" data_type: TYPE_INT64 dims: [ -1 ] }}',
            "]",
            "output [",
            f'  {{ name: "{OUTPUT_NAME}" data_type: TYPE_FP32 dims: [ -1 ] }}',
            "]",
            "dynamic_batching {",
            f"  preferred_batch_size: [ {', '.join(map(str, b.preferred_batch_sizes))} ]",
            f"  max_queue_delay_microseconds: {b.max_queue_delay_us}",
            "}",
            "instance_group [",
            f"  {{ count: {self.instance_count} kind: "
            f"{'KIND_GPU' if self.form == 'onnxruntime' else 'KIND_CPU'} }}",
            "]",
            "parameters [",
            '  { key: "padded_lengths" value: { string_value: "'
            + ",".join(map(str, b.padded_lengths))
            + '" } }',
            "]",
            "model_warmup [",
            "  {",
            f'    name: "warmup_{b.warmup_length}"',
            "    batch_size: 1",
            "    inputs {",
            f'      key: "{INPUT_NAME}"',
            f"      value: {{ data_type: TYPE_INT64 dims: [ {b.warmup_length} ] zero_data: true }}",
            "    }",
            "  }",
            "]",
        ]
        if self.form == "onnxruntime" and self.tensorrt_fp16:
            lines += [
                "optimization { execution_accelerators { gpu_execution_accelerator [",
                '  { name: "tensorrt"',
                '    parameters { key: "precision_mode" value: "FP16" }',
                '    parameters { key: "max_workspace_size_bytes" value: "2147483648" }',
                '    parameters { key: "trt_engine_cache_enable" value: "1" } }',
                "] } }",
            ]
        return "\n".join(lines) + "\n"


def write_model(
    config: ScorerConfig,
    folder: Path,
    *,
    bundle: Bundle | None = None,
    symlink: bool = False,
) -> list[Path]:
    """Write one model folder (``config.pbtxt``, and ``1/model.py`` for the python form).

    With ``bundle``, the exported scorer's files go in the version folder: as symlinks
    (``symlink``, for a run folder), else as hard links, or copies across filesystems.
    """
    version_dir = folder / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    written = [folder / "config.pbtxt"]
    written[0].write_text(config.render(), encoding="utf-8")
    if config.form == "python":
        written.append(version_dir / "model.py")
        written[-1].write_text(BACKEND_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    if bundle is not None:
        model = bundle.model_path("fp32")
        sources = (model, model.with_name(model.name + ".data"), bundle.folder / "manifest.json")
        for source in (s for s in sources if s.exists()):
            target = version_dir / source.name
            target.unlink(missing_ok=True)
            if symlink:
                target.symlink_to(source.resolve())
            else:
                try:
                    os.link(source, target)
                except OSError:  # another filesystem: copy
                    shutil.copyfile(source, target)
            written.append(target)
    return written


def write_repository(
    out: Path,
    *,
    tensorrt_fp16: bool = False,
    batching: Batching | None = None,
    bundle: Bundle | None = None,
) -> list[Path]:
    """Write both forms under ``out/<form>/<model>/``; return the files written."""
    written = []
    for form in FORMS:
        config = ScorerConfig(
            form=form,  # type: ignore[arg-type]
            batching=batching or Batching(),
            tensorrt_fp16=tensorrt_fp16 and form == "onnxruntime",
        )
        written += write_model(config, out / form / config.name, bundle=bundle)
        written += _write_compress(config.form, out, bundle)
    return written


def _write_compress(form: Form, out: Path, bundle: Bundle | None) -> list[Path]:
    """The ``tersify_compress`` model beside the scorer (``compress_config``)."""
    from tersify.client.compress_config import CompressConfig, write_compress_model

    config = CompressConfig(form=form, scorer=str(bundle.folder) if bundle else "")
    return write_compress_model(config, out / form / config.name)
