"""The GPU benchmark kit's driver (run by ``DIR/run.sh``, made by ``perf/gpu/pack.sh``).

``bench.py run --kit DIR --work WORK [--cpu]`` builds the scorer's architecture with random
weights (timing does not depend on weight values; the table says so), starts the kit's
tritonserver with the PyTorch engine on CUDA, and prints one table: the seed compressed end
to end over gRPC, one 512-token window round trip, perf_analyzer at concurrency 1 to 32
(tokens/s and the mean batch Triton merged), the eager PyTorch lower bound, and LLMLingua
0.2.2 on the same GPU when its wheels are in the kit. ``--cpu`` is the dry run: a tiny
model of the same architecture on the CPU, few repetitions, the same flow.

Triton is started and stopped by tersify's own ``tersify.triton.server`` (the kit's server
is laid out as the ``nvidia-pytriton`` wheel it was trimmed from); the timing, perf_analyzer,
LLMLingua's runner and the result files are the benchmarks' harness (``harness/``, beside
``gpu/`` in the kit as in perf/). Writes ``gpu.md`` and ``gpu.json`` into WORK and, where
it is set, ``$OUT``: copy them to perf/results/ for the docs.

``bench.py config-from-gguf SCORER OUT`` (used by pack.sh) writes the scorer's
configuration read from its GGUF source.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

# gpu/bench.py and harness/ lie side by side, in perf/ and in the kit.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import llmlingua as lingua
from harness import requests, results
from harness.timing import Stopwatch, measure
from harness.triton import (
    PerfAnalyzer,
    PerfAnalyzerError,
    counters,
    grpc_address,
    input_data,
    running,
)

from tersify.client.triton_models import MODEL_NAME as MODEL
from tersify.triton.server import ServerState

WINDOW = 512


def _say(message: str) -> None:
    print(message, flush=True)


# -- the scorer: architecture from the kit, random weights ---------------------------------


def build_scorer(kit: Path, work: Path, cpu: bool) -> tuple[Path, str]:
    """A scorer folder with random weights; returns it and a description."""
    import lzma

    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from tersify.bundle import MANIFEST_FILE, Manifest, file_sha256
    from tersify.engines.torch_engine import SHORTLIST_FILE
    from tersify.export.torch_engine import VARIANT, write_engine

    folder = work / ("scorer-cpu" if cpu else "scorer")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_bytes(
        lzma.decompress((kit / "scorer" / "tokenizer.json.xz").read_bytes())
    )
    source = json.loads((kit / "scorer" / "source_manifest.json").read_text())
    config = AutoConfig.from_pretrained(str(kit / "scorer"))
    if cpu:  # same architecture, tiny: the dry run exercises the flow, not the speed
        config.num_hidden_layers, config.hidden_size, config.intermediate_size = 2, 64, 128
        config.num_attention_heads, config.num_key_value_heads, config.head_dim = 2, 1, 32
        if hasattr(config, "layer_types") and config.layer_types:
            config.layer_types = config.layer_types[:2]
    torch.manual_seed(0)
    lm = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    write_engine(lm, folder)
    # The shortlist head's ids, as many as the real export chose (random ids: the sum's
    # cost depends on how many, not which).
    size = int(source.get("verification", {}).get("shortlist_size", 0))
    if size:
        chosen = torch.randperm(int(config.vocab_size) - 1)[: size - 1] + 1
        np.save(folder / SHORTLIST_FILE, np.sort(np.concatenate([[0], chosen.numpy()])))
    hashes = {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST_FILE}
    params = sum(p.numel() for p in lm.parameters())
    description = (
        f"{source['name']} architecture ({type(lm).__name__}, {params / 1e6:.0f}M parameters), "
        "RANDOM weights" + (f", shortlist head of {size} ids" if size else "")
    )
    manifest = Manifest(
        name=source["name"],
        source=description,
        vocab_size=int(config.vocab_size),
        max_positions=int(config.max_position_embeddings),
        bos_token_id=source["bos_token_id"],
        model_files={VARIANT: "model.safetensors"},
        sha256=hashes,
        verification={"random_weights": True},
    )
    (folder / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
    return folder, description


# -- the server ------------------------------------------------------------------------------


def serving(
    work: Path,
    scorer: Path,
    cpu: bool,
    queue_delay_us: int,
    instances: int = 1,
    head: str = "auto",
    compile: bool = False,
) -> AbstractContextManager[ServerState]:
    """The kit's tritonserver with the python-form model running the torch engine."""
    from tersify.bundle import Bundle
    from tersify.client.triton_models import Batching
    from tersify.triton.config import ScorerConfig

    config = ScorerConfig(
        form="python",
        engine="torch",
        batching=Batching(max_queue_delay_us=queue_delay_us),
        cuda_graphs=not cpu,
        instance_count=instances,
        engine_head=head,
        engine_compile=compile,
    )
    run_dir = work / f"triton-{instances}-{head}"
    return running(Bundle.open(scorer), run_dir, scorer=config, ranker=None, ready_timeout_s=600)


def server_log(state: ServerState) -> str:
    return (Path(state.run_dir) / "tritonserver.log").read_text(errors="replace")


def engine_line(state: ServerState) -> str:
    found = re.findall(r"tersify scorer: ([^\"\n]*)", server_log(state))
    return found[-1] if found else "(no engine line in the log)"


# -- measurements ----------------------------------------------------------------------------


def seed_end_to_end(
    address: str, scorer: Path, request: dict[str, Any], repeat: int, warmup: int
) -> dict[str, Any]:
    """The seed compressed through Triton over gRPC, one compression at a time."""
    import numpy as np

    from tersify import Compressor
    from tersify.bundle import Bundle
    from tersify.client.triton import TritonScorer, TritonTarget

    client = TritonScorer(TritonTarget.parse(f"grpc://{address}"), Bundle.open(scorer))
    compressor = Compressor(client, cache=False)  # every run asks the server
    runs = measure(lambda: requests.compress(compressor, request), repeat=repeat, warmup=warmup)
    window = [int(x) for x in client.tokenize("\n\n".join(request["context"])).ids[: WINDOW - 1]]
    window = np.asarray([client.bos_token_id or 0, *window], dtype=np.int64)
    trips = measure(lambda: client.logprobs([window]), repeat=repeat, warmup=warmup)
    client.close()
    result = runs.last
    return {
        "p50_ms": runs.median * 1e3,
        "p99_ms": runs.p99 * 1e3,
        "scorer_p50_ms": statistics.median(r.scorer_seconds for r in runs.results) * 1e3,
        "window_p50_ms": trips.median * 1e3,
        "window_p99_ms": trips.p99 * 1e3,
        "origin_tokens": result.origin_tokens,
        "compressed_tokens": result.compressed_tokens,
        "scorer_tokens": result.scorer_tokens,
        "window_ids": window.tolist(),
    }


def perf_analyzer(
    work: Path, address: str, window: list[int], levels: list[int], interval_ms: int
) -> list[dict[str, Any]]:
    """Throughput at each concurrency with real ids, and the mean batch Triton merged."""
    data = input_data(
        work / "pa_input.json", [{"input_ids": {"content": window, "shape": [len(window)]}}]
    )
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(work / "palibs"), env.get("LD_LIBRARY_PATH", "")) if p
    )
    analyzer = PerfAnalyzer(work / "perf_analyzer", env)
    window_options = (
        ["--measurement-mode", "count_windows", "--measurement-request-count", "3"]
        if interval_ms <= 0
        else ["--measurement-interval", str(interval_ms)]
    )
    rows: list[dict[str, Any]] = []
    for level in levels:
        before = counters(address, MODEL)
        try:
            measured = analyzer.run(
                MODEL, address, data, level,
                "--shape", f"input_ids:{len(window)}",
                *window_options,
                "--max-trials", "6",
                # the CPU dry run is noisy: its flow matters
                "--stability-percentage", "25" if interval_ms > 0 else "60",
                report=work / f"pa_c{level}.csv",
                timeout_s=180,
            )  # fmt: skip
        except PerfAnalyzerError as exc:
            rows.append({"concurrency": level, "error": str(exc)})
            continue
        delta = counters(address, MODEL) - before
        if delta.failed:
            rows.append({"concurrency": level, "error": f"{delta.failed} failed requests"})
            continue
        rows.append(
            {
                "concurrency": level,
                "infer_per_s": measured.infer_per_s,
                "tokens_per_s": measured.infer_per_s * len(window),
                "p50_ms": measured.p50_us / 1e3,
                "mean_batch": delta.mean_batch,
            }
        )
    return rows


