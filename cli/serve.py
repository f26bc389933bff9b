"""``tersify serve``: the HTTP compression service, bounded and guarded.

SIGTERM (or Ctrl-C) stops accepting connections, lets the requests in flight finish for
``--grace`` seconds, then stops what still runs at its next scorer call and exits.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from tersify.errors import BadRequestError, TersifyError
from tersify.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONTEXTS,
    DEFAULT_MAX_SCORER_TOKENS,
    Limits,
)

if TYPE_CHECKING:
    from tersify.service.gateway import Gateway
    from tersify.service.memory import MemoryPlan

TOKEN_ENV = "TERSIFY_TOKEN"  # noqa: S105 - the variable's name, not a secret
DEFAULT_GRACE_S = 30.0
TRITON = "triton"  # the variant name of a scorer served by Triton


def serve(args: argparse.Namespace) -> int:
    """Run the HTTP compression service until SIGTERM or Ctrl-C."""
    try:
        import uvicorn

        from tersify.service import create_app
        from tersify.service.config import LOOPBACK_HOSTS, ServeConfig
        from tersify.service.logs import configure
        from tersify.service.protocol import GuardedH11Protocol
    except ImportError as exc:
        raise TersifyError(
            f"serve needs the [serve] extra: pip install 'tersify[serve]' ({exc})"
        ) from exc
    from tersify.compressor import Compressor

    if not 1 <= args.port <= 65535:
        raise BadRequestError(f"--port {args.port} must be in 1-65535")
    check_flags(args)
    token = read_token(args.token_file)
    loopback = is_loopback(args.host)
    limits = limits_from(args)
    configure(args.log_format)
    listener = listen(args.host, args.port)  # before the scorer loads: fail fast
    if not loopback and token is None:
        sys.stderr.write(
            f"tersify: warning: serving on {args.host} without a token: anyone who can reach "
            f"this port can use it; set {TOKEN_ENV} or --token-file\n"
        )
    gateway = gateway_from(args)  # before the scorer loads: a bad flag fails at once
    scorer, model, variant = serving_scorer(args)
    remote = variant == TRITON
    compressor = Compressor(
        scorer, encoding=args.encoding, limits=limits, ranker=args.scorer if remote else None
    )
    config = ServeConfig(
        max_inflight=-1 if args.max_inflight is None else args.max_inflight,
        max_queue=-1 if args.max_queue is None else args.max_queue,
        timeout_s=args.timeout,
        read_timeout_s=args.read_timeout,
        limits=limits,
        token=token,
        allowed_hosts=LOOPBACK_HOSTS if loopback else None,
        protect_probes=args.protect_probes,
        memory=memory_plan(compressor, model, variant, limits),
    )
    sys.stderr.write(
        f"tersify: {model} ({variant}): "
        f"{config.plan.describe(config.max_inflight, config.max_queue)}\n"
    )
    # Compressions hold the GIL in Python loops; a short switch interval lets the event
    # loop (health checks, 429s, the next body) have it back sooner.
    sys.setswitchinterval(0.001)
    app = create_app(compressor, price_per_1k=args.price_per_1k, config=config, gateway=gateway)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=args.host,
            port=args.port,
            http=GuardedH11Protocol,
            ws="none",  # no WebSocket routes: an upgrade request is a plain HTTP request
            timeout_keep_alive=max(1, round(args.read_timeout)),
            timeout_graceful_shutdown=max(1, round(args.grace)),
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    # uvicorn re-raises the signal that stopped it once it has shut down; with Python's
    # default handler that would kill the process (exit 143) before the admission closes.
    # Handlers that do nothing take that re-raise: the shutdown below runs, and exits 0.
    previous = {sig: signal.signal(sig, _stopping) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[listener])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    # Past the grace period: work still running was told to stop; don't wait on it for long.
    if not app.state.guard.admission.close(wait_s=5.0):
        sys.stderr.write("tersify: compression threads did not stop in 5 s; exiting anyway\n")
        sys.stderr.flush()
        os._exit(1)
    return 0


def check_flags(args: argparse.Namespace) -> None:
    """Refuse, in one line, the serving flags that no default may stand in for."""
    if args.max_inflight is not None and args.max_inflight < 1:
        raise BadRequestError(f"--max-inflight {args.max_inflight} must be at least 1")
    if args.max_queue is not None and args.max_queue < 0:
        raise BadRequestError(f"--max-queue {args.max_queue} must be 0 or more")
    for flag, value in (("--timeout", args.timeout), ("--read-timeout", args.read_timeout)):
        if not (math.isfinite(value) and value > 0):
            raise BadRequestError(f"{flag} {value} must be a finite number of seconds above 0")
    if not (math.isfinite(args.grace) and args.grace >= 0):
        raise BadRequestError(f"--grace {args.grace} must be a finite number of seconds, 0 or more")


def _stopping(signum: int, frame: FrameType | None) -> None:
    """Take uvicorn's re-raised stop signal: the shutdown is under way already."""


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or one clear error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(2048)
        except OSError:
            sock.close()
            raise
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise TersifyError(
            f"cannot listen on {host}:{port}: {reason}; choose another --host or --port"
        ) from exc
    return sock


