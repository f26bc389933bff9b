"""Where log-probs come from: the embedded onnxruntime scorer (and, later, Triton).

>>> from tersify.client import open_scorer
>>> scorer = open_scorer("gemma-3-270m")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tersify.client.bundle import Bundle, Manifest
from tersify.errors import BadRequestError
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
    """Open a scorer: ``None`` (the default), a model name exported under the home, or a folder."""
    if isinstance(spec, str) and "://" in spec:
        raise BadRequestError(
            f"scorer={spec!r}: remote scorers (grpc://) are not supported by this version; "
            "give an exported scorer's name or folder"
        )
    folder = resolve_scorer_folder(spec, settings or Settings.from_env())
    from tersify.client.onnx import OnnxScorer  # onnxruntime loads only when needed

    return OnnxScorer(Bundle.open(folder), variant=variant, providers=providers)