def _timed(run: Callable[[], object], repeat: int, warmup: int, sync: Any) -> float:
    return measure(run, repeat=repeat, warmup=warmup, sync=sync).median * 1e3


def prompt_ids(scorer: Path, request: dict[str, Any]) -> list[int]:
    """The whole request as the scorer's ids, BOS first (the lower bound's input)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(scorer / "tokenizer.json"))
    bos = json.loads((scorer / "manifest.json").read_text())["bos_token_id"]
    return [bos, *tokenizer.encode(requests.prompt(request), add_special_tokens=False).ids]


def eager_lower_bound(scorer: Path, ids: list[int], cpu: bool, repeat: int) -> dict[str, Any]:
    """One eager forward over the whole prompt, log-probs gathered on the device."""
    import torch

    from tersify.engines.torch_engine import EngineOptions, TorchEngine

    plain = EngineOptions(device="cpu" if cpu else "auto", log_softmax="torch", head="full")
    engine = TorchEngine.load(scorer, plain)
    tensor = torch.tensor([ids], dtype=torch.int64, device=engine.device)
    sync = torch.cuda.synchronize if engine.device.type == "cuda" else (lambda: None)
    ms = _timed(lambda: engine.compute(tensor), repeat, 1 if cpu else 3, sync)
    return {"tokens": len(ids), "p50_ms": ms}


def engine_alone(scorer: Path, ids: list[int], cpu: bool, repeat: int) -> dict[str, Any]:
    """The engine alone per bucket (CUDA graphs on a GPU): the full head with the fused and
    the plain log-softmax, the shortlist head where the scorer has one, and the server's
    head with the decoder compiled and in fp32 (the precision that keeps the CPU's
    selection); ``compile_wins`` says whether compiling was faster at one window and at the
    request's windows."""
    import numpy as np
    import torch

    from tersify.engines.torch_engine import SHORTLIST_FILE, EngineOptions, TorchEngine

    device = "cpu" if cpu else "auto"
    model = TorchEngine.load(scorer, EngineOptions(device=device, head="full")).model
    sync = torch.cuda.synchronize if torch.cuda.is_available() and not cpu else (lambda: None)
    windows = torch.zeros((-(-len(ids) // WINDOW), WINDOW), dtype=torch.int64)
    flat = torch.tensor(ids[: windows.numel()])
    windows.view(-1)[: len(flat)] = flat
    batches = {1: windows[:1], len(windows): windows}
    batches[16] = windows.repeat(-(-16 // len(windows)), 1)[:16]
    if cpu:  # the dry run: the same code, one small bucket, no CUDA graph
        windows = windows[:2]
        batches = {1: windows[:1]}
    listed = scorer / SHORTLIST_FILE
    shortlist = np.load(listed) if listed.is_file() else None
    served = "shortlist head" if shortlist is not None else "full head, fused"
    kinds: dict[str, tuple[str, Any, bool, str]] = {
        "full head, fused": ("fused", None, False, "auto"),
        "full head, torch": ("torch", None, False, "auto"),
    }
    if shortlist is not None:
        kinds["shortlist head"] = ("torch", shortlist, False, "auto")
    kinds[f"{served}, compiled"] = (*kinds[served][:2], True, "auto")
    # fp32 keeps the CPU's selection (perf/engine_precision.py); bf16 changes a few percent.
    kinds[f"{served}, fp32"] = (*kinds[served][:2], False, "float32")
    report: dict[str, Any] = {"graphs": {}, "run_as": {}, "served_head": served}
    outputs = {}
    for kind, (log_softmax, short, compiled, dtype) in kinds.items():
        options = EngineOptions(
            device=device,
            dtype=dtype,  # type: ignore[arg-type]
            batch_sizes=tuple(batches),
            lengths=(WINDOW,),
            log_softmax=log_softmax,  # type: ignore[arg-type]
            head="full" if short is None else "shortlist",
            compile=compiled,
        )
        engine = TorchEngine(model, options, short)
        engine.capture()
        captured = len(engine.graph_buckets)
        report["run_as"][kind] = (
            "CUDA graph" if captured == len(batches) else f"{captured}/{len(batches)} CUDA graphs"
        )
        if compiled:
            report["compile"] = engine.describe()
            if not engine.compiled:
                continue
        for rows, ids_batch in batches.items():
            on_device = ids_batch.to(engine.device)
            ms = _timed(lambda: engine.run(on_device), repeat, 0 if cpu else 3, sync)  # noqa: B023
            report["graphs"][f"{kind} [{rows}, {WINDOW}]"] = ms
        outputs[kind] = engine.run(windows.to(engine.device)).clone()
    fused, plain_out = outputs["full head, fused"], outputs["full head, torch"]
    report["fused_vs_torch_max_abs"] = float((fused - plain_out).abs().max())
    graphs = report["graphs"]
    pairs = [(f"{served}, compiled [{n}, {WINDOW}]", f"{served} [{n}, {WINDOW}]") for n in batches]
    report["compile_wins"] = all(
        fast in graphs and graphs[fast] < graphs[slow] for fast, slow in pairs[:2]
    )
    if f"{served}, compiled" in outputs:
        compiled_out = outputs[f"{served}, compiled"]
        report["compiled_max_abs"] = float((compiled_out - outputs[served]).abs().max())
    return report


def llmlingua(work: Path, scorer: Path, kit: Path, cpu: bool, repeat: int) -> dict[str, Any]:
    """LLMLingua 0.2.2 on the same device and request, with the same random model."""
    if importlib.util.find_spec("llmlingua") is None:
        return {"error": "LLMLingua's wheels are not in the kit"}
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    folder = work / "llmlingua-model"
    model = AutoModelForCausalLM.from_pretrained(
        str(scorer), dtype=torch.float32 if cpu else torch.bfloat16
    )
    model.save_pretrained(str(folder))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(scorer / "tokenizer.json"),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
    )
    tokenizer.save_pretrained(str(folder))
    del model
    seed = ["seed", str(folder), str(kit / "seed_request.json"), "--repeat", str(repeat)]
    options = ["--device", "cpu" if cpu else "cuda", "--modes", "llmlingua,longllmlingua"]
    try:
        rows = lingua.run(
            sys.executable,
            *seed,
            *options,
            "--warmup",
            "2",
            env=lingua.environment(work / "tiktoken-cache"),
            timeout_s=900 if cpu else 150,  # the CPU dry run on a shared machine is slow
        )
    except (lingua.LLMLinguaFailed, subprocess.TimeoutExpired) as exc:
        return {"error": str(exc)[-1500:]}
    return {row["mode"]: row["median_s"] * 1e3 for row in rows}


# -- the table -------------------------------------------------------------------------------


Row = list[str]


def _throughput(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"failed: {row['error'][-200:]!r}"
    return (
        f"{row['tokens_per_s'] / 1e3:.0f}k tokens/s ({row['infer_per_s']:.0f} infer/s, "
        f"p50 {row['p50_ms']:.1f} ms, mean batch {row['mean_batch']:.1f})"
    )


def _server_rows(report: dict[str, Any]) -> list[Row]:
    """The seed, the window and perf_analyzer against the server (both heads)."""
    seed = report["seed"]
    rows = [
        [
            f"seed end to end over gRPC, concurrency 1 ({report['repeat']} runs)",
            f"p50 {seed['p50_ms']:.1f} ms, p99 {seed['p99_ms']:.1f} ms (scorer p50 "
            f"{seed['scorer_p50_ms']:.1f} ms; {seed['origin_tokens']} -> "
            f"{seed['compressed_tokens']} tokens, {seed['scorer_tokens']} scorer tokens)",
            "<= 15 ms p50, <= 25 ms p99",
        ],
        [
            f"one {WINDOW}-token window round trip",
            f"p50 {seed['window_p50_ms']:.2f} ms, p99 {seed['window_p99_ms']:.2f} ms",
            "<= 3 ms p50",
        ],
    ]
    for row in report["perf_analyzer"]:
        measure = f"perf_analyzer [1, {WINDOW}] c={row['concurrency']}" + (
            f", {row['instances']} instances" if row.get("instances") else ""
        )
        goal = ">= 300k tokens/s" if row["concurrency"] == 32 else ""
        rows.append([measure, _throughput(row), goal])
    full = report.get("full_head")
    if full:
        rows.append(
            [
                f"the same, full-vocabulary head: seed end to end ({full['repeat']} runs)",
                f"p50 {full['p50_ms']:.1f} ms, p99 {full['p99_ms']:.1f} ms (scorer p50 "
                f"{full['scorer_p50_ms']:.1f} ms); window p50 {full['window_p50_ms']:.2f} ms",
                "",
            ]
        )
        for row in full["perf_analyzer"]:
            measure = f"the same, full-vocabulary head: perf_analyzer c={row['concurrency']}"
            rows.append([measure, _throughput(row), ""])
    return rows


def _engine_rows(report: dict[str, Any]) -> list[Row]:
    """The eager lower bound and the engine alone, each graph and how it ran."""
    eager, alone = report["eager"], report["alone"]
    rows = [[f"eager PyTorch lower bound, [1, {eager['tokens']}]", f"{eager['p50_ms']:.1f} ms", ""]]
    for name, ms in alone["graphs"].items():
        batch = int(name.split("[")[1].split(",")[0])
        rows.append(
            [
                f"engine alone, {alone['run_as'][name.rsplit(' [', 1)[0]]}, {name}",
                f"{ms:.2f} ms ({batch * WINDOW / ms:.0f}k tokens/s)",
                "",
            ]
        )
    rows.append(
        ["fused vs plain log-softmax, max abs diff", f"{alone['fused_vs_torch_max_abs']:.2e}", ""]
    )
    if "compiled_max_abs" in alone:
        rows.append(
            ["compiled vs eager decoder, max abs diff", f"{alone['compiled_max_abs']:.2e}", ""]
        )
    rows.append(["the decoder compiled", alone.get("compile", "not tried"), ""])
    return rows


def _llmlingua_rows(report: dict[str, Any]) -> list[Row]:
    """LLMLingua's modes, each against tersify's p50 (and the full head's, where measured)."""
    ll, seed, full = report.get("llmlingua", {}), report["seed"], report.get("full_head")
    rows = []
    if "error" in ll:
        rows.append(["LLMLingua 0.2.2", f"not run: {ll['error'][-300:]!r}", ""])
    for mode, ms in ll.items():
        if mode != "error":
            versus = f"{ms:.1f} ms ({ms / seed['p50_ms']:.1f}x tersify's p50"
            if full:  # LLMLingua sums the whole vocabulary: the ratio to that head too
                versus += f"; {ms / full['p50_ms']:.1f}x with the full-vocabulary head"
            rows.append(
                [f"LLMLingua 0.2.2 `{mode}`, same device and model", versus + ")", ">= 15x"]
            )
    return rows


def table(report: dict[str, Any]) -> str:
    """The report as one markdown table, the device and engine above it."""
    rows = [*_server_rows(report), *_engine_rows(report), *_llmlingua_rows(report)]
    return (
        f"GPU: {report['device']}   scorer: {report['scorer']}\n"
        f"engine: {report['engine']}   server ready in {report['ready_s']:.1f}s"
        f"   server's compile: {report['server_compile']}\n\n"
        + results.table(["measure", "result", "goal"], rows)
    )


def _interval(args: argparse.Namespace) -> int:
    return 0 if args.cpu else args.interval_ms


def served(
    args: argparse.Namespace, scorer: Path, request: dict[str, Any], report: dict[str, Any]
) -> list[int]:
    """The seed, the window and perf_analyzer against the server; the window's ids."""
    work, compiled = Path(args.work).resolve(), report["compile_on"]
    repeat, levels = report["repeat"], report["levels"]
    _say(f"== tritonserver with the torch engine, compile {report['server_compile']}")
    started = Stopwatch().start()
    with serving(work, scorer, args.cpu, args.queue_delay_us, compile=compiled) as state:
        report["ready_s"] = started.elapsed
        report["engine"] = engine_line(state)
        _say(f"   ready in {report['ready_s']:.1f}s: {report['engine']}")
        _say(f"== seed end to end over gRPC, {repeat} runs")
        address = grpc_address(state)
        report["seed"] = seed_end_to_end(address, scorer, request, repeat, 1 if args.cpu else 5)
        window: list[int] = report["seed"].pop("window_ids")
        _say(f"   {report['seed']}")
        _say(f"== perf_analyzer at concurrency {levels}")
        report["perf_analyzer"] = perf_analyzer(work, address, window, levels, _interval(args))
        for row in report["perf_analyzer"]:
            _say(f"   {row}")
        report["server_log"] = server_log(state)[:100_000]
    return window


def full_head(
    args: argparse.Namespace,
    scorer: Path,
    request: dict[str, Any],
    window: list[int],
    report: dict[str, Any],
) -> dict[str, Any]:
    """The same server with the full-vocabulary head: the seed, the window, two levels."""
    work, levels = Path(args.work).resolve(), report["levels"]
    _say("== the same server with the full-vocabulary head (engine_head=full)")
    compiled = report["compile_on"]
    with serving(
        work, scorer, args.cpu, args.queue_delay_us, head="full", compile=compiled
    ) as state:
        runs = max(2, report["repeat"] // 3)
        address = grpc_address(state)
        compare = seed_end_to_end(address, scorer, request, runs, 1 if args.cpu else 5)
        compare.pop("window_ids")
        compare["repeat"] = runs
        compare["engine"] = engine_line(state)
        _say(f"   {compare}")
        compare["perf_analyzer"] = perf_analyzer(
            work, address, window, [levels[0], levels[-1]], _interval(args)
        )
    for row in compare["perf_analyzer"]:
        row["head"] = "full"
        _say(f"   {row}")
    return compare


def more_instances(
    args: argparse.Namespace, scorer: Path, window: list[int], compiled: bool
) -> list[dict[str, Any]]:
    """perf_analyzer at concurrency 16 and 32 against ``--instances`` model instances."""
    work = Path(args.work).resolve()
    _say(f"== {args.instances} model instances: perf_analyzer at concurrency 16, 32")
    with serving(
        work, scorer, args.cpu, args.queue_delay_us, args.instances, compile=compiled
    ) as state:
        rows = perf_analyzer(work, grpc_address(state), window, [16, 32], args.interval_ms)
    for row in rows:
        row["instances"] = args.instances
        _say(f"   {row}")
    return rows


def write(report: dict[str, Any], work: Path) -> str:
    """gpu.md and gpu.json into WORK, and into $OUT where it is set (with the server's log)."""
    import torch

    log = report.pop("server_log", "")
    machine = f"{report['device']} (torch {torch.__version__}), CPU {results.cpu_summary()}"
    text = table(report)
    for folder in filter(None, (str(work), os.environ.get("OUT"))):
        results.write("gpu", text, report, directory=Path(folder), machine=machine)
        Path(folder, "tritonserver.log").write_text(log)
    return text


def run(args: argparse.Namespace) -> None:
    from tersify.engines.torch_engine import SHORTLIST_FILE

    started = Stopwatch().start()
    kit, work = Path(args.kit).resolve(), Path(args.work).resolve()
    import torch

    cpu = args.cpu
    if not cpu and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --cpu for the dry run")
    device = "CPU (dry run)" if cpu else torch.cuda.get_device_name(0)
    repeat = args.repeat or (2 if cpu else 100)
    levels = [int(x) for x in (args.concurrency or ("1,2" if cpu else "1,2,4,8,16,32")).split(",")]
    _say(f"== scorer with random weights ({'tiny, CPU' if cpu else 'full size'})")
    scorer, description = build_scorer(kit, work, cpu)
    _say(f"   {description} (timing does not depend on weight values)")
    report: dict[str, Any] = {"device": device, "scorer": description, "repeat": repeat}
    report["levels"] = levels
    request = requests.load(kit / "seed_request.json")
    ids = prompt_ids(scorer, request)
    _say("== the engine alone: full and shortlist head, eager and compiled decoder")
    report["alone"] = engine_alone(scorer, ids, cpu, 1 if cpu else 50)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # its engines are gone: the server, next, gets the memory
    _say(f"   {report['alone']}")
    compiled = {"on": True, "off": False}.get(args.compile, report["alone"]["compile_wins"])
    report["compile_on"] = compiled
    report["server_compile"] = f"{'on' if compiled else 'off'} ({args.compile})"
    window = served(args, scorer, request, report)
    if (scorer / SHORTLIST_FILE).is_file() and not args.skip_full_head:
        report["full_head"] = full_head(args, scorer, request, window, report)
    if args.instances > 1 and not cpu:
        report["perf_analyzer"] += more_instances(args, scorer, window, compiled)
    _say("== eager PyTorch lower bound")
    report["eager"] = eager_lower_bound(scorer, ids, cpu, 1 if cpu else 50)
    _say(f"   {report['eager']}")
    if not args.skip_llmlingua:
        _say("== LLMLingua 0.2.2")
        report["llmlingua"] = llmlingua(work, scorer, kit, cpu, 1 if cpu else 10)
        _say(f"   {report['llmlingua']}")
    report["wall_s"] = started.elapsed
    text = write(report, work)
    _say(f"\n{text}\n\n(whole run {report['wall_s']:.0f}s)")


def config_from_gguf(scorer: str, out: str) -> None:
    """Write the scorer's configuration, read from the GGUF file it was exported from."""
    from transformers import AutoConfig

    manifest = json.loads(Path(scorer, "manifest.json").read_text())
    gguf = Path(re.search(r"\((.*\.gguf)\)", manifest["source"]).group(1))
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config.to_json_file(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    go = commands.add_parser("run", help="run the benchmark and print the table")
    go.add_argument("--kit", required=True)
    go.add_argument("--work", required=True)
    go.add_argument("--cpu", action="store_true", help="dry run: tiny random model on the CPU")
    go.add_argument(
        "--repeat", type=int, default=0, help="runs per latency figure (100; 3 with --cpu)"
    )
    go.add_argument("--concurrency", default="", help="perf_analyzer levels (1,2,4,8,16,32)")
    go.add_argument(
        "--interval-ms", type=int, default=2000, help="perf_analyzer measurement window"
    )
    go.add_argument("--queue-delay-us", type=int, default=100, help="dynamic batcher queue delay")
    go.add_argument("--skip-llmlingua", action="store_true")
    go.add_argument(
        "--instances",
        type=int,
        default=1,
        help="also measure this many model instances (GPU; 2 did not help on an H100)",
    )
    go.add_argument(
        "--compile",
        choices=("auto", "on", "off"),
        default="auto",
        help="the server's torch.compile: auto = on where the engine alone ran faster compiled",
    )
    go.add_argument(
        "--skip-full-head",
        action="store_true",
        help="skip the second server with the full-vocabulary head (engine_head=full)",
    )
    conf = commands.add_parser("config-from-gguf")
    conf.add_argument("scorer")
    conf.add_argument("out")
    args = parser.parse_args()
    if args.command == "run":
        run(args)
    else:
        config_from_gguf(args.scorer, args.out)


if __name__ == "__main__":
    main()
