"""A local Triton: the real ``tritonserver`` from the ``nvidia-pytriton`` wheel.

``tersify triton start`` lays out a run folder (the python-form model repository with
the exported scorer's files linked in, and a backend folder with the stub for the
running Python), starts the server on 127.0.0.1, waits until the scorer is ready, and
records its pid; ``stop`` sends SIGTERM to that pid and removes the shared-memory
regions a killed backend leaves in /dev/shm.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from tersify.bundle import Bundle
from tersify.client.triton_config import MODEL_NAME, ScorerConfig, write_model
from tersify.errors import ScorerUnavailableError

STATE_FILE = "server.json"
SHM = Path("/dev/shm")  # noqa: S108 - where the python backend keeps its regions


@dataclass(frozen=True)
class ServerState:
    """What ``start`` records so that ``status`` and ``stop`` find the server."""

    pid: int
    http_port: int
    grpc_port: int
    metrics_port: int
    run_dir: str
    scorer: str
    shm_before: tuple[str, ...] = ()

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


def _link(target: Path, link: Path) -> None:
    link.unlink(missing_ok=True)
    link.symlink_to(target)


def prepare_run_dir(run_dir: Path, bundle: Bundle) -> Path:
    """Lay out the backend folder and model repository for one server; return the repository."""
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
    write_model(ScorerConfig(form="python"), repo / MODEL_NAME, bundle=bundle, symlink=True)
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
    return env


def start(
    bundle: Bundle,
    run_dir: Path,
    *,
    http_port: int | None = None,
    grpc_port: int | None = None,
    metrics_port: int | None = None,
    ready_timeout_s: float = 180.0,
) -> ServerState:
    """Start tritonserver for ``bundle`` and wait until the scorer is ready."""
    existing = read_state(run_dir)
    if existing is not None and _alive(existing.pid):
        raise ScorerUnavailableError(
            f"a tritonserver started from {run_dir} is running (pid {existing.pid}); "
            "stop it with `tersify triton stop`"
        )
    repo = prepare_run_dir(run_dir, bundle)
    ports = [p or free_port() for p in (http_port, grpc_port, metrics_port)]
    shm_before = tuple(sorted(p.name for p in SHM.glob("triton_python_*")))
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
        shm_before=shm_before,
    )
    (run_dir / STATE_FILE).write_text(json.dumps(asdict(state)), encoding="utf-8")
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (run_dir / "tritonserver.log").read_text(errors="replace")[-2000:]
            raise ScorerUnavailableError(f"tritonserver exited with {process.returncode}: {tail}")
        if is_ready(state):
            return state
        time.sleep(0.25)
    stop(run_dir)
    raise ScorerUnavailableError(f"tritonserver was not ready after {ready_timeout_s:.0f}s")


def is_ready(state: ServerState) -> bool:
    """Whether the server answers and the scorer model is ready."""
    url = f"{state.http_url}/v2/models/{MODEL_NAME}/ready"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def read_state(run_dir: Path) -> ServerState | None:
    """The recorded server of ``run_dir``, if any."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data["shm_before"] = tuple(data.get("shm_before", ()))
    return ServerState(**data)


def stop(run_dir: Path, *, grace_s: float = 30.0) -> bool:
    """SIGTERM the recorded server (SIGKILL after ``grace_s``); return whether one ran."""
    state = read_state(run_dir)
    if state is None:
        return False
    was_running = _alive(state.pid)
    if was_running:
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
            while _alive(state.pid):
                time.sleep(0.05)
    # A killed python backend leaves its shared-memory regions behind: remove the ones
    # that appeared while this server ran.
    for region in SHM.glob("triton_python_*"):
        if region.name not in state.shm_before:
            with contextlib.suppress(OSError):
                region.unlink()
    (run_dir / STATE_FILE).unlink(missing_ok=True)
    return was_running


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
