"""The scorer's Triton configuration, in two forms from one source.

- ``onnxruntime``: production, in NGC's Triton container. The ONNX file on the GPU through
  TensorRT in FP16: engines cached on disk, CUDA graphs, and one optimisation profile per
  padded length (the CUDA execution provider runs what TensorRT cannot).
- ``python``: the ``tritonserver`` inside the ``nvidia-pytriton`` wheel, which has only the
  python backend. ``model.py`` runs the PyTorch engine on CUDA (bf16, a CUDA graph per
  (batch, padded length) bucket) where the server has a GPU, else the ONNX file with
  onnxruntime, and checks each request of a merged batch on its own.

Both share the model name, tensor names and shapes, batching, padded lengths and warm-up:
they differ in backend, instance kind and engine settings. ``tersify triton repo`` writes
them; ``model_repository/`` holds the generated files.

The ranker (``tersify_ranker``, question-aware mode's sentence embeddings) is a model of
the repository in the same two forms (``RankerConfig``): ``ranker.onnx`` directly on the
onnxruntime backend, or ``tersify.triton.backends.ranker`` running it with onnxruntime in the python
backend. Texts are tokenized by the caller and padded to a few lengths
(``ranker_requests``), so that the dynamic batcher merges the requests of many callers.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from tersify.bundle import INPUT_NAME, OUTPUT_NAME, RANKER_INPUTS, RANKER_OUTPUT, Bundle
from tersify.client.triton_models import MODEL_NAME, RANKER_BATCHING, RANKER_MODEL, Batching
from tersify.engines.torch_engine import CONFIG_FILE as TORCH_CONFIG
from tersify.engines.torch_engine import SHORTLIST_FILE as TORCH_SHORTLIST
from tersify.engines.torch_engine import VARIANT as TORCH_VARIANT
from tersify.errors import BadRequestError
from tersify.triton.backends import model_file

FORMS = ("onnxruntime", "python")
Form = Literal["onnxruntime", "python"]
# What ``tersify export`` names the ranker's graph (the onnxruntime form loads it by name).
RANKER_FILE = "ranker.onnx"
# Where the onnxruntime form's instances run: TensorRT FP16 (or CUDA) on a GPU, onnxruntime's
# CPU provider on a CPU; ``auto`` takes the GPU where Triton finds one.
DEVICES = {"gpu": "KIND_GPU", "cpu": "KIND_CPU", "auto": "KIND_AUTO"}
# The scorer's graphs the onnxruntime form can load, by variant (``tersify export``'s names).
GRAPHS = {"shortlist": "model.shortlist.onnx", "fp32": "model.onnx"}


@dataclass(frozen=True)
class ScorerConfig:
    """Everything one ``config.pbtxt`` says."""

    form: Form
    name: str = MODEL_NAME
    batching: Batching = field(default_factory=Batching)
    instance_count: int = 1
    tensorrt_fp16: bool = True
    device: str = "gpu"  # the onnxruntime form's instances: gpu, cpu, or auto (gpu where found)
    # The python form's engine: auto (torch on CUDA where exported, else the embedded
    # default's engine), torch, onnxruntime or openvino; torch's weight precision; CUDA
    # graphs per bucket.
    engine: str = "auto"
    engine_dtype: str = "auto"
    engine_head: str = "auto"  # the torch engine's normaliser: auto, full or shortlist
    engine_compile: bool = False  # torch.compile the torch engine's decoder at load
    cuda_graphs: bool = True
    trt_cache_path: str = "/tmp/tersify_trt_cache"  # noqa: S108 - a cache, rebuilt when absent
    # The onnxruntime form's graph: the shortlist head, as the embedded default scores
    # (``model.shortlist.onnx``), or ``fp32``'s full-vocabulary head (``model.onnx``).
    graph: str = "shortlist"

    def __post_init__(self) -> None:
        # Checked here, not first inside Triton's model load: a typo fails at once.
        if self.graph not in GRAPHS:
            raise BadRequestError(f"graph={self.graph!r}: use {' or '.join(GRAPHS)}")
        if self.engine not in ("auto", "torch", "onnxruntime", "openvino"):
            raise BadRequestError(
                f"engine={self.engine!r}: use auto, torch, onnxruntime or openvino"
            )
        if self.engine_head not in ("auto", "full", "shortlist"):
            raise BadRequestError(f"engine_head={self.engine_head!r}: use auto, full or shortlist")

    def parameters(self) -> dict[str, str]:
        """The model's ``parameters``: padded lengths, and the engine's for the python form."""
        b = self.batching
        lengths = ",".join(map(str, b.padded_lengths))
        values = {"padded_lengths": lengths}
        if self.form == "python":
            # A CUDA graph for every batch size up to 16 (a compression's 5 windows run as 5,
            # not padded to a captured 8: 60 % more rows), then every eighth.
            top = b.max_batch_size
            sizes = sorted({*range(1, min(16, top) + 1), *range(24, top + 1, 8), top})
            values |= {
                "engine": self.engine,
                "engine_dtype": self.engine_dtype,
                "engine_head": self.engine_head,
                "engine_compile": "true" if self.engine_compile else "false",
                "engine_cuda_graphs": "true" if self.cuda_graphs else "false",
                "engine_batch_sizes": ",".join(map(str, sizes)),
                "engine_lengths": lengths,
            }
        return values

    def render(self) -> str:
        """The ``config.pbtxt`` text."""
        model_file = GRAPHS[self.graph] if self.form == "onnxruntime" else None
        return _render(self, (INPUT_NAME,), OUTPUT_NAME, model_file=model_file)

    def for_bundle(self, bundle: Bundle) -> ScorerConfig:
        """The configuration for ``bundle``: the full head where it has no shortlist graph."""
        if self.graph in bundle.manifest.model_files:
            return self
        say(f"{bundle.folder} has no {self.graph} graph: the onnxruntime form serves fp32")
        return replace(self, graph="fp32")


@dataclass(frozen=True)
class RankerConfig:
    """``tersify_ranker``'s ``config.pbtxt``: ids and mask in, one embedding per row out.

    The onnxruntime form serves ``ranker.onnx`` itself (TensorRT FP16 where enabled, a
    profile per padded length); the python form runs it with onnxruntime on the CPU.
    """

    form: Form
    name: str = RANKER_MODEL
    batching: Batching = RANKER_BATCHING
    instance_count: int = 1
    tensorrt_fp16: bool = True
    device: str = "gpu"  # the onnxruntime form's instances: gpu, cpu, or auto (gpu where found)
    trt_cache_path: str = "/tmp/tersify_trt_cache"  # noqa: S108 - a cache, rebuilt when absent

    def parameters(self) -> dict[str, str]:
        """The model's ``parameters``: the padded lengths its callers use."""
        return {"padded_lengths": ",".join(map(str, self.batching.padded_lengths))}

    def render(self) -> str:
        """The ``config.pbtxt`` text."""
        model_file = RANKER_FILE if self.form == "onnxruntime" else None
        return _render(self, RANKER_INPUTS, RANKER_OUTPUT, model_file=model_file)


