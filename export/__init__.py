"""Hugging Face causal LM -> ONNX scorer folder (``tersify export``).

Needs the ``export`` extra (torch, transformers, onnx, gguf)::

    pip install 'tersify[export]'

>>> from tersify.export import export_scorer
>>> export_scorer("smollm2-135m")  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tersify.bundle import MANIFEST_FILE, Bundle, Manifest, file_sha256
from tersify.errors import ExportError, ScorerUnavailableError, TersifyError
from tersify.settings import Settings

__all__ = ["DEFAULT_TOLERANCE", "export_scorer"]

DEFAULT_TOLERANCE = 1e-3  # largest |log p| difference allowed between ONNX and PyTorch
Progress = Callable[[str], None]


def export_scorer(
    model: str,
    out: str | Path | None = None,
    *,
    int8: bool = False,
    skip_existing: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    settings: Settings | None = None,
    progress: Progress | None = None,
    openvino: bool = False,
    shortlist: bool | None = None,
) -> Path:
    """Export ``model`` to a scorer folder and return the folder.

    The ONNX graph is checked against PyTorch on English, Chinese and code before the
    folder is published; a difference above ``tolerance`` fails the export. ``openvino``
    adds the ``openvino`` variant (needs ``openvino``), checked against the fp32 graph.
    ``shortlist`` adds the ``shortlist`` variant (:mod:`tersify.export.shortlist`), checked
    against fp32's selection: ``None`` adds it where the head is a large share of the
    model's weights (Gemma 3: yes; SmolLM2: no), ``True`` always tries, ``False`` never.
    """
    settings = settings or Settings.from_env()
    say = progress or (lambda _message: None)
    _require_export_extra()
    from tersify.export import graph, models

    if skip_existing and out is not None and _is_complete(Path(out)):
        say(f"scorer already exported in {out}")
        return Path(out)
    if skip_existing and out is None and model in models.ALIASES:
        folder = settings.scorer_folder(model)
        if _is_complete(folder):
            say(f"scorer already exported in {folder}")
            return folder

    with _step(say, f"finding {model}"):
        source = models.resolve(model, settings.home)
        weights_sha256 = models.weights_sha256(source)
    target = Path(out).expanduser() if out is not None else settings.scorer_folder(source.name)
    if skip_existing and _is_complete(target):
        say(f"scorer already exported in {target}")
        return target
    with _step(say, f"loading {source.description} in fp32"):
        lm, tokenizer = models.load(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        manifest = _build(
            lm,
            tokenizer,
            source,
            staging,
            int8,
            tolerance,
            say,
            graph,
            openvino=openvino,
            shortlist=shortlist,
            weights_sha256=weights_sha256,
        )
        publish(staging, target, manifest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    say(f"scorer ready in {target}")
    return target


def publish(staging: Path, target: Path, manifest: Manifest) -> None:
    """Write ``manifest`` into the checked ``staging`` folder and move it to ``target``."""
    (staging / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _build(
    lm: Any,
    tokenizer: Any,
    source: Any,
    folder: Path,
    int8: bool,
    tolerance: float,
    say: Progress,
    graph: Any,
    *,
    openvino: bool = False,
    shortlist: bool | None = None,
    weights_sha256: str | None = None,
) -> Manifest:
    module = graph.logprob_module(lm)
    windows = [
        np.asarray([_bos(tokenizer), *tokenizer.encode(text, add_special_tokens=False)], np.int64)
        for text in graph.SAMPLES
    ]
    fp32 = folder / "model.onnx"
    with _step(say, "exporting to ONNX"):
        graph.export_onnx(module, fp32, windows[0][None, :8])
    tokenizer.backend_tokenizer.save(str(folder / "tokenizer.json"))
    with _step(say, "checking ONNX against PyTorch on English, Chinese and code"):
        reference = graph.torch_logprobs(module, windows)
        exported = graph.onnx_logprobs(fp32, windows)
        fp32_diff = graph.max_difference(reference, exported)
    say(f"  largest |log p| difference: {fp32_diff:.2e} (tolerance {tolerance:.0e})")
    if not fp32_diff <= tolerance:
        raise ExportError(
            f"the ONNX scorer disagrees with PyTorch by {fp32_diff:.2e} > {tolerance:.0e}"
        )
    verification: dict[str, Any] = {"fp32_max_abs_diff": fp32_diff, "samples": len(windows)}
    model_files = {"fp32": fp32.name}
    with _step(say, "writing the PyTorch engine (config and fp32 weights) and checking it"):
        from tersify.export import torch_engine

        model_files[torch_engine.VARIANT] = torch_engine.write_engine(lm, folder)
        torch_diff = torch_engine.check_engine(folder, windows, exported)
    if not torch_diff <= tolerance:
        raise ExportError(f"the PyTorch engine disagrees with ONNX by {torch_diff:.2e}")
    verification["torch_max_abs_diff"] = torch_diff
    if int8:
        int8_path = folder / "model.int8.onnx"
        with _step(say, "quantizing to int8 (dynamic, MatMul weights)"):
            graph.quantize_int8(fp32, int8_path)
            quantized = graph.onnx_logprobs(int8_path, windows)
        verification["int8_max_abs_diff"] = graph.max_difference(reference, quantized)
        errors = [np.abs(a - b) for a, b in zip(reference, quantized, strict=True)]
        verification["int8_mean_abs_diff"] = float(np.mean(np.concatenate(errors)))
        say(f"  int8 mean |log p| difference: {verification['int8_mean_abs_diff']:.3f}")
        model_files["int8"] = int8_path.name
    if openvino:
        with _step(say, "writing the OpenVINO graph and checking it against fp32"):
            from tersify.export import openvino as ov_variant

            verification.update(
                ov_variant.write_and_check(lm, folder, graph, tokenizer, _bos(tokenizer), tolerance)
            )
            model_files[ov_variant.VARIANT] = ov_variant.GRAPH_FILE
    if weights_sha256 is not None:
        verification["weights_sha256"] = weights_sha256
    if shortlist is not False:
        verification.update(
            _shortlist(
                lm, tokenizer, folder, graph, tolerance, say, model_files, shortlist, weights_sha256
            )
        )
    with _step(say, "hashing files"):
        hashes = {
            p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST_FILE
        }
    config = lm.config
    return Manifest(
        name=source.name,
        source=source.description,
        vocab_size=int(config.vocab_size),
        max_positions=int(getattr(config, "max_position_embeddings", 2048)),
        bos_token_id=_bos(tokenizer),
        model_files=model_files,
        sha256=hashes,
        verification=verification,
    )


def _shortlist(
    lm: Any,
    tokenizer: Any,
    folder: Path,
    graph: Any,
    tolerance: float,
    say: Progress,
    model_files: dict[str, str],
    asked: bool | None,
    weights_sha256: str | None,
) -> dict[str, Any]:
    """Add the shortlist variant where it pays (or was asked for) and keeps the selection.

    Asked for, a failed check fails the export; by default it only leaves the variant out.
    """
    from tersify.export import shortlist as variant

    share = variant.head_share(lm)
    if asked is None and share < variant.MIN_HEAD_SHARE:
        say(f"no shortlist variant: the head holds {share:.0%} of the weights, too few to save")
        return {}
    try:
        with _step(say, "choosing a shortlist of the vocabulary and checking it against fp32"):
            checked = variant.write_and_check(
                lm,
                folder,
                graph,
                tokenizer,
                _bos(tokenizer),
                tolerance,
                say,
                weights_sha256=weights_sha256,
            )
    except ExportError as exc:
        for stale in (variant.GRAPH_FILE, variant.GRAPH_FILE + ".data", variant.IDS_FILE):
            (folder / stale).unlink(missing_ok=True)
        if asked:
            raise
        say(f"no shortlist variant: {exc}")
        return {}
    model_files[variant.VARIANT] = variant.GRAPH_FILE
    if "openvino_shortlist_unit_agreement" in checked:
        model_files[variant.OPENVINO_VARIANT] = variant.GRAPH_FILE
    return {**checked, "shortlist_head_share": share}


def _bos(tokenizer: Any) -> int:
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if bos is None:
        raise ExportError("the tokenizer has neither a BOS nor an EOS token to start windows with")
    return int(bos)


def _is_complete(folder: Path) -> bool:
    try:
        Bundle.open(folder)
    except ScorerUnavailableError:
        return False
    return True


class _step:
    """Reports a long step's start and how long it took; its failure is an ExportError.

    torch, transformers and onnx raise what they raise: a step turns any of it into one
    :class:`ExportError` that names the step, with the original as its cause.
    """

    def __init__(self, say: Progress, what: str) -> None:
        self._say, self._what = say, what

    def __enter__(self) -> None:
        self._started = time.perf_counter()
        self._say(f"{self._what} ...")

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, _: Any
    ) -> None:
        if kind is None:
            self._say(f"  done in {time.perf_counter() - self._started:.1f}s")
        elif issubclass(kind, Exception) and not issubclass(kind, TersifyError):
            raise ExportError(f"{self._what} failed: {type(value).__name__}: {value}") from value


def _require_export_extra() -> None:
    missing = []
    for module in ("torch", "transformers", "onnx"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(f"export needs {', '.join(missing)}: pip install 'tersify[export]'")
