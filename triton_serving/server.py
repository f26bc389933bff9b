"""A local Triton: the real ``tritonserver`` from the ``nvidia-pytriton`` wheel.

``tersify triton start`` lays out a run folder (the python-form model repository with
the exported scorer's files linked in, and the exported ranker's where there is one; a
backend folder with the stub for the running Python), starts the server on 127.0.0.1,
waits until its models are ready, and
records its pid, start time and executable; ``stop`` signals that pid only while it is
still the same process (its ``/proc`` start time and command line checked), with bounded
waits, and removes only the shared-memory regions that server's processes had mapped.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Literal

from tersify.bundle import Bundle
from tersify.client.triton_models import MODEL_NAME, RANKER_MODEL
from tersify.errors import ScorerUnavailableError
from tersify.settings import Settings
from tersify.triton.compress_config import COMPRESS_MODEL, CompressConfig, write_compress_model
from tersify.triton.config import RankerConfig, ScorerConfig, write_model

STATE_FILE = "server.json"
SHM = Path("/dev/shm")  # noqa: S108 - where the python backend keeps its regions
_SHM_PREFIX = f"{SHM}/"
# numpy < 2 for the python backend stub: pip install --target VENV/triton-stub 'numpy<2'
STUB_SITE_PACKAGES = Path(sys.prefix) / "triton-stub"


@dataclass(frozen=True)
class ServerState:
    """What ``start`` records so that ``status`` and ``stop`` find the server."""

    pid: int
    http_port: int
    grpc_port: int
    metrics_port: int
    run_dir: str
    scorer: str
    # Who the pid was when the server started: /proc/PID/stat start time (clock ticks after
    # boot) and argv[0], so that a pid reused by another process is never signalled.
    start_ticks: int = 0
    binary: str = ""
    # The python backend's /dev/shm regions the server had mapped when it was ready.
    shm_regions: tuple[str, ...] = ()
    # The exported ranker that tersify_ranker serves ("": none, the model is left out).
    ranker: str = ""

    @property
    def grpc_url(self) -> str:
        """The scorer URL for ``Compressor(scorer=...)`` and ``--scorer``."""
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Triton's HTTP endpoint."""
        return f"http://127.0.0.1:{self.http_port}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wheel() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ScorerUnavailableError(
            "the local tritonserver comes from nvidia-pytriton: "
            "pip install --no-deps nvidia-pytriton==0.7.0"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def default_ranker(settings: Settings | None = None) -> Bundle | None:
    """The default ranker's export (``Settings.default_ranker``), or ``None`` if not exported."""
    from tersify.client.ranker import resolve_ranker_folder

    folder = resolve_ranker_folder(None, settings or Settings.from_env())
    if not (folder / "manifest.json").is_file():
        return None
    return Bundle.open(folder)  # an export that is there but damaged: one clear error


def _link(target: Path, link: Path) -> None:
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def prepare_run_dir(
    run_dir: Path,
    bundle: Bundle,
    *,
    compress: CompressConfig | None = None,
    scorer: ScorerConfig | None = None,
    ranker: Bundle | None = None,
) -> Path:
    """Lay out the backend folder and model repository for one server; return the repository.

    ``compress`` configures ``tersify_compress`` (its form and scorer are this server's);
    ``scorer`` the scorer model (its form is the python one: the engine, its options);
    ``ranker`` the exported ranker that ``tersify_ranker`` serves (``None``: no ranker
    model, and ``tersify_compress`` refuses question-aware requests).
    """
    wheel = _wheel()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = wheel / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise ScorerUnavailableError(
            f"nvidia-pytriton has no python backend stub for Python {version}"
        )
    backend = run_dir / "backends" / "python"
    backend.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        _link(wheel / "backends" / "python" / name, backend / name)
    _link(stub, backend / "triton_python_backend_stub")

    repo = run_dir / "repository"
    config = replace(scorer or ScorerConfig(form="python"), form="python", name=MODEL_NAME)
    write_model(config, repo / MODEL_NAME, bundle=bundle, symlink=True)
    if ranker is not None:
        write_model(RankerConfig(form="python"), repo / RANKER_MODEL, bundle=ranker, symlink=True)
    elif (repo / RANKER_MODEL).is_dir():  # an earlier start's: Triton would fail to load it
        shutil.rmtree(repo / RANKER_MODEL)
    compress = compress or CompressConfig(form="python")
    compress = replace(
        compress,
        form="python",
        scorer=str(bundle.folder),
        ranker=str(ranker.folder) if ranker is not None else "",
        ranker_model=RANKER_MODEL if ranker is not None else "",
    )
    write_compress_model(compress, repo / COMPRESS_MODEL)
    return repo


