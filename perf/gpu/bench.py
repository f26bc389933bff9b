"""The GPU benchmark kit's driver (run by ``DIR/run.sh``, made by ``perf/gpu/pack.sh``).

``bench.py run --kit DIR --work WORK [--cpu]`` builds the scorer's architecture with random
weights (timing does not depend on weight values; the table says so), starts the kit's
tritonserver with the PyTorch engine on CUDA, and prints one table: the seed compressed end
to end over gRPC, one 512-token window round trip, perf_analyzer at concurrency 1 to 32
(tokens/s and the mean batch Triton merged), the eager PyTorch lower bound, and LLMLingua
0.2.2 on the same GPU when its wheels are in the kit. ``--cpu`` is the dry run: a tiny
model of the same architecture on the CPU, few repetitions, the same flow.

``bench.py config-from-gguf SCORER OUT`` (used by pack.sh) writes the scorer's
configuration read from its GGUF source.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
import urllib.request
from pathlib import Path
from typing import Any

MODEL = "tersify_scorer"
WINDOW = 512


def _say(message: str) -> None:
    print(message, flush=True)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


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


class Server:
    """The kit's tritonserver with the python-form model running the torch engine."""

    def __init__(
        self,
        work: Path,
        scorer: Path,
        cpu: bool,
        queue_delay_us: int,
        instances: int = 1,
        head: str = "auto",
        compile: bool = False,
    ) -> None:
        from tersify.bundle import Bundle
        from tersify.client.triton_models import Batching
        from tersify.triton.config import ScorerConfig, write_model

        self.work = work
        repo = work / "repository"
        batching = Batching(max_queue_delay_us=queue_delay_us)
        config = ScorerConfig(
            form="python",
            engine="torch",
            batching=batching,
            cuda_graphs=not cpu,
            instance_count=instances,
            engine_head=head,
            engine_compile=compile,
        )
        write_model(config, repo / MODEL, bundle=Bundle.open(scorer), symlink=True)
        self.http, self.grpc, self.metrics = _port(), _port(), _port()
        server = work / "server"
        libdir = sysconfig.get_config_var("LIBDIR") or ""
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (libdir, str(server / "libs"), env.get("LD_LIBRARY_PATH", "")) if p
        )
        site = [
            str(work / "site"),
            *sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}),
        ]
        site += [p for p in sys.path if p.endswith("-packages") and p not in site]
        env["TERSIFY_SITE_PACKAGES"] = os.pathsep.join(site)
        self.log = work / f"tritonserver-{instances}-{head}.log"
        command = [
            str(server / "bin" / "tritonserver"),
            f"--model-repository={repo}",
            f"--backend-directory={server / 'backends'}",
            "--http-address=127.0.0.1",
            f"--http-port={self.http}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self.metrics}",
            "--allow-gpu-metrics=false",
        ]
        self.process = subprocess.Popen(
            command, stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env
        )

    def wait(self, timeout_s: float) -> float:
        started = time.monotonic()
        url = f"http://127.0.0.1:{self.http}/v2/models/{MODEL}/ready"
        while time.monotonic() - started < timeout_s:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"tritonserver exited: {self.log.read_text(errors='replace')[-3000:]}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(
            f"not ready in {timeout_s}s: {self.log.read_text(errors='replace')[-3000:]}"
        )

    def engine_line(self) -> str:
        found = re.findall(r"tersify scorer: ([^\"\n]*)", self.log.read_text(errors="replace"))
        return found[-1] if found else "(no engine line in the log)"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


# -- measurements ----------------------------------------------------------------------------


def seed_end_to_end(
    grpc_port: int, scorer: Path, request: dict[str, Any], repeat: int, warmup: int
) -> dict[str, Any]:
    """The seed compressed through Triton over gRPC, one compression at a time."""
    import numpy as np

    from tersify import Compressor
    from tersify.bundle import Bundle
    from tersify.client.triton import TritonScorer, TritonTarget

    client = TritonScorer(TritonTarget.parse(f"grpc://127.0.0.1:{grpc_port}"), Bundle.open(scorer))
    compressor = Compressor(client, cache=False)  # every run asks the server

    def once() -> Any:
        return compressor.compress(
            request["context"], question=request["question"], ratio=request["ratio"]
        )

    for _ in range(warmup):
        result = once()
    times, scorer_times = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        result = once()
        times.append(time.perf_counter() - started)
        scorer_times.append(result.scorer_seconds)
    window = [int(x) for x in client.tokenize("\n\n".join(request["context"])).ids[: WINDOW - 1]]
    window = np.asarray([client.bos_token_id or 0, *window], dtype=np.int64)
    trips = []
    for i in range(repeat + warmup):
        started = time.perf_counter()
        client.logprobs([window])
        if i >= warmup:
            trips.append(time.perf_counter() - started)
    p50, p99 = _ms(times)
    s50, _ = _ms(scorer_times)
    w50, w99 = _ms(trips)
    client.close()
    return {
        "p50_ms": p50,
        "p99_ms": p99,
        "scorer_p50_ms": s50,
        "window_p50_ms": w50,
        "window_p99_ms": w99,
        "origin_tokens": result.origin_tokens,
        "compressed_tokens": result.compressed_tokens,
        "scorer_tokens": result.scorer_tokens,
        "window_ids": window.tolist(),
    }


