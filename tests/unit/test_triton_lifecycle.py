"""`tersify triton stop` signals only the tritonserver it started and cleans only its regions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from tersify.errors import ScorerUnavailableError
from tersify.triton import server

SHM = Path("/dev/shm")


def _state(run_dir: Path, **changes: object) -> server.ServerState:
    state = server.ServerState(
        pid=1,
        http_port=1,
        grpc_port=2,
        metrics_port=3,
        run_dir=str(run_dir),
        scorer="s",
        start_ticks=1,
        binary="/nowhere/tritonserver",
    )
    state = replace(state, **changes)  # type: ignore[arg-type]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / server.STATE_FILE).write_text(json.dumps(asdict(state)), encoding="utf-8")
    return state


@pytest.fixture()
def bystander():  # type: ignore[no-untyped-def]
    """An unrelated process: it must survive every `stop`."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield process
    process.kill()
    process.wait()


def test_a_foreign_pid_in_the_state_file_is_not_signalled(tmp_path: Path, bystander) -> None:  # type: ignore[no-untyped-def]
    # Same pid and even the same start time, but another executable: not ours.
    ticks = server._start_ticks(bystander.pid)
    _state(tmp_path, pid=bystander.pid, start_ticks=ticks)
    assert server.stop(tmp_path, grace_s=0.5) is False
    assert bystander.poll() is None
    assert not (tmp_path / server.STATE_FILE).exists()  # the stale record is gone


def test_a_reused_pid_with_another_start_time_is_not_signalled(
    tmp_path: Path,
    bystander,  # type: ignore[no-untyped-def]
) -> None:
    argv0 = Path(f"/proc/{bystander.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    ticks = server._start_ticks(bystander.pid)
    assert ticks is not None
    _state(tmp_path, pid=bystander.pid, start_ticks=ticks - 1, binary=argv0)
    assert server.stop(tmp_path, grace_s=0.5) is False
    assert bystander.poll() is None


def _fake_server(run_dir: Path, repository: Path | None = None) -> subprocess.Popen[bytes]:
    """A process that ignores SIGTERM, run as ``tritonserver`` serving ``repository``."""
    link = run_dir / "bin" / "tritonserver"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(sys.executable)
    process = subprocess.Popen(
        [
            str(link),
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(120)",
            f"--model-repository={repository or run_dir / 'repository'}",
        ],
        stdout=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stdout.readline() == b"ready\n"
    return process


def _record(run_dir: Path, process: subprocess.Popen[bytes]) -> None:
    argv0 = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    _state(run_dir, pid=process.pid, start_ticks=server._start_ticks(process.pid), binary=argv0)


def test_the_recorded_process_itself_is_stopped_within_bounds(tmp_path: Path) -> None:
    # A "tritonserver" that ignores SIGTERM: SIGKILL follows after the grace period.
    stubborn = _fake_server(tmp_path)
    _record(tmp_path, stubborn)
    started = time.monotonic()
    assert server.stop(tmp_path, grace_s=0.5, kill_wait_s=5) is True
    assert time.monotonic() - started < 5
    assert not Path(f"/proc/{stubborn.pid}").exists()  # killed and reaped


def test_a_process_described_exactly_but_not_a_tritonserver_is_not_signalled(
    tmp_path: Path,
) -> None:
    # The probe: pid, start time and argv[0] of any process can be read from /proc and
    # written into server.json; `stop` killed `sleep 300`.
    sleeper = subprocess.Popen(["sleep", "300"])
    while not Path(f"/proc/{sleeper.pid}/cmdline").read_bytes().startswith(b"sleep"):
        time.sleep(0.01)  # until it has exec'd
    try:
        _record(tmp_path, sleeper)
        assert server.stop(tmp_path, grace_s=0.5) is False
        time.sleep(0.2)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_tritonserver_of_another_run_dir_is_not_signalled(tmp_path: Path) -> None:
    other = _fake_server(tmp_path / "other", tmp_path / "other" / "repository")
    try:
        _record(tmp_path / "mine", other)
        assert server.stop(tmp_path / "mine", grace_s=0.5) is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


@pytest.mark.parametrize(
    "changes",
    [
        {"pid": 99999999999999999999},
        {"pid": 2**22 + 1},
        {"grpc_port": 70000},
        {"start_ticks": 2**64},
    ],
)
def test_out_of_range_numbers_in_the_state_file_are_damage(tmp_path: Path, changes: dict) -> None:
    _state(tmp_path, **changes)
    with pytest.raises(ScorerUnavailableError, match="damaged"):
        server.stop(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "tersify.cli", "triton", "stop", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "damaged" in done.stderr


@pytest.mark.parametrize(
    "text",
    ["{", "[]", "null", '{"pid": "12"}', '{"pid": 12, "colour": 1}', '"x"', "\udcff"],
)
def test_a_damaged_state_file_is_one_clear_error(tmp_path: Path, text: str) -> None:
    (tmp_path / server.STATE_FILE).write_text(text, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(ScorerUnavailableError, match="damaged") as caught:
        server.stop(tmp_path)
    assert "\n" not in str(caught.value)


def test_the_cli_reports_a_damaged_state_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / server.STATE_FILE).write_text("[1, 2", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tersify.cli", "triton", "stop", "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "damaged" in done.stderr
    assert "Traceback" not in done.stderr


def test_only_unmapped_regions_of_this_server_are_removed(tmp_path: Path) -> None:
    mine = f"triton_python_test_{uuid.uuid4().hex}"
    theirs = f"triton_python_test_{uuid.uuid4().hex}"
    unrelated = f"triton_python_test_{uuid.uuid4().hex}"
    for name in (mine, theirs, unrelated):
        (SHM / name).write_bytes(b"\0" * 4096)
    # Another server still maps `theirs`.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import mmap, sys, time\n"
            f"f = open('/dev/shm/{theirs}', 'r+b'); m = mmap.mmap(f.fileno(), 4096)\n"
            "print('ready', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
        assert theirs in server._mapped_regions(holder.pid)
        _state(tmp_path, pid=2**22 - 1, shm_regions=(mine, theirs))  # the server is gone
        assert server.stop(tmp_path) is False
        assert not (SHM / mine).exists()
        assert (SHM / theirs).exists()  # still mapped by a live process
        assert (SHM / unrelated).exists()  # never this server's
    finally:
        holder.kill()
        holder.wait()
        for name in (mine, theirs, unrelated):
            (SHM / name).unlink(missing_ok=True)


@pytest.mark.parametrize("port", ["notaport", "99999", "0", "-1"])
def test_a_bad_scorer_port_is_a_bad_request_in_one_line(port: str) -> None:
    from tersify.client.triton import TritonTarget
    from tersify.errors import BadRequestError

    url = f"grpc://127.0.0.1:{port}"
    with pytest.raises(BadRequestError, match="1-65535"):
        TritonTarget.parse(url)
    done = subprocess.run(
        [sys.executable, "-m", "tersify.cli", "compress", "--scorer", url, "-"],
        input='{"context": "x"}',
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr
