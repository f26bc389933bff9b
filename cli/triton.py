"""``tersify triton start|stop|status|repo``: a local Triton serving the scorer and ranker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from tersify.settings import Settings

if TYPE_CHECKING:
    from tersify.bundle import Bundle

_NO_RANKER = (
    "tersify: note: no ranker exported ({folder}): tersify_ranker is left out, and "
    "question-aware requests to tersify_compress are refused; export it with "
    "`tersify export --model all-minilm-l6-v2`\n"
)


def _ranker(args: argparse.Namespace) -> Bundle | None:
    """The ``--ranker`` export (default: the default ranker, if exported; else a note)."""
    from tersify.client import Bundle
    from tersify.client.ranker import resolve_ranker_folder

    settings = Settings.from_env()
    folder = resolve_ranker_folder(args.ranker, settings)
    if args.ranker is None and not (folder / "manifest.json").is_file():
        sys.stderr.write(_NO_RANKER.format(folder=folder))
        return None
    return Bundle.open(folder)


def _run_dir(args: argparse.Namespace) -> Path:
    if args.run_dir:
        return Path(args.run_dir)
    return Settings.from_env().home / "triton" / "run"


def triton_start(args: argparse.Namespace) -> int:
    """Start a local tritonserver serving an exported scorer; print its state."""
    from tersify.client import Bundle, resolve_scorer_folder
    from tersify.triton import server

    bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    ranker = _ranker(args)
    run_dir = _run_dir(args)
    run_dir.mkdir(parents=True, exist_ok=True)
    state = server.start(
        bundle,
        run_dir,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        ranker=ranker,
    )
    sys.stdout.write(
        json.dumps(
            {
                "pid": state.pid,
                "grpc": state.grpc_url,
                "http": state.http_url,
                "metrics": f"http://127.0.0.1:{state.metrics_port}/metrics",
                "scorer": state.scorer,
                "ranker": state.ranker or None,
            }
        )
        + "\n"
    )
    return 0


def triton_stop(args: argparse.Namespace) -> int:
    """Stop the recorded tritonserver (SIGTERM by pid) and clean /dev/shm."""
    from tersify.triton import server

    stopped = server.stop(_run_dir(args))
    sys.stdout.write("stopped\n" if stopped else "not running\n")
    return 0


def triton_status(args: argparse.Namespace) -> int:
    """Print whether the recorded tritonserver is ready; exit 1 when it is not."""
    from tersify.triton import server

    state = server.read_state(_run_dir(args))
    ready = state is not None and server.is_ready(state)
    payload: dict[str, object] = {"ready": ready}
    if state is not None:
        payload.update({"pid": state.pid, "grpc": state.grpc_url, "http": state.http_url})
        payload["ranker"] = state.ranker or None
    sys.stdout.write(json.dumps(payload) + "\n")
    return 0 if ready else 1


def triton_repo(args: argparse.Namespace) -> int:
    """Write the model repository's configuration (both forms)."""
    from tersify.client import Bundle, resolve_scorer_folder
    from tersify.triton.config import write_repository

    bundle = ranker = None
    if args.scorer:
        bundle = Bundle.open(resolve_scorer_folder(args.scorer, Settings.from_env()))
    if args.scorer or args.ranker:  # a repository to serve: the models' files placed
        ranker = _ranker(args)
    written = write_repository(
        Path(args.out),
        tensorrt_fp16=not args.no_tensorrt,
        bundle=bundle,
        ranker=ranker,
        graph=args.graph,
        device=args.device,
    )
    for path in written:
        sys.stdout.write(f"{path}\n")
    return 0


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``triton`` to the top-level parser."""
    triton = commands.add_parser("triton", help="run a local Triton serving the scorer")
    actions = triton.add_subparsers(dest="action", required=True)
    for name, run, text in (
        ("start", triton_start, "start tritonserver on 127.0.0.1 and wait until ready"),
        ("stop", triton_stop, "stop it (SIGTERM by pid) and clean /dev/shm"),
        ("status", triton_status, "say whether it is ready"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--run-dir", default=None, help="state folder (default: TERSIFY_HOME/triton/run)"
        )
        action.set_defaults(run=run)
        if name == "start":
            action.add_argument("--scorer", default=None, help="exported scorer: name or folder")
            action.add_argument(
                "--ranker",
                default=None,
                help="exported ranker: name or folder (default: the default one, if exported)",
            )
            for port in ("http", "grpc", "metrics"):
                action.add_argument(
                    f"--{port}-port", type=int, default=None, help="default: a free port"
                )
    repo = actions.add_parser("repo", help="write the model repository configuration")
    repo.add_argument("--out", default="model_repository")
    repo.add_argument(
        "--tensorrt-fp16",
        action="store_true",
        help="TensorRT EP with FP16 in the production form (the default; kept for scripts)",
    )
    repo.add_argument(
        "--no-tensorrt",
        action="store_true",
        help="production form on the CUDA execution provider only, without TensorRT",
    )
    repo.add_argument(
        "--graph",
        choices=("shortlist", "fp32"),
        default="shortlist",
        help="the graph the production (onnxruntime) form serves: the shortlist head, as the "
        "embedded default scores (the default), or fp32's full-vocabulary head",
    )
    repo.add_argument(
        "--device",
        choices=("gpu", "cpu", "auto"),
        default="gpu",
        help="where the production form's instances run: gpu (TensorRT FP16; the default), "
        "cpu (onnxruntime's CPU provider), or auto (the GPU where Triton finds one)",
    )
    repo.add_argument(
        "--scorer",
        default=None,
        help="also place this exported scorer's model files (and the ranker's)",
    )
    repo.add_argument(
        "--ranker",
        default=None,
        help="the exported ranker to place: name or folder (default: the default one)",
    )
    repo.set_defaults(run=triton_repo)
