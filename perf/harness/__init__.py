"""The benchmarks' one harness: every script in perf/ is a thin ``main`` over it.

The scripts run as ``python perf/NAME.py`` or as ``cd perf && python NAME.py``: either way
Python puts perf/ first on ``sys.path``, so ``import harness`` finds this package (the GPU
kit's ``gpu/bench.py`` puts its parent there itself).

- :mod:`.requests`: the example requests, and compressing one the way the seed asks;
- :mod:`.timing`: warm-up and repeats, median, p95 and p99, a stopwatch;
- :mod:`.ports`: a free loopback port; waiting until a URL answers;
- :mod:`.serve`: `tersify serve` as a child process (start, wait, stop), posting to it;
- :mod:`.memory`: a process's memory from /proc (VmRSS, VmHWM), sampled while it works;
- :mod:`.triton`: tritonserver started and stopped by ``tersify.triton.server``, Triton's
  counters, perf_analyzer;
- :mod:`.llmlingua`: LLMLingua 0.2.2 in its own virtual environment, running
  :mod:`.llmlingua_runner` there (with :mod:`.llmlingua_shim`);
- :mod:`.worker`: a measurement in a child process of its own, answering one JSON line;
- :mod:`.results`: ``perf/results/NAME.md`` and ``NAME.json``, with the command, the
  machine and the date (``TERSIFY_PERF_RESULTS=DIR``: in DIR instead, for a trial run).

This file and ``timing``, ``memory``, ``llmlingua_runner`` and ``llmlingua_shim`` import
only the standard library (LLMLingua's venv has no tersify); the others import tersify, and
its optional dependencies only inside the functions that need them.
"""

from __future__ import annotations

import os
from pathlib import Path

PERF = Path(__file__).resolve().parent.parent
ROOT = PERF.parent
# Scratch: converted models, caches, raw perf_analyzer files, LLMLingua's saved answers.
OUT = PERF / "out"
# What the benchmarks report, which the docs include: NAME.md and NAME.json. A trial run
# that must not replace them names another folder in TERSIFY_PERF_RESULTS.
RESULTS = Path(os.environ.get("TERSIFY_PERF_RESULTS") or PERF / "results")