def _environment() -> dict[str, str]:
    wheel_libs = _wheel().parent.parent / "nvidia_pytriton.libs"
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env = dict(os.environ)
    # The backend stub must load this Python's libpython, not another one on the system.
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (libdir, str(wheel_libs), env.get("LD_LIBRARY_PATH", "")) if p
    )
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env["TERSIFY_SITE_PACKAGES"] = os.pathsep.join(sorted(paths))
    # This stub (pybind11 2.10) converts BYTES tensors right only with numpy < 2:
    # tersify_compress puts this folder first on its path (see tersify.triton.backends.compress).
    if not env.get("TERSIFY_STUB_SITE_PACKAGES") and STUB_SITE_PACKAGES.is_dir():
        env["TERSIFY_STUB_SITE_PACKAGES"] = str(STUB_SITE_PACKAGES)
    return env


def start(
    bundle: Bundle,
    run_dir: Path,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    ready_timeout_s: float = 180.0,
    compress: CompressConfig | None = None,
    scorer: ScorerConfig | None = None,
    ranker: Bundle | Literal["default"] | None = "default",
) -> ServerState:
    """Start tritonserver for ``bundle`` and wait until its models are ready.

    ``compress`` configures ``tersify_compress`` (default: ``CompressConfig``'s defaults);
    ``scorer`` the scorer model (default: the python form's defaults, engine ``auto``);
    ``ranker`` the exported ranker ``tersify_ranker`` serves: ``"default"`` is the default
    ranker where it is exported (``ServerState.ranker`` is empty where it is not), ``None``
    leaves the ranker model out.
    """
    existing = read_state(run_dir)
    if existing is not None and _alive(existing.pid):
        raise ScorerUnavailableError(
            f"a tritonserver started from {run_dir} is running (pid {existing.pid}); "
            "stop it with `tersify triton stop`"
        )
    run_dir = run_dir.resolve()  # the command line names it absolutely: `stop` checks it
    ranker_bundle = default_ranker() if ranker == "default" else ranker
    repo = prepare_run_dir(run_dir, bundle, compress=compress, scorer=scorer, ranker=ranker_bundle)
    ports = [p or free_port() for p in (http_port, grpc_port, metrics_port)]
    command = [
        str(_wheel() / "bin" / "tritonserver"),
        f"--model-repository={repo}",
        f"--backend-directory={run_dir / 'backends'}",
        "--http-address=127.0.0.1",
        f"--http-port={ports[0]}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={ports[1]}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={ports[2]}",
        "--allow-metrics=true",
        "--allow-gpu-metrics=false",
        "--log-verbose=0",
    ]
    log = (run_dir / "tritonserver.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed binary with our own arguments
        command, stdout=log, stderr=subprocess.STDOUT, env=_environment(), start_new_session=True
    )
    state = ServerState(
        pid=process.pid,
        http_port=ports[0],
        grpc_port=ports[1],
        metrics_port=ports[2],
        run_dir=str(run_dir),
        scorer=str(bundle.folder),
        start_ticks=_start_ticks(process.pid) or 0,
        binary=command[0],
        ranker=str(ranker_bundle.folder) if ranker_bundle is not None else "",
    )
    _write_state(run_dir, state)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (run_dir / "tritonserver.log").read_text(errors="replace")[-2000:]
            raise ScorerUnavailableError(f"tritonserver exited with {process.returncode}: {tail}")
        if is_ready(state):
            state = replace(state, shm_regions=tuple(sorted(_mapped_regions(state.pid))))
            _write_state(run_dir, state)
            return state
        time.sleep(0.25)
    stop(run_dir)
    raise ScorerUnavailableError(f"tritonserver was not ready after {ready_timeout_s:.0f}s")


def is_ready(state: ServerState) -> bool:
    """Whether the server answers and its models (scorer, ranker, compression) are ready."""
    models = (MODEL_NAME, COMPRESS_MODEL, *((RANKER_MODEL,) if state.ranker else ()))
    for model in models:
        url = f"{state.http_url}/v2/models/{model}/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status != 200:
                    return False
        except (urllib.error.URLError, OSError):
            return False
    return True


def _write_state(run_dir: Path, state: ServerState) -> None:
    (run_dir / STATE_FILE).write_text(json.dumps(asdict(state)), encoding="utf-8")