def _render(
    config: ScorerConfig | RankerConfig,
    inputs: Sequence[str],
    output: str,
    *,
    model_file: str | None,
) -> str:
    """One model's ``config.pbtxt``: INT64 ``[-1]`` inputs, one FP32 ``[-1]`` output.

    The onnxruntime form with ``tensorrt_fp16`` adds the TensorRT execution provider with
    one optimisation profile per padded length (every input in each), batch 1 to the largest.
    """
    b, form, name = config.batching, config.form, config.name
    instance_count, parameters = config.instance_count, config.parameters()
    tensorrt = None
    if config.device not in DEVICES:
        raise BadRequestError(f"device={config.device!r}: use {', '.join(DEVICES)}")
    kind = DEVICES[config.device] if form == "onnxruntime" else "KIND_CPU"
    if form == "onnxruntime" and config.tensorrt_fp16 and config.device != "cpu":

        def shapes(batch: int) -> str:
            return ",".join(f"{i}:{batch}x{n}" for n in b.padded_lengths for i in inputs)

        tensorrt = {
            "trt_profile_min_shapes": shapes(1),
            "trt_profile_opt_shapes": shapes(max(b.preferred_batch_sizes)),
            "trt_profile_max_shapes": shapes(b.max_batch_size),
        }
    lines = [f'name: "{name}"', f'backend: "{form}"']
    if model_file is not None:
        lines.append(f'default_model_filename: "{model_file}"')
    lines += [
        f"max_batch_size: {b.max_batch_size}",
        "input [",
        ",\n".join(f'  {{ name: "{i}" data_type: TYPE_INT64 dims: [ -1 ] }}' for i in inputs),
        "]",
        "output [",
        f'  {{ name: "{output}" data_type: TYPE_FP32 dims: [ -1 ] }}',
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(map(str, b.preferred_batch_sizes))} ]",
        f"  max_queue_delay_microseconds: {b.max_queue_delay_us}",
        "}",
        "instance_group [",
        f"  {{ count: {instance_count} kind: "
        f"{kind} }}",
        "]",
        "parameters [",
        ",\n".join(
            f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in parameters.items()
        ),
        "]",
        "model_warmup [",
        "  {",
        f'    name: "warmup_{b.warmup_length}"',
        "    batch_size: 1",
    ]
    for i in inputs:
        lines += [
            "    inputs {",
            f'      key: "{i}"',
            f"      value: {{ data_type: TYPE_INT64 dims: [ {b.warmup_length} ] zero_data: true }}",
            "    }",
        ]
    lines += ["  }", "]"]
    if tensorrt is not None:
        trt = {
            "precision_mode": "FP16",
            "max_workspace_size_bytes": "4294967296",
            "trt_engine_cache_enable": "1",
            "trt_engine_cache_path": config.trt_cache_path,
            "trt_timing_cache_enable": "1",
            "trt_timing_cache_path": config.trt_cache_path,
            "trt_cuda_graph_enable": "1",
            "trt_layer_norm_fp32_fallback": "1",
            **tensorrt,
        }
        lines += [
            "optimization { execution_accelerators { gpu_execution_accelerator [",
            '  { name: "tensorrt"',
            *(f'    parameters {{ key: "{k}" value: "{v}" }}' for k, v in trt.items()),
            "  }",
            "] } }",
        ]
    return "\n".join(lines) + "\n"


