"""The examples in docstrings run, imported under their installed names."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tersify.budget",
    "tersify.encoding",
    "tersify.scoring",
    "tersify.assemble",
    "tersify.windows",
    "tersify.compressor",
    "tersify.compat",
    "tersify.coarse",
    "tersify.tokens",
    "tersify.structured",
    "tersify.recover",
    "tersify.sentences",
    "tersify.client",
    "tersify.client.onnx",
    "tersify.client.triton",
    "tersify.export",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
