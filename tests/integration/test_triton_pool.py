"""Three real tritonservers behind one scorer URL; one is killed mid-run and restarted."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tersify import Compressor, ScorerUnavailableError
from tersify.client import Bundle, open_scorer
from tersify.client.triton import TritonTarget
from tersify.client.triton_pool import PoolPolicy, TritonPoolScorer, pool_targets
from tersify.triton import server

from texts import sample_text

Servers = list[tuple[Path, server.ServerState]]


@pytest.fixture(scope="module")
def three(tiny_scorer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    bundle = Bundle.open(tiny_scorer_dir)
    started: Servers = []
    try:
        for _ in range(3):
            run_dir = tmp_path_factory.mktemp("pool")
            started.append((run_dir, server.start(bundle, run_dir)))
        yield started
    finally:
        for run_dir, _ in started:
            server.stop(run_dir)


def _url(servers: Servers) -> str:
    return "grpc://" + ",".join(f"127.0.0.1:{s.grpc_port}" for _, s in servers)


def _requests() -> list[tuple[list[str], dict[str, float]]]:
    return [
        ([sample_text(kind, 2500, seed)], {"rate": 0.4})
        for seed in range(3)
        for kind in ("english", "mixed")
    ]


def test_killed_instance_loses_no_request_and_comes_back(
    three: Servers, tiny_scorer_dir: Path
) -> None:
    opened = open_scorer(f"{_url(three)}?scorer={tiny_scorer_dir}")
    assert isinstance(opened, TritonPoolScorer) and len(opened.instances) == 3
    opened.close()
    bundle = Bundle.open(tiny_scorer_dir)
    embedded = Compressor(str(tiny_scorer_dir))
    want = [embedded.compress(c, **kw).compressed_prompt for c, kw in _requests()]
    pool = TritonPoolScorer(pool_targets(_url(three)), bundle, policy=PoolPolicy(retry_for_s=60))
    remote = Compressor(pool, cache=False)  # every window must reach an instance
    got: list[str] = []
    errors: list[BaseException] = []
    first_done = threading.Event()

    def run() -> None:
        try:
            for _ in range(2):
                for contexts, kwargs in _requests():
                    got.append(remote.compress(contexts, **kwargs).compressed_prompt)
                    first_done.set()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            first_done.set()

    worker = threading.Thread(target=run)
    worker.start()
    assert first_done.wait(120)
    victim_dir, victim = three[1]
    os.kill(victim.pid, signal.SIGKILL)  # mid-run: windows are in flight on all three
    deadline = time.monotonic() + 30
    while pool.instances[1]["healthy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pool.instances[1]["healthy"], "the killed instance was not taken out"
    restarted = server.start(
        bundle,
        victim_dir,
        http_port=victim.http_port,
        grpc_port=victim.grpc_port,
        metrics_port=victim.metrics_port,
    )
    three[1] = (victim_dir, restarted)
    while not pool.instances[1]["healthy"] and time.monotonic() < deadline + 60:
        time.sleep(0.05)
    assert pool.instances[1]["healthy"], "the restarted instance was not put back"
    worker.join(300)
    assert not errors, errors
    assert got == want * 2  # no request lost, every answer identical to the embedded one
    # The restarted instance takes windows again.
    scorer_after = open_scorer(f"grpc://127.0.0.1:{restarted.grpc_port}?scorer={tiny_scorer_dir}")
    assert scorer_after.is_ready()
    before = _inferences(restarted)
    contexts, kwargs = _requests()[0]
    remote.compress(contexts, **kwargs)
    assert _inferences(restarted) > before
    pool.close()


def test_all_instances_down_is_one_clear_error(tiny_scorer_dir: Path) -> None:
    ports = [server.free_port() for _ in range(2)]
    targets = [TritonTarget.parse(f"grpc://127.0.0.1:{p}") for p in ports]
    pool = TritonPoolScorer(
        targets, Bundle.open(tiny_scorer_dir), policy=PoolPolicy(retry_for_s=1.0)
    )
    started = time.monotonic()
    with pytest.raises(ScorerUnavailableError, match="no Triton instance"):
        Compressor(pool).compress([sample_text("english", 500, 1)], rate=0.5)
    assert time.monotonic() - started < 30
    pool.close()


def _inferences(state: server.ServerState) -> int:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{state.grpc_port}")
    stats = client.get_inference_statistics("tersify_scorer").model_stats[0]
    return int(stats.inference_count)
