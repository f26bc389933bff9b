"""The wheel outside the checkout: built, installed in a fresh venv in a temporary folder, used.

What a user does with ``pip install tersify[export,serve,triton]``: export a scorer, compress
a request, write a Triton repository around it, serve it over HTTP. Everything runs from the
temporary folder with the fresh venv's own ``tersify``; nothing of the checkout is on the
path, so a file that the package reads at run time but does not ship fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tersify.integrations.local_llm import free_port

from processes import wait_until_up

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = "export,serve,triton"


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _env(home: Path) -> dict[str, str]:
    """The user's environment, less anything that would point Python at the checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, "TERSIFY_HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(the venv's bin folder, the working folder, the environment) with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    env = _env(work / "home")
    # pip builds it as `python -m build` would (the checkout's build/ folder would shadow
    # that module here); build isolation off: setuptools and wheel are the test venv's.
    pip = [sys.executable, "-m", "pip"]
    _run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(work), str(ROOT)],
        work,
        env,
    )
    (wheel,) = work.glob("tersify-*.whl")
    _run([sys.executable, "-m", "venv", str(work / "venv")], work, env)
    bin_dir = work / "venv" / "bin"
    _run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[{EXTRAS}]"],
        work,
        env,
    )
    return bin_dir, work, env


def test_the_installed_package_is_the_wheel(installed: tuple[Path, Path, dict[str, str]]) -> None:
    bin_dir, work, env = installed
    where = _run(
        [str(bin_dir / "python"), "-c", "import tersify, tersify.service; print(tersify.__file__)"],
        work,
        env,
    )
    assert where.strip().startswith(str(work / "venv")) and str(ROOT) not in where


def test_export_compress_triton_repo_and_serve_from_the_wheel(
    installed: tuple[Path, Path, dict[str, str]], tiny_model_dir: Path
) -> None:
    bin_dir, work, env = installed
    tersify = str(bin_dir / "tersify")
    scorer = work / "scorer"
    _run(
        [tersify, "export", "--model", str(tiny_model_dir), "--out", str(scorer), "--no-ranker"],
        work,
        env,
    )
    request = work / "request.json"
    text = " ".join(f"Sentence number {i} says something about the weather." for i in range(60))
    request.write_text(json.dumps({"context": [text], "rate": 0.5}), encoding="utf-8")
    answer = json.loads(
        _run([tersify, "compress", str(request), "--scorer", str(scorer)], work, env)
    )
    data = answer["data"]
    assert 0 < data["compressed_tokens"] < data["origin_tokens"]  # counted with a shipped encoding

    written = _run(
        [tersify, "triton", "repo", "--out", str(work / "repository"), "--scorer", str(scorer)],
        work,
        env,
    ).split()
    names = {Path(p).name for p in written}
    assert {"config.pbtxt", "model.py"} <= names  # the backends and configs ship

    port = free_port()
    with (work / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [tersify, "serve", "--scorer", str(scorer), "--port", str(port)],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/healthz", process, "tersify serve from the wheel", within=120)
        post = urllib.request.Request(
            base + "/compress",
            data=request.read_bytes(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=120) as served:
            assert json.loads(served.read())["data"]["compressed_tokens"] > 0
        with urllib.request.urlopen(base + "/", timeout=10) as page:  # the playground ships
            assert b"<html" in page.read().lower()
        with urllib.request.urlopen(base + "/metrics", timeout=10) as metrics:
            assert b"process_resident_memory_bytes" in metrics.read()
    finally:
        process.terminate()
        process.wait(timeout=60)
