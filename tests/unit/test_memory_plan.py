"""The service's memory plan: defaults and bound from a scorer's figures, reservations.

Figures are made up here (a fake manifest's worth: base and per compression); the table of
measured figures is checked against perf/results/memory_inflight.json where it exists.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from tersify import Compressor
from tersify.errors import DeadlineExceededError
from tersify.limits import Deadline, Limits
from tersify.service.admission import Admission
from tersify.service.config import ServeConfig, cautious_memory
from tersify.service.guard import Guard
from tersify.service.memory import (
    MEASURED,
    QUEUE_PER_SLOT,
    TOKENIZE_BYTES_PER_BODY_BYTE,
    GiB,
    Machine,
    MemoryPlan,
    MiB,
    ScorerMemory,
    measure_at_start,
    measured,
)
from tersify.service.metrics import Metrics

from fakes import FakeRanker, FakeScorer

RESULTS = Path(__file__).resolve().parents[2] / "perf" / "results" / "memory_inflight.json"
SHORTLIST = ScorerMemory(2 * GiB, 240 * MiB, "fake manifest: shortlist")
FP32 = ScorerMemory(1400 * MiB, 2200 * MiB, "fake manifest: fp32")


def plan(figures: ScorerMemory, cores: int, memory: int, **options: int) -> MemoryPlan:
    return MemoryPlan(figures, Machine(cores, memory), **options)


@pytest.mark.parametrize("figures", [SHORTLIST, FP32])
@pytest.mark.parametrize("cores", [1, 2, 8, 64])
@pytest.mark.parametrize("memory_gib", [4, 24, 256])
def test_the_default_is_the_most_that_keeps_the_bound_in_the_budget(
    figures: ScorerMemory, cores: int, memory_gib: int
) -> None:
    chosen = plan(figures, cores, memory_gib * GiB)
    k = chosen.default_max_inflight()
    assert 1 <= k <= cores
    if k > 1:  # one always runs, whatever the budget
        assert chosen.bound_bytes(k, QUEUE_PER_SLOT * k) <= chosen.budget_bytes
    if k < cores:  # one more would not fit
        more = k + 1
        assert chosen.bound_bytes(more, QUEUE_PER_SLOT * more) > chosen.budget_bytes


def test_the_default_follows_the_scorer_loaded() -> None:
    # 2 cores / 24 GiB (this machine): the cores decide for both variants.
    assert plan(SHORTLIST, 2, 24 * GiB).default_max_inflight() == 2
    assert plan(FP32, 2, 24 * GiB).default_max_inflight() == 2
    # 64 cores / 24 GiB: memory decides, and the shortlist's figure admits several times
    # what fp32's does (the old constant of 2.5 GiB per compression admitted 4).
    shortlist = plan(SHORTLIST, 64, 24 * GiB).default_max_inflight()
    fp32 = plan(FP32, 64, 24 * GiB).default_max_inflight()
    assert shortlist >= 16
    assert fp32 <= 4
    # A smaller body limit holds less per ticket: more slots.
    assert plan(SHORTLIST, 64, 24 * GiB, max_body_bytes=MiB).default_max_inflight() > shortlist


def test_the_bound_adds_its_parts() -> None:
    chosen = plan(SHORTLIST, 2, 24 * GiB, max_body_bytes=8 * MiB, cache_bytes=64 * MiB)
    largest = SHORTLIST.per_inflight_bytes + TOKENIZE_BYTES_PER_BODY_BYTE * 8 * MiB
    assert chosen.cost(8 * MiB) == largest
    assert chosen.work_bytes(2) == SHORTLIST.per_inflight_bytes + largest
    assert chosen.bound_bytes(2, 8) == (
        SHORTLIST.base_bytes + 64 * MiB + 10 * 4 * 8 * MiB + chosen.work_bytes(2)
    )
    line = chosen.describe(2, 8)
    assert "2048 MiB base + 240 MiB per compression" in line
    assert "--max-inflight 2, --max-queue 8" in line


def test_serve_config_takes_its_defaults_from_the_plan() -> None:
    chosen = plan(SHORTLIST, 64, 24 * GiB)
    config = ServeConfig(memory=chosen)
    assert config.max_inflight == chosen.default_max_inflight()
    assert config.max_queue == QUEUE_PER_SLOT * config.max_inflight
    assert config.bound_bytes == chosen.bound_bytes(config.max_inflight, config.max_queue)
    # Flags win; the plan's body limit is the service's own.
    config = ServeConfig(max_inflight=3, max_queue=0, memory=chosen, limits=Limits(1000))
    assert (config.max_inflight, config.max_queue) == (3, 0)
    assert config.plan.max_body_bytes == 1000


def test_without_a_plan_the_largest_measured_figures_stand_in() -> None:
    config = ServeConfig()
    assert config.plan.scorer == cautious_memory()
    assert config.plan.scorer.per_inflight_bytes == max(p for _, p in MEASURED.values()) * MiB
    assert 1 <= config.max_inflight <= config.plan.machine.cores


def test_measured_figures_by_model_and_variant() -> None:
    default = measured("gemma-3-270m", "openvino-shortlist")
    assert default is not None
    assert default.per_inflight_bytes <= 600 * MiB  # issue 22's goal for the default
    assert measured("gemma-3-270m", "no-such-variant") is None
    assert measured("someone-elses-model", "fp32") is None


@pytest.mark.skipif(not RESULTS.is_file(), reason="perf/memory_inflight.py has not run here")
def test_the_table_holds_what_perf_measured() -> None:
    summary = json.loads(RESULTS.read_text(encoding="utf-8"))["summary"]
    for key, figures in summary.items():
        model, variant = key.split(":")
        assert MEASURED.get((model, variant)) == (figures["base_mib"], figures["per_inflight_mib"])


def test_the_machine_here_is_sane() -> None:
    machine = Machine.this()
    assert machine.cores >= 1
    assert machine.memory_bytes >= 256 * MiB


def test_measure_at_start_on_a_scorer_nobody_measured() -> None:
    figures = measure_at_start(Compressor(FakeScorer(), ranker=FakeRanker()))
    assert figures.base_bytes > 0
    assert figures.per_inflight_bytes >= MiB
    assert "measured at start" in figures.source


def test_the_metrics_show_the_limits_and_the_plan() -> None:
    config = ServeConfig(max_inflight=2, max_queue=8, memory=plan(SHORTLIST, 2, 24 * GiB))
    text = Guard(config, Metrics()).metrics.render()
    assert 'tersify_admission_limit{limit="max_inflight"} 2.0' in text
    figures = {
        line.split('"')[1]: float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("tersify_memory_plan_bytes{")
    }
    assert figures["per_inflight"] == 240 * MiB
    assert figures["bound"] == config.bound_bytes
    assert set(figures) == {"base", "per_inflight", "work", "bound", "budget"}
    assert "tersify_memory_reserved_bytes 0.0" in text


# Reservations: the work in flight stays within the plan's work bytes.

BIG = 1024 * 1024  # a body whose tokenizing alone needs 256 MiB
SMALL = 1000


def _admission(max_inflight: int = 3) -> Admission:
    # Work bytes: (3 - 1) x 240 MiB + (240 MiB + 256 MiB): room for three seed-size
    # compressions, or one of the largest body (1 MiB) beside two small ones, never two.
    chosen = plan(SHORTLIST, 4, 24 * GiB, max_body_bytes=BIG)
    return Admission(max_inflight, 0, memory=chosen)


def test_small_compressions_fill_every_slot() -> None:
    async def go() -> int:
        admission = _admission()
        gate = threading.Event()
        peak = 0

        def work(_: Deadline) -> None:
            gate.wait(5)

        tasks = [
            asyncio.ensure_future(admission.run(work, Deadline(10), body_bytes=SMALL))
            for _ in range(3)
        ]
        while admission.running < 3:
            await asyncio.sleep(0.01)
        peak = admission.running
        assert admission.reserved_bytes == 3 * admission._memory.cost(SMALL)  # type: ignore[union-attr]
        gate.set()
        await asyncio.gather(*tasks)
        assert admission.reserved_bytes == 0
        return peak

    assert asyncio.run(go()) == 3


def test_the_largest_bodies_wait_for_each_other_in_turn() -> None:
    async def go() -> list[str]:
        admission = _admission()
        order: list[str] = []
        gates = {name: threading.Event() for name in ("big1", "big2", "small")}

        def work(name: str):  # type: ignore[no-untyped-def]
            def run(_: Deadline) -> None:
                order.append(f"{name} start")
                gates[name].wait(5)
                order.append(f"{name} end")

            return run

        big1 = asyncio.ensure_future(admission.run(work("big1"), Deadline(10), body_bytes=BIG))
        while admission.running < 1:
            await asyncio.sleep(0.01)
        big2 = asyncio.ensure_future(admission.run(work("big2"), Deadline(10), body_bytes=BIG))
        await asyncio.sleep(0.05)
        # big2 has a slot but not the memory; a small one behind it waits its turn too.
        small = asyncio.ensure_future(admission.run(work("small"), Deadline(10), body_bytes=SMALL))
        await asyncio.sleep(0.05)
        assert admission.running == 1
        gates["big1"].set()
        await big1
        while admission.running < 2:
            await asyncio.sleep(0.01)
        gates["big2"].set()
        gates["small"].set()
        await asyncio.gather(big2, small)
        assert admission.reserved_bytes == 0
        return order

    order = asyncio.run(go())
    assert order.index("big1 end") < order.index("big2 start")
    assert order.index("big1 end") < order.index("small start")


def test_waiting_for_memory_ends_at_the_deadline_and_gives_the_turn_on() -> None:
    async def go() -> None:
        admission = _admission()
        gate = threading.Event()
        first = asyncio.ensure_future(
            admission.run(lambda _: gate.wait(5), Deadline(10), body_bytes=BIG)
        )
        while admission.running < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(DeadlineExceededError, match="memory"):
            await admission.run(lambda _: None, Deadline(0.2), body_bytes=BIG)
        # The one that gave up is out of the line: a small one runs beside the first.
        await admission.run(lambda _: None, Deadline(5), body_bytes=SMALL)
        gate.set()
        await first
        assert admission.reserved_bytes == 0

    asyncio.run(go())


def test_one_always_runs_whatever_it_costs() -> None:
    chosen = plan(ScorerMemory(GiB, GiB, "huge"), 2, 4 * GiB, max_body_bytes=BIG)
    admission = Admission(1, 0, memory=chosen)

    async def go() -> str:
        return await admission.run(lambda _: "done", Deadline(5), body_bytes=BIG)

    assert asyncio.run(go()) == "done"
