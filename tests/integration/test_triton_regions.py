"""A real tritonserver records its shared-memory regions, and `tersify triton stop` removes them.

What `stop` signals and cleans, on stand-in processes: tests/unit/test_triton_lifecycle.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tersify.bundle import Bundle
from tersify.errors import ScorerUnavailableError
from tersify.triton import server

SHM = Path("/dev/shm")


def test_a_real_server_records_its_regions_and_stop_removes_them(
    tiny_scorer_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "triton"
    state = server.start(Bundle.open(tiny_scorer_dir), run_dir)
    try:
        assert state.start_ticks > 0 and state.binary.endswith("tritonserver")
        assert server._is_our_server(state, run_dir)
        regions = set(state.shm_regions) | server._mapped_regions(state.pid)
        assert regions, "the python backend maps at least one region"
        _a_model_that_is_not_loaded_is_retried_then_unavailable(state, tiny_scorer_dir)
    finally:
        assert server.stop(run_dir, grace_s=20) is True
    assert not any((SHM / name).exists() for name in regions)
    assert server.read_state(run_dir) is None


def _a_model_that_is_not_loaded_is_retried_then_unavailable(
    state: server.ServerState, scorer_dir: Path
) -> None:
    # What a restarting Triton answers while its models load: "unknown model" (not
    # UNAVAILABLE). It is retried for retry_for_s, then a ScorerUnavailableError (503).
    import numpy as np

    from tersify.client.triton import RetryPolicy, TritonScorer, TritonTarget

    target = TritonTarget.parse(f"{state.grpc_url}/tersify_not_loaded")
    scorer = TritonScorer(target, Bundle.open(scorer_dir), retry=RetryPolicy(retry_for_s=1.5))
    started = time.monotonic()
    try:
        with pytest.raises(ScorerUnavailableError, match="unavailable"):
            scorer.logprobs([np.arange(1, 9, dtype=np.int64)])
    finally:
        scorer.close()
    assert 1.5 <= time.monotonic() - started < 10