def perf_analyzer(
    work: Path, grpc_port: int, window: list[int], levels: list[int], interval_ms: int
) -> list[dict[str, Any]]:
    """Throughput at each concurrency with real ids, and the mean batch Triton merged."""
    import tritonclient.grpc as grpcclient

    data = work / "pa_input.json"
    data.write_text(
        json.dumps({"data": [{"input_ids": {"content": window, "shape": [len(window)]}}]})
    )
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")

    def counts() -> tuple[int, int, int]:
        stats = client.get_inference_statistics(MODEL).model_stats[0]
        failed = int(stats.inference_stats.fail.count)
        return int(stats.inference_count), int(stats.execution_count), failed

    rows = []
    for level in levels:
        before = counts()
        command = [
            str(work / "perf_analyzer"),
            "-m",
            MODEL,
            "-i",
            "grpc",
            "-u",
            f"127.0.0.1:{grpc_port}",
            "--input-data",
            str(data),
            "--shape",
            f"input_ids:{len(window)}",
            "--concurrency-range",
            f"{level}:{level}",
            *(
                ["--measurement-mode", "count_windows", "--measurement-request-count", "3"]
                if interval_ms <= 0
                else ["--measurement-interval", str(interval_ms)]
            ),
            "--max-trials",
            "6",
            "--stability-percentage",
            "25" if interval_ms > 0 else "60",  # the CPU dry run is noisy: its flow matters
        ]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(work / "palibs"), env.get("LD_LIBRARY_PATH", "")) if p
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
        after = counts()
        match = re.search(r"Throughput: ([0-9.]+) infer/sec", done.stdout)
        latency = re.search(r"p50 latency: ([0-9]+) usec", done.stdout)
        if match is None:
            rows.append({"concurrency": level, "error": (done.stdout + done.stderr)[-800:]})
            continue
        inferences, executions = after[0] - before[0], after[1] - before[1]
        if after[2] > before[2] or done.returncode != 0:
            rows.append(
                {
                    "concurrency": level,
                    "error": f"{after[2] - before[2]} failed requests, rc {done.returncode}: "
                    + (done.stdout + done.stderr)[-600:],
                }
            )
            continue
        rows.append(
            {
                "concurrency": level,
                "infer_per_s": float(match.group(1)),
                "tokens_per_s": float(match.group(1)) * len(window),
                "p50_ms": int(latency.group(1)) / 1e3 if latency else float("nan"),
                "mean_batch": inferences / executions if executions else float("nan"),
            }
        )
    client.close()
    return rows


def _timed(run: Any, repeat: int, warmup: int, sync: Any) -> float:
    times = []
    for i in range(repeat + warmup):
        sync()
        started = time.perf_counter()
        run()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - started)
    return _ms(times)[0]


def prompt_ids(scorer: Path, request: dict[str, Any]) -> list[int]:
    """The whole request as the scorer's ids, BOS first (the lower bound's input)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(scorer / "tokenizer.json"))
    text = "\n\n".join([*request["context"], request["question"]])
    bos = json.loads((scorer / "manifest.json").read_text())["bos_token_id"]
    return [bos, *tokenizer.encode(text, add_special_tokens=False).ids]


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


LLMLINGUA_SCRIPT = r"""
import json, statistics, sys, time, torch
from llmlingua import PromptCompressor
folder, seed, repeat, device, kit = sys.argv[1:6]
repeat = int(repeat)
sys.path.insert(0, kit)
from llmlingua_shim import legacy_cache, needs_legacy_cache  # transformers 5: tuple caches
request = json.load(open(seed, encoding="utf-8"))
out = {}
for mode in ("llmlingua", "longllmlingua"):
    compressor = PromptCompressor(model_name=folder, device_map=device)
    if needs_legacy_cache():
        legacy_cache(compressor.model)
    kwargs = {"rank_method": "longllmlingua", "condition_in_question": "after_condition",
              "condition_compare": True} if mode == "longllmlingua" else {}
    times = []
    for i in range(repeat + 2):
        if device == "cuda": torch.cuda.synchronize()
        started = time.perf_counter()
        compressor.compress_prompt(request["context"], question=request["question"],
                                   rate=1 - request["ratio"], **kwargs)
        if device == "cuda": torch.cuda.synchronize()
        if i >= 2: times.append(time.perf_counter() - started)
    out[mode] = statistics.median(times) * 1e3
