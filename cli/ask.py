"""``tersify ask``: compress a request, then ask an LLM with the full and the compressed prompt.

The output follows the original compression service's layout (the compression's answer,
then each LLM answer with its response time and ``usage.prompt_tokens``); ``--json`` prints
one JSON object instead. Each LLM call (leg) is reported on its own: one that failed (a full
prompt past the LLM's context, say) shows its error where its answer would be, the other
still answers, and the exit code is 1 when any leg failed (one line on stderr per failure).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tersify.errors import BadRequestError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
EXIT_LEG_FAILED = 1  # a runtime failure, as the CLI's others


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    compression_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``ask`` to the top-level parser."""
    parser = commands.add_parser(
        "ask",
        help="ask an LLM with the full and the compressed prompt",
        description="Compress a JSON request, then ask an OpenAI-compatible LLM "
        "the same question with the full and with the compressed prompt.",
    )
    parser.add_argument(
        "request", help="request JSON file (see tersify compress --schema), or - for stdin"
    )
    parser.add_argument(
        "--llm", required=True, help="the LLM's OpenAI-compatible base URL, e.g. http://HOST/v1"
    )
    parser.add_argument("--model", required=True, help="the model name the LLM serves")
    parser.add_argument(
        "--api-key-env",
        default=None,
        help=f"environment variable holding the LLM's API key (default {DEFAULT_KEY_ENV}, "
        "optional)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--question-aware",
        action="store_true",
        help="compress as LongLLMLingua: rank contexts and score tokens against the question",
    )
    parser.add_argument(
        "--temperature", type=float, default=0.0, help="default 0: same prompt, same answer"
    )
    parser.add_argument("--max-tokens", type=int, default=None, help="cap on each answer")
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds per LLM call (default 300)"
    )
    compression_options(parser)
    parser.set_defaults(run=run)


def api_key(variable: str | None) -> str | None:
    """The key from ``variable``; an explicitly named variable must be set."""
    value = os.environ.get(variable or DEFAULT_KEY_ENV, "").strip()
    if variable is not None and not value:
        raise BadRequestError(f"--api-key-env {variable}: the variable is not set or empty")
    return value or None


def run(args: argparse.Namespace) -> int:
    """Run ``tersify ask``."""
    from tersify.cli import _read_input, serve  # the command line's one way to read a request
    from tersify.compressor import Compressor
    from tersify.integrations.ask import ask
    from tersify.request import CompressRequest

    request = CompressRequest.from_json(_read_input(args.request))
    key = api_key(args.api_key_env)
    if args.max_tokens is not None and args.max_tokens < 1:
        raise BadRequestError(f"--max-tokens {args.max_tokens} must be at least 1")
    compressor = Compressor(serve.scorer_from(args), encoding=args.encoding)
    result = ask(
        request,
        llm=args.llm,
        model=args.model,
        api_key=key,
        compressor=compressor,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        timeout=args.timeout,
        question_aware=args.question_aware,
    )
    summary = result.to_json(args.price_per_1k)
    if args.json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
    else:
        sys.stdout.write(report_layout(summary, compressor.scorer.name))
    for leg in result.failed:
        sys.stderr.write(f"tersify: error: {leg}: {summary[leg]['error']['message']}\n")
    return EXIT_LEG_FAILED if result.failed else 0


def report_layout(summary: dict[str, Any], scorer: str) -> str:
    """The text report (compression answer, then each LLM call) of an ``AskResult`` summary."""
    compression = dict(summary["compression"])
    seconds = compression.pop("seconds")
    fence = "```"
    lines = [
        "# Compress Prompt",
        f"compress model: {scorer}",
        f"response time: {seconds * 1000:.0f}ms",
        "",
        "compress response:",
        fence,
        json.dumps({"data": compression}, ensure_ascii=False, indent=4),
        fence,
        "",
        "# Ask for llm",
        f"question: {json.dumps(summary['question'], ensure_ascii=False)}",
        f"temperature:{summary['temperature']:g}",
        "",
        f"## {summary['model']}",
    ]
    for name in ("full_prompt", "compressed_prompt"):
        lines += ["", f"### {name}", *_leg_lines(summary[name])]
    full, short = summary["full_prompt"], summary["compressed_prompt"]
    lines += [
        "",
        f"prompt tokens {_shown(full, 'prompt_tokens')} -> {_shown(short, 'prompt_tokens')}, "
        f"response time {_shown(full, 'response_seconds')} -> "
        f"{_shown(short, 'response_seconds')} s, compression {seconds:.2f} s",
        "",
    ]
    return "\n".join(lines)


def _leg_lines(reply: dict[str, Any]) -> list[str]:
    """One leg in the seed's layout; a failed one shows its error instead of an answer."""
    if reply.get("error"):
        return [f"error: {reply['error']['message']}"]
    fence = "```"
    return [
        f"response_time: {reply['response_seconds']:.2f}s",
        f"prompt_tokens: {reply['prompt_tokens']}",
        fence,
        json.dumps(reply["response"], ensure_ascii=False, indent=4),
        fence,
    ]


def _shown(reply: dict[str, Any], name: str) -> str:
    if reply.get("error"):
        return "(failed)"
    value = reply[name]
    return f"{value:.2f}" if isinstance(value, float) else str(value)
