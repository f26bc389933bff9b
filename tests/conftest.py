from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import FakeScorer  # noqa: E402

from tersify import Compressor  # noqa: E402


@pytest.fixture()
def fake_scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture()
def fake_compressor(fake_scorer: FakeScorer) -> Compressor:
    return Compressor(fake_scorer)


@pytest.fixture(scope="session")
def seed_request() -> dict:
    return json.loads((ROOT / "examples" / "seed_request.json").read_text(encoding="utf-8"))