def read_token(token_file: str | None) -> str | None:
    """The bearer token from ``token_file`` or ``TERSIFY_TOKEN`` (the file wins)."""
    if token_file is not None:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadRequestError(f"cannot read the token file {token_file}: {exc}") from exc
        if not token:
            raise BadRequestError(f"the token file {token_file} is empty: put a secret in it")
        return token
    token = os.environ.get(TOKEN_ENV, "").strip()
    return token or None


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except (OSError, ValueError):
            return False


def gateway_from(args: argparse.Namespace) -> Gateway | None:
    """The gateway that ``--upstream`` asks for, with the key from ``--upstream-key-env``."""
    if args.upstream is None:
        return None
    from tersify.integrations.messages import MessagePolicy
    from tersify.service.gateway import Gateway, Upstream

    key = None
    if args.upstream_key_env is not None:
        key = os.environ.get(args.upstream_key_env, "").strip()
        if not key:
            raise BadRequestError(
                f"--upstream-key-env {args.upstream_key_env}: the variable is not set or empty"
            )
    upstream = Upstream(
        args.upstream,
        api_key=key,
        timeout_s=args.upstream_timeout,
        policy=MessagePolicy(rate=args.gateway_rate),
    )
    return Gateway(upstream)


def gateway_options(parser: argparse.ArgumentParser) -> None:
    """The gateway's flags: ``--upstream`` turns on OpenAI's routes (``/v1/chat/completions``)."""
    parser.add_argument(
        "--upstream",
        default=None,
        help="an OpenAI-compatible LLM (e.g. http://127.0.0.1:8000/v1): adds the compressing "
        "gateway in front of it (POST /v1/chat/completions and /v1/completions, GET /v1/models)",
    )
    parser.add_argument(
        "--upstream-key-env",
        default=None,
        help="environment variable holding the upstream's API key (sent by the server, "
        "never logged)",
    )
    parser.add_argument(
        "--upstream-timeout",
        type=float,
        default=300.0,
        help="seconds the upstream may take to answer (default 300)",
    )
    parser.add_argument(
        "--gateway-rate",
        type=float,
        default=0.5,
        help="fraction of the messages' text kept when a request has no tersify object "
        "(default 0.5)",
    )


