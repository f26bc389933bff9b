from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tersify import Compressor  # noqa: E402

from fakes import FakeRanker, FakeScorer  # noqa: E402

# `make mutate` runs the fast tests once per mutant: the same generated cases each run, so
# that the clean run and every mutant's run see the same ones.
settings.register_profile("mutation", deadline=None, derandomize=True)
if os.environ.get("TERSIFY_MUTATION"):
    settings.load_profile("mutation")

if TYPE_CHECKING:
    from tersify.integrations.local_llm import LocalLLM


@pytest.fixture()
def fake_scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture()
def fake_compressor(fake_scorer: FakeScorer) -> Compressor:
    return Compressor(fake_scorer, ranker=FakeRanker())


@pytest.fixture(scope="session")
def seed_request() -> dict:
    return json.loads((ROOT / "examples" / "seed_request.json").read_text(encoding="utf-8"))


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
def smollm2_compressor() -> Compressor:
    """The SmolLM2-135M scorer, exported once under TERSIFY_HOME (fast enough for tests)."""
    from tersify.export import export_scorer

    return Compressor(str(export_scorer("smollm2-135m", skip_existing=True)))


@pytest.fixture(scope="session")
def local_llm() -> Iterator[LocalLLM]:
    """A real OpenAI-compatible LLM: llama.cpp's server with SmolLM2-135M-Instruct."""
    from tersify.integrations.local_llm import LocalLLM

    with LocalLLM(n_ctx=8192) as llm:
        yield llm
