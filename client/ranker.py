"""The ranker's door: the embedded ONNX ranker or Triton's ``tersify_ranker``, by name.

>>> from tersify.client.ranker import open_ranker
>>> ranker = open_ranker()  # doctest: +SKIP
>>> ranker.embed(["When was it signed?", "It was signed in 1992."]).shape  # doctest: +SKIP
(2, 384)
"""

from __future__ import annotations

import os
from pathlib import Path

from tersify.bundle import Bundle
from tersify.engines.ranker import OnnxRanker
from tersify.errors import ScorerUnavailableError
from tersify.scoring import Ranker
from tersify.settings import Settings


def resolve_ranker_folder(spec: str | os.PathLike[str] | None, settings: Settings) -> Path:
    """The folder of the ranker ``spec`` names: a folder, a model name, or the default."""
    return settings.resolve(spec, kind="ranker")


def open_ranker(
    spec: str | os.PathLike[str] | None = None, *, settings: Settings | None = None
) -> Ranker:
    """Open a ranker by name, folder, or Triton URL (``grpc://HOST:PORT``).

    ``None`` is the default ranker (``TERSIFY_RANKER``, else all-MiniLM-L6-v2), exported
    under the home by ``tersify export``. Over Triton the texts are tokenized here with the
    local export and embedded by the server's ``tersify_ranker`` model.
    """
    settings = settings or Settings.from_env()
    if isinstance(spec, str) and "://" in spec:
        from tersify.client.triton_ranker import TritonRanker, ranker_target  # needs [triton]

        target = ranker_target(spec)
        bundle = _open(resolve_ranker_folder(target.scorer, settings))
        return TritonRanker(target, bundle)
    return OnnxRanker(_open(resolve_ranker_folder(spec, settings)))


def _open(folder: Path) -> Bundle:
    try:
        return Bundle.open(folder)
    except ScorerUnavailableError as exc:
        raise ScorerUnavailableError(
            f"no ranker in {folder}: export it with `tersify export --model all-minilm-l6-v2` "
            f"(`make scorer` does); or rank with rank_method='bm25' ({exc})"
        ) from None