def write_model(
    config: ScorerConfig | RankerConfig,
    folder: Path,
    *,
    bundle: Bundle | None = None,
    symlink: bool = False,
) -> list[Path]:
    """Write one model folder (``config.pbtxt``, and ``1/model.py`` for the python form).

    With ``bundle`` (the exported scorer, or ranker for a ``RankerConfig``), its files go
    in the version folder: as symlinks (``symlink``, for a run folder), else as hard links,
    or copies across filesystems.
    """
    version_dir = folder / "1"
    version_dir.mkdir(parents=True, exist_ok=True)
    written = [folder / "config.pbtxt"]
    written[0].write_text(config.render(), encoding="utf-8")
    if config.form == "python":
        written.append(version_dir / "model.py")
        written[-1].write_text(model_file(config.name), encoding="utf-8")
    if bundle is not None:
        files = _ranker_files if isinstance(config, RankerConfig) else _scorer_files
        written += _place(files(bundle), version_dir, symlink=symlink)
    return written


def _scorer_files(bundle: Bundle) -> list[Path]:
    sources = [bundle.folder / "manifest.json"]
    # The PyTorch engine's files (tersify.engines.torch_engine) go beside the ONNX file.
    for variant in ("fp32", "shortlist", TORCH_VARIANT):
        if variant in bundle.manifest.model_files:
            model = bundle.model_path(variant)
            sources += [model, model.with_name(model.name + ".data")]
    if TORCH_VARIANT in bundle.manifest.model_files:
        sources.append(bundle.folder / TORCH_CONFIG)
    # The torch engine takes the shortlist where the file is: never one left behind.
    sources.append(bundle.folder / TORCH_SHORTLIST)
    return sources


def _ranker_files(bundle: Bundle) -> list[Path]:
    model = bundle.model_path("fp32")
    if model.name != RANKER_FILE:
        raise BadRequestError(
            f"the ranker in {bundle.folder} names its graph {model.name!r}; Triton's "
            f"onnxruntime form loads {RANKER_FILE!r}: export it again with `tersify export`"
        )
    return [bundle.folder / "manifest.json", model, model.with_name(model.name + ".data")]


def _place(sources: list[Path], version_dir: Path, *, symlink: bool) -> list[Path]:
    written = []
    for source in sources:
        target = version_dir / source.name
        target.unlink(missing_ok=True)  # also what an earlier export left here
        if not source.exists():
            continue
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
    tensorrt_fp16: bool = True,
    batching: Batching | None = None,
    bundle: Bundle | None = None,
    ranker: Bundle | None = None,
    graph: str = "shortlist",
    device: str = "gpu",
) -> list[Path]:
    """Write both forms under ``out/<form>/<model>/``; return the files written.

    The onnxruntime form serves ``graph``: the shortlist head, as the embedded default
    scores (``fp32``'s full head where the bundle has no shortlist graph), on ``device``:
    ``gpu`` (TensorRT FP16 unless ``tensorrt_fp16`` is off), ``cpu`` or ``auto``.

    ``bundle`` and ``ranker`` place the exported scorer's and ranker's files. A repository
    with a scorer but no ranker leaves ``tersify_ranker`` out (Triton would fail to load it
    without its graph); ``tersify_compress`` then refuses question-aware requests.
    """
    with_ranker = ranker is not None or bundle is None
    written = []
    for form in FORMS:
        trt = tensorrt_fp16 and form == "onnxruntime"
        config = ScorerConfig(
            form=form,  # type: ignore[arg-type]
            batching=batching or Batching(),
            tensorrt_fp16=trt,
            graph=graph,
            device=device,
        )
        if bundle is not None:
            config = config.for_bundle(bundle)
        written += write_model(config, out / form / config.name, bundle=bundle)
        if with_ranker:
            ranker_config = RankerConfig(form=config.form, tensorrt_fp16=trt, device=device)
            written += write_model(ranker_config, out / form / RANKER_MODEL, bundle=ranker)
        written += _write_compress(config.form, out, bundle, ranker if with_ranker else None)
    return written


def _write_compress(
    form: Form, out: Path, bundle: Bundle | None, ranker: Bundle | None
) -> list[Path]:
    """The ``tersify_compress`` model beside the scorer (``compress_config``)."""
    from tersify.triton.compress_config import CompressConfig, write_compress_model

    config = CompressConfig(
        form=form,
        scorer=str(bundle.folder) if bundle else "",
        ranker=str(ranker.folder) if ranker else "",
        ranker_model=RANKER_MODEL if ranker is not None or bundle is None else "",
    )
    return write_compress_model(config, out / form / config.name)


def say(message: str) -> None:
    """A note on stderr for the person writing the repository."""
    sys.stderr.write(f"tersify: {message}\n")
