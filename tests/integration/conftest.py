"""The integration tier's fixtures: exported scorers, real models, a real LLM.

Every test in this folder carries the ``integration`` marker (``-m "not integration"`` is the
unit tier wherever the tests are collected from).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from tersify import Compressor

if TYPE_CHECKING:
    from tersify.client import Bundle
    from tersify.integrations.local_llm import LocalLLM
    from tersify.triton.server import ServerState

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_scorer_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tersify.export import export_scorer

    out = tmp_path_factory.mktemp("scorers") / "tiny"
    return export_scorer(str(tiny_model_dir), out, int8=True, shortlist=False)


@pytest.fixture(scope="session")
def tiny_compressor(tiny_scorer_dir: Path) -> Compressor:
    return Compressor(str(tiny_scorer_dir))


@pytest.fixture(scope="session")
def smollm2_scorer_dir() -> Path:
    """The SmolLM2-135M scorer, exported once under TERSIFY_HOME (fast enough for tests)."""
    from tersify.export import export_scorer

    return export_scorer("smollm2-135m", skip_existing=True)


@pytest.fixture(scope="session")
def smollm2_compressor(smollm2_scorer_dir: Path) -> Compressor:
    return Compressor(str(smollm2_scorer_dir))


@pytest.fixture(scope="session")
def local_llm() -> Iterator[LocalLLM]:
    """A real OpenAI-compatible LLM: llama.cpp's server with SmolLM2-135M-Instruct."""
    from tersify.integrations.local_llm import LocalLLM

    with LocalLLM(n_ctx=8192) as llm:
        yield llm


@pytest.fixture(scope="module")
def triton_ranker() -> Bundle | Literal["default"] | None:
    """The ranker beside the scorer in ``triton``: ``server.start``'s default; a module may
    override this fixture."""
    return "default"


@pytest.fixture(scope="module")
def triton(
    tiny_scorer_dir: Path,
    triton_ranker: Bundle | Literal["default"] | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerState]:
    """A real tritonserver (from the nvidia-pytriton wheel) serving the tiny scorer."""
    from tersify.client import Bundle
    from tersify.triton import server

    run_dir = tmp_path_factory.mktemp("triton")
    state = server.start(Bundle.open(tiny_scorer_dir), run_dir, ranker=triton_ranker)
    try:
        yield state
    finally:
        server.stop(run_dir)
