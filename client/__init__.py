"""Where log-probs come from: the embedded onnxruntime scorer (and, later, Triton).

>>> from tersify.client import open_scorer
>>> scorer = open_scorer("gemma-3-270m")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path

from tersify.bundle import Bundle, Manifest
from tersify.scoring import Scorer
from tersify.settings import Settings

__all__ = ["Bundle", "Manifest", "default_variant", "open_scorer", "resolve_scorer_folder"]

# Fastest first, among the variants that pass every bar (selection, speed, peak memory):
# ``tersify export`` writes a variant only after checking its selection against fp32.
# ``shortlist`` (Gemma 3: ~3x, same kept units, less memory) runs on any CPU, faster still
# in OpenVINO (``openvino-shortlist``) where OpenVINO is installed; ``openvino``
# (1.3x on SmolLM2, same kept units) holds ~0.4-0.7 GB more at its peak than onnxruntime
# (README, "Engines and precisions"), so it runs only when asked for by name.
_PREFERENCE: tuple[str, ...] = ("openvino-shortlist", "shortlist", "fp32")
_OPENVINO = ("openvino", "openvino-int8", "openvino-shortlist")


def resolve_scorer_folder(spec: str | os.PathLike[str] | None, settings: Settings) -> Path:
    """The folder of the scorer that ``spec`` names: a folder, a model name, or the default."""
    return settings.resolve(spec, kind="scorer")


def default_variant(bundle: Bundle, providers: Sequence[str] | None = None) -> str:
    """The fastest variant that passed every bar and that this machine runs, else ``fp32``.

    An OpenVINO variant needs OpenVINO installed and no ``providers`` (those are
    onnxruntime's); ``shortlist`` runs wherever fp32 does (see ``_PREFERENCE``).
    """
    for variant in _PREFERENCE:
        if variant not in bundle.manifest.model_files:
            continue
        if variant in _OPENVINO and (
            providers is not None or importlib.util.find_spec("openvino") is None
        ):
            continue
        return variant
    return "fp32"


def open_scorer(
    spec: str | os.PathLike[str] | None = None,
    *,
    variant: str | None = None,
    providers: Sequence[str] | None = None,
    settings: Settings | None = None,
) -> Scorer:
    """Open a scorer by name, folder, or Triton URL.

    ``None`` is the default scorer; a name is looked up under the home; a Triton URL
    ``grpc://HOST:PORT[?scorer=NAME]`` takes log-probs from Triton and tokenizes with the
    local export of NAME (the default scorer when it is left out); several instances,
    ``grpc://H1:P1,H2:P2,...``, share the windows (:mod:`tersify.client.triton_pool`).
    ``variant`` picks an exported variant (``fp32`` is onnxruntime on the fp32 graph);
    ``None`` takes :func:`default_variant`.
    """
    settings = settings or Settings.from_env()
    if isinstance(spec, str) and "://" in spec:
        from tersify.client.triton import TritonScorer, TritonTarget  # needs [triton]
        from tersify.client.triton_pool import TritonPoolScorer, is_pool_url, pool_targets

        if is_pool_url(spec):  # grpc://h1:p1,h2:p2,...: several instances, one scorer
            targets = pool_targets(spec)
            bundle = Bundle.open(resolve_scorer_folder(targets[0].scorer, settings))
            return TritonPoolScorer(targets, bundle)
        target = TritonTarget.parse(spec)
        # Triton returns log-probs; the tokenizer is the local export of the same model.
        bundle = Bundle.open(resolve_scorer_folder(target.scorer, settings))
        return TritonScorer(target, bundle)
    bundle = Bundle.open(resolve_scorer_folder(spec, settings))
    chosen = variant or default_variant(bundle, providers)
    if chosen in _OPENVINO:
        from tersify.engines.openvino import OpenVinoScorer  # needs [openvino]

        return OpenVinoScorer(bundle, variant=chosen)
    from tersify.engines.onnx import OnnxScorer  # onnxruntime loads only when needed

    return OnnxScorer(bundle, variant=chosen, providers=providers)
