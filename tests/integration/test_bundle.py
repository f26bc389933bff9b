"""Scorer integrity: every file matches its SHA-256, stays inside the folder, and a bad
manifest is one clear error."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tersify import Compressor
from tersify.bundle import MANIFEST_FILE, VERIFIED_FILE, Bundle
from tersify.errors import ScorerUnavailableError


@pytest.fixture()
def scorer(tiny_scorer_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TERSIFY_HOME", str(tmp_path / "home"))
    copy = tmp_path / "scorer"
    shutil.copytree(tiny_scorer_dir, copy)
    return copy


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))


def _write_manifest(folder: Path, data: object) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")


def test_an_intact_scorer_opens_and_is_remembered(scorer: Path, tmp_path: Path) -> None:
    Bundle.open(scorer)
    verified = json.loads((tmp_path / "home" / VERIFIED_FILE).read_text(encoding="utf-8"))
    names = {Path(key).name for key in verified}
    assert {"tokenizer.json", "model.onnx"} <= names
    for size, mtime, digest in verified.values():
        assert size > 0 and mtime > 0 and len(digest) == 64


def test_a_tampered_tokenizer_is_refused(scorer: Path) -> None:
    tokenizer = scorer / "tokenizer.json"
    data = json.loads(tokenizer.read_text(encoding="utf-8"))
    data["added_tokens"] = [*data.get("added_tokens", []), {"id": 9999, "content": "<evil>"}]
    tokenizer.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ScorerUnavailableError, match=r"tokenizer\.json .*SHA-256"):
        Bundle.open(scorer)
    with pytest.raises(ScorerUnavailableError, match="SHA-256"):
        Compressor(str(scorer))


def test_a_tampered_file_is_refused_after_it_was_verified(scorer: Path) -> None:
    Bundle.open(scorer)  # remembered now
    model = scorer / "model.onnx"
    blob = bytearray(model.read_bytes())
    blob[-1] ^= 0xFF
    model.write_bytes(bytes(blob))  # same size, new mtime
    with pytest.raises(ScorerUnavailableError, match=r"model\.onnx .*SHA-256"):
        Bundle.open(scorer)


def test_the_second_open_reads_no_file_while_size_and_mtime_hold(scorer: Path) -> None:
    Bundle.open(scorer)
    model = scorer / "model.onnx"
    stat = model.stat()
    blob = bytearray(model.read_bytes())
    blob[-1] ^= 0xFF
    model.write_bytes(bytes(blob))
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    Bundle.open(scorer)  # trusted from the record, as documented: not hashed again


@pytest.mark.parametrize("name", ["../outside.json", "/etc/hostname", "sub/../../outside.json"])
def test_files_outside_the_folder_are_refused(scorer: Path, name: str) -> None:
    (scorer.parent / "outside.json").write_text("{}", encoding="utf-8")
    data = _manifest(scorer)
    data["model_files"]["fp32"] = name
    _write_manifest(scorer, data)
    with pytest.raises(ScorerUnavailableError, match="outside the scorer's folder"):
        Bundle.open(scorer)


def test_a_symlink_out_of_the_folder_is_refused(scorer: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.json"
    shutil.copy(scorer / "tokenizer.json", outside)
    (scorer / "tokenizer.json").unlink()
    (scorer / "tokenizer.json").symlink_to(outside)
    with pytest.raises(ScorerUnavailableError, match="outside the scorer's folder"):
        Bundle.open(scorer)


def test_a_file_without_a_hash_is_refused(scorer: Path) -> None:
    data = _manifest(scorer)
    del data["sha256"]["tokenizer.json"]
    _write_manifest(scorer, data)
    with pytest.raises(ScorerUnavailableError, match=r"no SHA-256 for tokenizer\.json"):
        Bundle.open(scorer)


@pytest.mark.parametrize(
    "change",
    [
        [],
        None,
        "manifest",
        {"model_files": []},
        {"model_files": {"fp32": 3}},
        {"model_files": {}},
        {"vocab_size": "600"},
        {"vocab_size": True},
        {"bos_token_id": -1},
        {"sha256": {"model.onnx": "not-a-hash"}},
        {"sha256": ["model.onnx"]},
        {"colour": "red"},
        {"format_version": 99},
    ],
)
def test_a_malformed_manifest_is_one_clear_error(scorer: Path, change: object) -> None:
    data: object = change
    if isinstance(change, dict):
        data = {**_manifest(scorer), **change}
    _write_manifest(scorer, data)
    with pytest.raises(ScorerUnavailableError) as caught:
        Bundle.open(scorer)
    message = str(caught.value)
    assert "\n" not in message and ("export" in message)


def test_a_manifest_missing_fields_names_them(scorer: Path) -> None:
    data = _manifest(scorer)
    del data["vocab_size"]
    _write_manifest(scorer, data)
    with pytest.raises(ScorerUnavailableError, match="no vocab_size"):
        Bundle.open(scorer)


def test_a_manifest_that_is_not_utf8_is_one_error(scorer: Path) -> None:
    (scorer / MANIFEST_FILE).write_bytes(b"\xff\xfe{")
    with pytest.raises(ScorerUnavailableError, match="not a tersify scorer manifest"):
        Bundle.open(scorer)
