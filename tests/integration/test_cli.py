"""The ``tersify`` command, run as a user runs it: a subprocess, on the tiny exported scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from answers import check_answer, check_seed_answer
from processes import tersify
from texts import SEED


def test_compress_prints_the_seed_answer_format(tiny_scorer_dir: Path) -> None:
    done = tersify("compress", "--scorer", str(tiny_scorer_dir), str(SEED))
    assert done.returncode == 0, done.stderr.decode()
    check_seed_answer(json.loads(done.stdout)["data"])


def test_compress_reads_stdin_and_a_string_context(tiny_scorer_dir: Path) -> None:
    request = {"context": "Alice met Bob in Paris. " * 30, "question": "Where?", "target_token": 60}
    done = tersify(
        "compress", "--scorer", str(tiny_scorer_dir), "-", stdin=json.dumps(request).encode()
    )
    assert done.returncode == 0, done.stderr.decode()
    data = json.loads(done.stdout)["data"]
    check_answer(data, 60)
    assert 57 <= data["compressed_tokens"]
    assert data["compressed_prompt"].endswith("Where?")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"question": "q"}', "exactly one of 'context'"),
        (b'{"context": []}', "empty"),
        (b'{"context": [42]}', "context[0]"),
        (b'{"context": {"a": 1}}', "context must be"),
        (b'{"context": ["x"], "rate": 1.5}', "rate=1.5"),
        (b'{"context": ["x"], "rate": 0}', "rate=0"),
        (b'{"context": ["x"], "ratio": "0.2"}', "ratio"),
        (b'{"context": ["x"], "question": 7}', "question must be"),
        (b'{"context": ["\\ud800"]}', "lone surrogate"),
        (b'{"context": ["x"], "question": "\\udfff"}', "lone surrogate"),
        (b'{"context": ["x"], "target_token": ' + b"9" * 5000 + b"}", "too large"),
        (b'{"context": ["x"], "json": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nests"),
        (b'{"context": ["x"], "mode": "fast"}', "mode='fast'"),
        (b'{"context": ["x"], "rank_method": "cohere"}', "rank_method='cohere'"),
        (b'{"context": ["x"], "keep_split": true}', "keep_split"),
        (b'{"context": ["x"], "reorder_context": "random"}', "reorder_context='random'"),
        (b'{"segments": "a", "rank_method": "bm25"}', "applies to 'context' requests"),
        (b'{"context": ["x"], "budget": 7}', "unknown field 'budget'"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tiny_scorer_dir: Path, payload: bytes, expected: str
) -> None:
    done = tersify("compress", "--scorer", str(tiny_scorer_dir), "-", stdin=payload)
    assert done.returncode == 2
    assert done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("tersify: error: ")
    assert expected in err
    assert "Traceback" not in err


def test_export_reuses_a_complete_scorer(tiny_scorer_dir: Path, tiny_model_dir: Path) -> None:
    done = tersify(
        "export", "--model", str(tiny_model_dir), "--out", str(tiny_scorer_dir), "--skip-existing"
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == str(tiny_scorer_dir)
    assert "already exported" in done.stderr.decode()


def test_export_places_model_files_in_a_triton_repository(
    tiny_scorer_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    done = tersify(
        "export",
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tiny_scorer_dir),
        "--skip-existing",
        "--triton-repo",
        str(repo),
    )
    assert done.returncode == 0, done.stderr.decode()
    for form in ("onnxruntime", "python"):
        version = repo / form / "tersify_scorer" / "1"
        assert (version / "model.onnx").is_file() and (version / "model.onnx.data").is_file()
        assert (repo / form / "tersify_scorer" / "config.pbtxt").is_file()
    assert (repo / "python" / "tersify_scorer" / "1" / "model.py").is_file()


def test_variant_flag_picks_an_exported_variant(tiny_scorer_dir: Path) -> None:
    request = json.dumps({"context": "Alice met Bob in Paris. " * 30, "rate": 0.5}).encode()
    default = tersify("compress", "--scorer", str(tiny_scorer_dir), "-", stdin=request)
    fp32 = tersify(
        "compress", "--scorer", str(tiny_scorer_dir), "--variant", "fp32", "-", stdin=request
    )
    assert default.returncode == fp32.returncode == 0, fp32.stderr.decode()
    assert default.stdout == fp32.stdout
    missing = tersify(
        "compress", "--scorer", str(tiny_scorer_dir), "--variant", "nope", "-", stdin=request
    )
    assert missing.returncode == 1
    assert b"no 'nope' variant" in missing.stderr and len(missing.stderr.splitlines()) == 1