def read_state(run_dir: Path) -> ServerState | None:
    """The recorded server of ``run_dir``, if any; a damaged record is one clear error."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"a JSON {type(data).__name__}, not an object")
        known = {f.name: f.type for f in fields(ServerState)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise TypeError(f"unknown field {unknown[0]!r}")
        data["shm_regions"] = tuple(data.get("shm_regions", ()))
        state = ServerState(**data)
        _check_state(state)
    except (OSError, ValueError, TypeError) as exc:
        raise ScorerUnavailableError(
            f"{path} is damaged ({exc}); if a tritonserver still runs, stop it by hand, "
            "then remove the file"
        ) from None
    return state


def _check_state(state: ServerState) -> None:
    for name in ("pid", "http_port", "grpc_port", "metrics_port", "start_ticks"):
        value = getattr(state, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError(f"{name}={value!r} is not a non-negative integer")
    if not 2 <= state.pid <= _PID_MAX:
        raise TypeError(f"pid={state.pid} cannot be a server's")
    for name in ("http_port", "grpc_port", "metrics_port"):
        if getattr(state, name) > 65535:
            raise TypeError(f"{name}={getattr(state, name)} is not a TCP port")
    if state.start_ticks >= 2**63:
        raise TypeError(f"start_ticks={state.start_ticks} is out of range")
    for name in ("run_dir", "scorer", "binary", "ranker"):
        if not isinstance(getattr(state, name), str):
            raise TypeError(f"{name} is not a string")
    if not all(isinstance(r, str) and _REGION.fullmatch(r) for r in state.shm_regions):
        raise TypeError("shm_regions holds a name that is not a python backend region")


def stop(run_dir: Path, *, grace_s: float = 30.0, kill_wait_s: float = 10.0) -> bool:
    """Stop the recorded server; return whether it was running.

    Only a process that is still the recorded server is signalled: a tritonserver (by its
    executable or argv[0]) serving this ``run_dir``'s model repository, with the recorded
    start time and argv[0]. Then SIGTERM, SIGKILL after ``grace_s``, then at most
    ``kill_wait_s`` more. A pid now held by another process is left alone and the stale
    record removed.
    """
    state = read_state(run_dir)
    if state is None:
        return False
    ours = _is_our_server(state, run_dir)
    regions = set(state.shm_regions)
    if ours:
        regions |= _mapped_regions(state.pid)
        os.kill(state.pid, signal.SIGTERM)
        if not _wait_gone(state, grace_s):
            os.kill(state.pid, signal.SIGKILL)
            if not _wait_gone(state, kill_wait_s):
                raise ScorerUnavailableError(
                    f"tritonserver (pid {state.pid}) did not exit {kill_wait_s:g} s after "
                    "SIGKILL; look at it with `ps` before starting another"
                )
    _remove_regions(regions)
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    return ours


_REGION = re.compile(r"triton_python_[A-Za-z0-9_.-]+")


_PID_MAX = 2**22  # Linux's PID_MAX_LIMIT
_BINARY = "tritonserver"


def _is_our_server(state: ServerState, run_dir: Path) -> bool:
    """Whether ``state.pid`` is alive and still the tritonserver ``start`` ran for ``run_dir``.

    The state file can say anything (its pid, start time and argv[0] are readable from /proc
    for any process), so the process itself must be a tritonserver whose command line
    serves ``run_dir``'s model repository.
    """
    if not state.start_ticks or not state.binary or not _alive(state.pid):
        return False
    if _start_ticks(state.pid) != state.start_ticks:
        return False
    try:
        argv = Path(f"/proc/{state.pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{state.pid}/cwd"))
    except OSError:
        return False
    args = [arg.decode(errors="replace") for arg in argv]
    if args[0] != state.binary:
        return False
    try:
        exe = Path(os.readlink(f"/proc/{state.pid}/exe")).name
    except OSError:
        exe = ""
    if _BINARY not in (exe, Path(args[0]).name):
        return False
    repo = os.path.realpath(run_dir / "repository")
    prefix = "--model-repository="
    return any(
        arg.startswith(prefix) and os.path.realpath(cwd / arg[len(prefix) :]) == repo
        for arg in args
    )


def _start_ticks(pid: int, *, zombies: bool = False) -> int | None:
    """The process's start time in clock ticks after boot (``/proc/PID/stat``, field 22).

    ``None`` when there is no such process, or it is a zombie (unless ``zombies``).
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    after = stat[stat.rfind(")") + 2 :].split()
    if len(after) < 20 or (after[0] == "Z" and not zombies):
        return None
    return int(after[19])


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the python backend stubs)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def _mapped_regions(pid: int) -> set[str]:
    """The /dev/shm python backend regions that ``pid`` or its children have mapped."""
    regions: set[str] = set()
    for member in _process_tree(pid):
        regions |= _mapped_regions_of(member)
    return regions


def _remove_regions(regions: set[str]) -> None:
    """Remove ``regions`` unless another live process still maps them."""
    if not regions:
        return
    in_use: set[str] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            in_use |= _mapped_regions_of(int(entry.name)) & regions
    for name in sorted(regions - in_use):
        with contextlib.suppress(OSError):
            (SHM / name).unlink()


def _mapped_regions_of(pid: int) -> set[str]:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    names = (
        line.rsplit(_SHM_PREFIX, 1)[-1].removesuffix(" (deleted)")
        for line in maps.splitlines()
        if _SHM_PREFIX in line
    )
    return {name for name in names if _REGION.fullmatch(name)}


def _wait_gone(state: ServerState, seconds: float) -> bool:
    """Wait up to ``seconds`` for the server to exit and be reaped.

    A zombie (dead, not yet reaped by its parent) counts as gone when the time is up.
    """
    deadline = time.monotonic() + seconds
    while True:
        if not _alive(state.pid) or _start_ticks(state.pid, zombies=True) != state.start_ticks:
            return True
        if time.monotonic() > deadline:
            return _start_ticks(state.pid) is None  # a zombie: nothing left to signal
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
