"""The ``tersify`` command: ``compress``, ``export``, ``triton``, ``serve``, ``ask``.

Bad input gets one line on stderr and exit code 2; a missing or failing scorer, or any
other runtime failure, one line and exit code 1. Never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from tersify.cli import ask, remote, serve, triton
from tersify.compressor import DEFAULT_PRICE_PER_1K, Compressor
from tersify.encoding import DEFAULT_ENCODING, SHIPPED_ENCODINGS
from tersify.errors import BadRequestError, TersifyError
from tersify.limits import Deadline
from tersify.options import MODES
from tersify.request import CompressRequest, answer, compress, request_schema

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except BadRequestError as exc:
        _fail(exc)
        return EXIT_BAD_INPUT
    except TersifyError as exc:
        _fail(exc)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        _fail(BadRequestError("the input nests too deeply to be read"))
        return EXIT_BAD_INPUT
    except Exception as exc:  # the last line of defence: one line, never a traceback
        logging.getLogger("tersify").debug("unexpected failure", exc_info=True)
        _fail(RuntimeError(f"unexpected {type(exc).__name__}: {exc}"))
        return EXIT_FAILURE


def _compress(args: argparse.Namespace) -> int:
    if args.schema:
        sys.stdout.write(json.dumps(request_schema(), indent=2) + "\n")
        return 0
    if args.server:  # the whole request to Triton's tersify_compress (tersify.cli.remote)
        sys.stdout.write(remote.run(args.server, _read_input(args.file)))
        return 0
    limits = serve.limits_from(args)
    raw = _read_input(args.file)
    limits.check_body(len(raw))
    request = CompressRequest.from_json(raw)
    if args.explain:
        request = dataclasses.replace(request, explain=True)
    if args.mode is not None:  # the flag overrides the request's own mode
        data = {**json.loads(raw), "mode": args.mode}
        request = dataclasses.replace(CompressRequest.from_mapping(data), explain=request.explain)
    compressor = Compressor(serve.scorer_from(args), encoding=args.encoding, limits=limits)
    result = compress(request, compressor, deadline=Deadline(args.timeout))
    text = json.dumps(answer(result, args.price_per_1k), ensure_ascii=False, indent=4)
    sys.stdout.write(text + "\n")
    return 0


def _export(args: argparse.Namespace) -> int:
    from tersify.export import export_scorer  # needs the [export] extra
    from tersify.export.ranker import export_ranker, is_ranker

    def say(message: str) -> None:
        if not args.quiet:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    if is_ranker(args.model):
        folder = export_ranker(args.model, args.out, skip_existing=args.skip_existing, progress=say)
        sys.stdout.write(f"{folder}\n")
        return 0
    if not args.no_ranker:
        # Question-aware compression (the default for a question over several documents)
        # ranks with the default ranker: export it beside the scorer, once.
        export_ranker(skip_existing=True, progress=say)
    folder = export_scorer(
        args.model,
        args.out,
        int8=args.int8,
        openvino=args.openvino,
        shortlist=False if args.no_shortlist else None,
        skip_existing=args.skip_existing,
        progress=say,
    )
    if args.triton_repo:
        from tersify.client import Bundle
        from tersify.triton.config import write_repository

        write_repository(Path(args.triton_repo), bundle=Bundle.open(folder))
        say(f"model files placed in {args.triton_repo}")
    sys.stdout.write(f"{folder}\n")
    return 0


def _read_input(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    path = Path(name)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BadRequestError(f"cannot read {name}: {exc.strerror or exc}") from exc


def _fail(exc: BaseException) -> None:
    message = " ".join(str(exc).split())  # one line, whatever the message holds
    sys.stderr.write(f"tersify: error: {message}\n")


class _OneLineErrors(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit 2, like every bad input."""

    def error(self, message: str) -> NoReturn:
        _fail(BadRequestError(f"{self.prog}: {message} (see --help)"))
        raise SystemExit(EXIT_BAD_INPUT)


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of dollars") from None
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1000 dollars")
    return value


def _parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _OneLineErrors(
        prog="tersify", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)

    compress = commands.add_parser(
        "compress",
        help="compress a JSON request",
        description="Compress a JSON request: {\"context\" | \"segments\" | \"json\": ..., "
        "\"question\", \"instruction\", \"rate\" | \"ratio\" | \"target_token\", \"mode\", "
        "LLMLingua's option names ...}. Every field and option, with its range and default, is in "
        "the JSON schema that --schema prints (also POST /compress in tersify serve's "
        "/openapi.json).",
    )
    compress.add_argument("file", nargs="?", default="-", help="request JSON file, or - for stdin")
    compress.add_argument(
        "--schema", action="store_true", help="print the request's JSON schema and exit"
    )
    compress.add_argument(
        "--explain", action="store_true", help="add what was kept and why to the answer"
    )
    compress.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="the preset, over the request's own 'mode' (default auto: question-aware for a "
        "question over two or more contexts, token otherwise); the answer's 'mode' says which ran",
    )
    compress.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="give up after this many seconds (default: no deadline)",
    )
    serve.limit_options(compress)
    _compression_options(compress)
    remote.add_option(compress)
    compress.set_defaults(run=_compress)

    export = commands.add_parser(
        "export",
        help="export a Hugging Face causal LM as an ONNX scorer (and the default ranker), or a "
        "sentence-embedding model as an ONNX ranker",
    )
    export.add_argument(
        "--model",
        required=True,
        help="gemma-3-270m, smollm2-135m, a .gguf file, a local HF folder, or a hub id; or a "
        "ranker: all-minilm-l6-v2 or a local sentence-transformers folder",
    )
    export.add_argument("--out", default=None, help="output folder (default: under TERSIFY_HOME)")
    export.add_argument("--int8", action="store_true", help="also write a dynamic int8 variant")
    export.add_argument(
        "--openvino",
        action="store_true",
        help="also write the openvino variant (needs openvino), checked against fp32",
    )
    export.add_argument(
        "--no-shortlist",
        action="store_true",
        help="do not write the shortlist variant (by default it is written where it pays and "
        "keeps fp32's selection)",
    )
    export.add_argument(
        "--skip-existing", action="store_true", help="do nothing when a complete scorer is there"
    )
    export.add_argument(
        "--no-ranker",
        action="store_true",
        help="export the scorer only (by default the default ranker, all-minilm-l6-v2, is "
        "exported beside it once: question-aware compression ranks with it)",
    )
    export.add_argument("--quiet", action="store_true", help="no progress on stderr")
    export.add_argument(
        "--triton-repo", default=None, help="also place the model files in this Triton repository"
    )
    export.set_defaults(run=_export)
    triton.add_commands(commands)
    serve.add_command(commands, _compression_options)
    ask.add_command(commands, _compression_options)
    return parser


def _compression_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scorer",
        default=None,
        help="exported scorer name or folder, or grpc://HOST:PORT (default: gemma-3-270m)",
    )
    parser.add_argument(
        "--variant",
        default=None,
        help="the exported variant to run: shortlist (the default where the export made it), "
        "fp32 (onnxruntime on the full vocabulary: the reference), or openvino "
        "(exported with --openvino; needs openvino)",
    )
    parser.add_argument(
        "--encoding",
        default=DEFAULT_ENCODING,
        choices=SHIPPED_ENCODINGS,
        help="the target LLM's tokenizer, in which budgets are counted",
    )
    parser.add_argument(
        "--price-per-1k",
        type=_price,
        default=DEFAULT_PRICE_PER_1K,
        help="USD per 1,000 target tokens, for the 'saving' field",
    )

