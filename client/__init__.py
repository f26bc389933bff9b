"""Where log-probs come from: the embedded onnxruntime scorer (and, later, Triton).

>>> from tersify.client import open_scorer
>>> scorer = open_scorer("gemma-3-270m")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tersify.bundle import Bundle, Manifest
from tersify.scoring import Scorer
from tersify.settings import Settings

__all__ = ["Bundle", "Manifest", "open_scorer", "resolve_scorer_folder"]


def resolve_scorer_folder(spec: str | os.PathLike[str] | None, settings: Settings) -> Path:
    """The folder of the scorer that ``spec`` names: a folder, a model name, or the default."""
    name = settings.default_scorer if spec is None else os.fspath(spec)
    path = Path(name).expanduser()
    if path.is_dir() or os.sep in name or name.startswith("."):
        return path
    return settings.scorer_folder(name)


def open_scorer(
    spec: str | os.PathLike[str] | None = None,
    *,
    variant: str = "fp32",
    providers: Sequence[str] | None = None,
    settings: Settings | None = None,
) -> Scorer:
    """Open a scorer by name, folder, or Triton URL.

    ``None`` is the default scorer; a name is looked up under the home; a Triton URL
    ``grpc://HOST:PORT[?scorer=NAME]`` takes log-probs from Triton and tokenizes with the
    local export of NAME (the default scorer when it is left out); several instances,
    ``grpc://H1:P1,H2:P2,...``, share the windows (:mod:`tersify.client.triton_pool`).
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
    folder = resolve_scorer_folder(spec, settings)
    from tersify.client.onnx import OnnxScorer  # onnxruntime loads only when needed

    return OnnxScorer(Bundle.open(folder), variant=variant, providers=providers)