print("RESULT " + json.dumps(out))
"""


def llmlingua(work: Path, scorer: Path, kit: Path, cpu: bool, repeat: int) -> dict[str, Any]:
    """LLMLingua 0.2.2 on the same device and request, with the same random model."""
    try:
        import llmlingua  # noqa: F401
    except ImportError:
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
    script = work / "llmlingua_run.py"
    script.write_text(LLMLINGUA_SCRIPT)
    # LLMLingua asks tiktoken for cl100k_base, which tiktoken would download: give it the
    # file tersify ships, under tiktoken's cache key. No network, no Hugging Face Hub.
    import tersify

    cache = work / "tiktoken-cache"
    cache.mkdir(exist_ok=True)
    shipped = Path(tersify.__file__).parent / "encodings" / "cl100k_base.tiktoken"
    (cache / "9b5ad71b2ce5302211f9c61530b329a4922fc6a4").write_bytes(shipped.read_bytes())
    env = dict(os.environ, TIKTOKEN_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            str(folder),
            str(kit / "seed_request.json"),
            str(repeat),
            "cpu" if cpu else "cuda",
            str(kit),
        ],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )
    found = re.search(r"RESULT (.*)", done.stdout)
    if not found:
        return {"error": (done.stdout + done.stderr)[-1500:]}
    return json.loads(found.group(1))


# -- the table -------------------------------------------------------------------------------


def _row(measure: str, result: str, goal: str = "") -> str:
    return f"| {measure} | {result} | {goal} |"


def _throughput(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"failed: {row['error'][-200:]!r}"
    return (
        f"{row['tokens_per_s'] / 1e3:.0f}k tokens/s ({row['infer_per_s']:.0f} infer/s, "
        f"p50 {row['p50_ms']:.1f} ms, mean batch {row['mean_batch']:.1f})"
    )


def table(report: dict[str, Any]) -> str:
    """The report as one markdown table, the device and engine above it."""
    seed, eager, ll = report["seed"], report["eager"], report.get("llmlingua", {})
    lines = [
        f"GPU: {report['device']}   scorer: {report['scorer']}",
        f"engine: {report['engine']}   server ready in {report['ready_s']:.1f}s"
        f"   server's compile: {report['server_compile']}",
        "",
        _row("measure", "result", "goal"),
        _row("---", "---", "---"),
        _row(
            f"seed end to end over gRPC, concurrency 1 ({report['repeat']} runs)",
            f"p50 {seed['p50_ms']:.1f} ms, p99 {seed['p99_ms']:.1f} ms (scorer p50 "
            f"{seed['scorer_p50_ms']:.1f} ms; {seed['origin_tokens']} -> "
            f"{seed['compressed_tokens']} tokens, {seed['scorer_tokens']} scorer tokens)",
            "<= 15 ms p50, <= 25 ms p99",
        ),
        _row(
            f"one {WINDOW}-token window round trip",
            f"p50 {seed['window_p50_ms']:.2f} ms, p99 {seed['window_p99_ms']:.2f} ms",
            "<= 3 ms p50",
        ),
    ]
    for row in report["perf_analyzer"]:
        measure = f"perf_analyzer [1, {WINDOW}] c={row['concurrency']}" + (
            f", {row['instances']} instances" if row.get("instances") else ""
        )
        goal = ">= 300k tokens/s" if row["concurrency"] == 32 else ""
        lines.append(_row(measure, _throughput(row), goal))
    full = report.get("full_head")
    if full:
        lines.append(
            _row(
                f"the same, full-vocabulary head: seed end to end ({full['repeat']} runs)",
                f"p50 {full['p50_ms']:.1f} ms, p99 {full['p99_ms']:.1f} ms (scorer p50 "
                f"{full['scorer_p50_ms']:.1f} ms); window p50 {full['window_p50_ms']:.2f} ms",
            )
        )
        for row in full["perf_analyzer"]:
            measure = f"the same, full-vocabulary head: perf_analyzer c={row['concurrency']}"
            lines.append(_row(measure, _throughput(row)))
    lines.append(
        _row(f"eager PyTorch lower bound, [1, {eager['tokens']}]", f"{eager['p50_ms']:.1f} ms")
    )
    alone = report["alone"]
    for name, ms in alone["graphs"].items():
        rows = int(name.split("[")[1].split(",")[0])
        lines.append(
            _row(
                f"engine alone, {alone['run_as'][name.rsplit(' [', 1)[0]]}, {name}",
                f"{ms:.2f} ms ({rows * WINDOW / ms:.0f}k tokens/s)",
            )
        )
    lines.append(
        _row("fused vs plain log-softmax, max abs diff", f"{alone['fused_vs_torch_max_abs']:.2e}")
    )
    if "compiled_max_abs" in alone:
        lines.append(
            _row("compiled vs eager decoder, max abs diff", f"{alone['compiled_max_abs']:.2e}")
        )
    lines.append(_row("the decoder compiled", alone.get("compile", "not tried")))
    if "error" in ll:
        lines.append(_row("LLMLingua 0.2.2", f"not run: {ll['error'][-300:]!r}"))
    for mode, ms in ll.items():
        if mode != "error":
            versus = f"{ms:.1f} ms ({ms / seed['p50_ms']:.1f}x tersify's p50"
            if full:  # LLMLingua sums the whole vocabulary: the ratio to that head too
                versus += f"; {ms / full['p50_ms']:.1f}x with the full-vocabulary head"
            lines.append(
                _row(f"LLMLingua 0.2.2 `{mode}`, same device and model", versus + ")", ">= 15x")
            )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> None:
    from tersify.engines.torch_engine import SHORTLIST_FILE

    started = time.monotonic()
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
    request = json.loads((kit / "seed_request.json").read_text(encoding="utf-8"))
    ids = prompt_ids(scorer, request)
    _say("== the engine alone: full and shortlist head, eager and compiled decoder")
    report["alone"] = engine_alone(scorer, ids, cpu, 1 if cpu else 50)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # its engines are gone: the server, next, gets the memory
    _say(f"   {report['alone']}")
    compiled = {"on": True, "off": False}.get(args.compile, report["alone"]["compile_wins"])
    report["server_compile"] = f"{'on' if compiled else 'off'} ({args.compile})"
    _say(f"== tritonserver with the torch engine, compile {report['server_compile']}")
    server = Server(work, scorer, cpu, args.queue_delay_us, compile=compiled)
    try:
        report["ready_s"] = server.wait(600)
        report["engine"] = server.engine_line()
        _say(f"   ready in {report['ready_s']:.1f}s: {report['engine']}")
        _say(f"== seed end to end over gRPC, {repeat} runs")
        report["seed"] = seed_end_to_end(server.grpc, scorer, request, repeat, 1 if cpu else 5)
        window = report["seed"].pop("window_ids")
        _say(f"   {report['seed']}")
        _say(f"== perf_analyzer at concurrency {levels}")
        report["perf_analyzer"] = perf_analyzer(
            work, server.grpc, window, levels, 0 if cpu else args.interval_ms
        )
        for row in report["perf_analyzer"]:
            _say(f"   {row}")
    finally:
        server.stop()
    if (scorer / SHORTLIST_FILE).is_file() and not args.skip_full_head:
        _say("== the same server with the full-vocabulary head (engine_head=full)")
        full = Server(work, scorer, cpu, args.queue_delay_us, head="full", compile=compiled)
        try:
            full.wait(600)
            runs = max(2, repeat // 3)
            compare = seed_end_to_end(full.grpc, scorer, request, runs, 1 if cpu else 5)
            compare.pop("window_ids")
            compare["repeat"] = runs
            compare["engine"] = full.engine_line()
            _say(f"   {compare}")
            compare["perf_analyzer"] = perf_analyzer(
                work, full.grpc, window, [levels[0], levels[-1]], 0 if cpu else args.interval_ms
            )
            for row in compare["perf_analyzer"]:
                row["head"] = "full"
                _say(f"   {row}")
            report["full_head"] = compare
        finally:
            full.stop()
    if args.instances > 1 and not cpu:
        _say(f"== {args.instances} model instances: perf_analyzer at concurrency 16, 32")
        more = Server(work, scorer, cpu, args.queue_delay_us, args.instances, compile=compiled)
        try:
            more.wait(600)
            rows = perf_analyzer(work, more.grpc, window, [16, 32], args.interval_ms)
            for row in rows:
                row["instances"] = args.instances
                _say(f"   {row}")
            report["perf_analyzer"] += rows
        finally:
            more.stop()
    _say("== eager PyTorch lower bound")
    report["eager"] = eager_lower_bound(scorer, ids, cpu, 1 if cpu else 50)
    _say(f"   {report['eager']}")
    if not args.skip_llmlingua:
        _say("== LLMLingua 0.2.2")
        report["llmlingua"] = llmlingua(work, scorer, kit, cpu, 1 if cpu else 10)
        _say(f"   {report['llmlingua']}")
    report["wall_s"] = time.monotonic() - started
    text = table(report)
    (work / "results.json").write_text(json.dumps(report, indent=2))
    (work / "table.md").write_text(text + "\n")
    out = os.environ.get("OUT")
    if out:
        Path(out, "results.json").write_text(json.dumps(report, indent=2))
        Path(out, "table.md").write_text(text + "\n")
        Path(out, "tritonserver.log").write_text(server.log.read_text(errors="replace")[:100_000])
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
