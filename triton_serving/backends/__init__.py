"""Triton's python backends, run inside the backend stub from the installed package.

A model folder's ``1/model.py`` is a few lines (:func:`model_file`): it puts the launcher's
paths on ``sys.path`` (the stub reads no ``PYTHONPATH``) and imports ``TritonPythonModel``
from here. ``tersify triton start`` names its virtual environment in
``TERSIFY_SITE_PACKAGES``; an image with tersify installed system-wide names nothing.

- :mod:`.scorer`: ``tersify_scorer`` (PyTorch on CUDA, OpenVINO or onnxruntime);
- :mod:`.ranker`: ``tersify_ranker`` (the sentence-embedding graph with onnxruntime);
- :mod:`.compress`: ``tersify_compress`` (a whole compression, BLS to the other two).
"""

from __future__ import annotations

from typing import Any

import numpy as np

BACKENDS = {"tersify_scorer": "scorer", "tersify_ranker": "ranker", "tersify_compress": "compress"}
# tersify_compress converts BYTES tensors with numpy: a stub built with pybind11 < 2.12 needs
# numpy < 2, first on the path (compress.py says why); the others use DLPack, and must not.
_NUMPY_FIRST = (
    'sys.path[:0] = [p for p in os.environ.get("TERSIFY_STUB_SITE_PACKAGES", "").split(":") if p]'
)


def checked_ids(ids: Any, *, name: str, max_positions: int, vocab_size: int) -> Any:
    """``ids`` as contiguous int64 ``[batch, seq]``; a ``ValueError`` that says what is wrong.

    >>> checked_ids(np.array([[5, 70000]]), name="input_ids", max_positions=8, vocab_size=100)
    Traceback (most recent call last):
    ...
    ValueError: input_ids holds ids outside [0, 100): min 5, max 70000
    """
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"{name} must be [batch, seq] with seq >= 1, got {ids.shape}")
    if ids.shape[1] > max_positions:
        raise ValueError(f"{name} is {ids.shape[1]} long; the model takes {max_positions}")
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= vocab_size:
        raise ValueError(f"{name} holds ids outside [0, {vocab_size}): min {low}, max {high}")
    return np.ascontiguousarray(ids, dtype=np.int64)


def model_file(model: str) -> str:
    """The text of ``model``'s ``1/model.py``: the launcher's paths, then the package's class.

    >>> print(model_file("tersify_ranker").splitlines()[-1])
    from tersify.triton.backends.ranker import TritonPythonModel
    """
    module = BACKENDS[model]
    lines = [
        f'"""{model}: the installed package\'s backend (tersify.triton.backends.{module})."""',
        "",
        "import os",
        "import site",
        "import sys",
        "",
        "# The stub reads no PYTHONPATH: the launcher names its environment's paths.",
        *([_NUMPY_FIRST] if module == "compress" else []),
        'for path in filter(None, os.environ.get("TERSIFY_SITE_PACKAGES", "").split(":")):',
        "    site.addsitedir(path)",
        "",
        f"from tersify.triton.backends.{module} import TritonPythonModel",
    ]
    return "\n".join(lines) + "\n"
