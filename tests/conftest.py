"""What both tiers share: the fake scorer, the example request, the helpers' folder.

The helpers (``fakes``, ``texts``, ``answers``, ``tiny_model``) live beside this file and are
imported by name from ``tests/unit`` and ``tests/integration`` alike.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from tersify import Compressor  # noqa: E402

from fakes import FailingLLM, FakeRanker, FakeScorer  # noqa: E402

# `make mutate` runs the fast tests once per mutant: the same generated cases each run, so
# that the clean run and every mutant's run see the same ones.
settings.register_profile("mutation", deadline=None, derandomize=True)
if os.environ.get("TERSIFY_MUTATION"):
    settings.load_profile("mutation")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--shard",
        metavar="K/N",
        help="run the K-th of N interleaved shares of the tests (make test-fast runs 2 at once)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("--shard")
    if not shard:
        return
    try:
        k, n = (int(part) for part in shard.split("/"))
    except ValueError:
        k = n = 0
    if not 1 <= k <= n:
        raise pytest.UsageError(f"--shard {shard}: K must be 1 to N, as in --shard 1/2")
    config.hook.pytest_deselected(items=[t for i, t in enumerate(items) if i % n != k - 1])
    items[:] = items[k - 1 :: n]


@pytest.fixture()
def fake_scorer() -> FakeScorer:
    return FakeScorer()


@pytest.fixture()
def fake_compressor(fake_scorer: FakeScorer) -> Compressor:
    return Compressor(fake_scorer, ranker=FakeRanker())


@pytest.fixture(scope="session")
def seed_request() -> dict:
    return json.loads((ROOT / "examples" / "seed_request.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def failing_url() -> Iterator[str]:
    """The URL of an LLM that fails as the path says (``fakes.FailingLLM``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FailingLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
