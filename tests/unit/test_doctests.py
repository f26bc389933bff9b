"""The examples in docstrings run, imported under their installed names."""

from __future__ import annotations

import doctest
import importlib

import pytest

# Each module listed must hold an example that runs: a module whose examples are all
# skipped (tersify.compressor's need a real scorer) or that has none (tersify.tokens) is
# not listed, rather than passing with nothing run.
MODULES = [
    "tersify.budget",
    "tersify.limits",
    "tersify.metering",
    "tersify.validate",
    "tersify.encoding",
    "tersify.scoring",
    "tersify.graphemes",
    "tersify.options",
    "tersify.request",
    "tersify.assemble",
    "tersify.windows",
    "tersify.cache",
    "tersify.compat",
    "tersify.coarse",
    "tersify.structured",
    "tersify.recover",
    "tersify.explain",
    "tersify.sentences",
    "tersify.client",
    "tersify.engines.onnx",
    "tersify.client.triton",
    "tersify.triton.backends",
    "tersify.export",
    "tersify.integrations.llm",
    "tersify.integrations.messages",
    "tersify.service.access",
    "tersify.service.body",
    "tersify.service.config",
    "tersify.service.memory",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{name} has no runnable example"
    assert result.failed == 0