def limit_options(parser: argparse.ArgumentParser) -> None:
    """The request limits as flags (the same names as :class:`tersify.limits.Limits`)."""
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body (default {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument(
        "--max-contexts",
        type=int,
        default=DEFAULT_MAX_CONTEXTS,
        help=f"most contexts in one request (default {DEFAULT_MAX_CONTEXTS})",
    )
    parser.add_argument(
        "--max-scorer-tokens",
        type=int,
        default=DEFAULT_MAX_SCORER_TOKENS,
        help=f"most scorer tokens in one request (default {DEFAULT_MAX_SCORER_TOKENS})",
    )


def scorer_from(args: argparse.Namespace) -> Any:
    """What ``--scorer`` and ``--variant`` name: the spec itself, or a scorer opened with it."""
    if getattr(args, "variant", None) is None:
        return args.scorer
    from tersify import Compressor

    return Compressor.open(args.scorer, variant=args.variant)


def serving_scorer(args: argparse.Namespace) -> tuple[Any, str, str]:
    """The scorer ``--scorer`` and ``--variant`` name, opened, with its model and variant.

    The variant is resolved here (``default_variant`` where none is asked for), so that the
    service knows which figures of :mod:`tersify.service.memory` apply; a Triton URL is
    the variant ``triton``.
    """
    from tersify.client import Bundle, default_variant, open_scorer, resolve_scorer_folder
    from tersify.settings import Settings

    settings = Settings.from_env()
    spec = args.scorer
    if isinstance(spec, str) and "://" in spec:
        scorer = open_scorer(spec, settings=settings)
        return scorer, scorer.name, TRITON
    bundle = Bundle.open(resolve_scorer_folder(spec, settings))
    variant = getattr(args, "variant", None) or default_variant(bundle)
    return open_scorer(spec, variant=variant, settings=settings), bundle.manifest.name, variant


def memory_plan(compressor: Any, model: str, variant: str, limits: Limits) -> MemoryPlan:
    """The memory plan for the scorer loaded: measured figures, or measured now."""
    from tersify.service.memory import Machine, MemoryPlan, measure_at_start, measured

    figures = measured(model, variant)
    if figures is None:
        sys.stderr.write(
            f"tersify: no measured memory figures for {model} ({variant}): measuring one "
            "compression now\n"
        )
        figures = measure_at_start(compressor)
    return MemoryPlan(figures, Machine.this(), max_body_bytes=limits.max_body_bytes)


def limits_from(args: argparse.Namespace) -> Limits:
    """The :class:`Limits` the flags of :func:`limit_options` ask for."""
    return Limits(
        max_body_bytes=args.max_body_bytes,
        max_contexts=args.max_contexts,
        max_scorer_tokens=args.max_scorer_tokens,
    )


def add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    compression_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``serve`` to the top-level parser."""
    service = commands.add_parser(
        "serve",
        help="HTTP compression service",
        description="HTTP compression service: POST /compress, GET /healthz /readyz /metrics; "
        "with --upstream, the compressing gateway (POST /v1/chat/completions, /v1/completions; "
        "GET /v1/models).",
    )
    compression_options(service)
    service.add_argument("--host", default="127.0.0.1", help="listen address (default: loopback)")
    service.add_argument("--port", type=int, default=8080)
    service.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        help="compressions run at once (default: one per core, fewer where half the memory "
        "would not hold them, by the loaded scorer's measured figures)",
    )
    service.add_argument(
        "--max-queue",
        type=int,
        default=None,
        help="requests that may wait for a slot; more get 429 (default: 4 per slot)",
    )
    service.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds a request may take, queue included; 504 after (default 60)",
    )
    service.add_argument(
        "--read-timeout",
        type=float,
        default=10.0,
        help="seconds a client has to send its headers, and its whole body (default 10)",
    )
    service.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help="seconds in-flight requests get to finish after SIGTERM "
        f"(default {DEFAULT_GRACE_S:g})",
    )
    service.add_argument(
        "--token-file",
        default=None,
        help=f"file holding the bearer token clients must send (or set {TOKEN_ENV})",
    )
    service.add_argument(
        "--protect-probes",
        action="store_true",
        help="require the token on /readyz and /metrics too (/healthz stays open)",
    )
    service.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="access log as text lines or JSON lines (default text)",
    )
    limit_options(service)
    gateway_options(service)
    service.set_defaults(run=serve)
