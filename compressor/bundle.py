"""An exported scorer on disk: ONNX graph, tokenizer and manifest in one folder.

This module owns the on-disk format and the scorer's tensor names: ``tersify.export``
writes it; ``tersify.client`` (the in-process scorer, Triton's model repository) reads
it. Neither imports the other. The manifest says what model it came from and what the
graph expects::

    scorer-folder/
        manifest.json       this module's Manifest
        model.onnx          input_ids INT64 [batch, seq] -> token_logprobs FP32 [batch, seq]
        model.onnx.data     the weights (ONNX external data)
        tokenizer.json      the scorer's tokenizer (Hugging Face tokenizers)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tersify.errors import ScorerUnavailableError
from tersify.settings import Settings

MANIFEST_FILE = "manifest.json"
# Files already checked, by absolute path: [size, mtime_ns, sha256]. Under TERSIFY_HOME.
VERIFIED_FILE = "verified.json"
_VERIFIED_KEEP = 512
FORMAT_VERSION = 1
# The scorer model's contract (DESIGN.md): int64 [batch, seq] in, fp32 [batch, seq] out.
INPUT_NAME = "input_ids"
OUTPUT_NAME = "token_logprobs"
# A ranker folder (``kind: "ranker"``, tersify.export.ranker): BERT ids and mask in,
# one L2-normalised embedding per text out.
SCORER_KIND = "scorer"
RANKER_KIND = "ranker"
RANKER_INPUTS = ("input_ids", "attention_mask")
RANKER_OUTPUT = "embeddings"


@dataclass(frozen=True)
class Manifest:
    """What an exported scorer is and which files make it."""

    name: str
    source: str
    vocab_size: int
    max_positions: int
    bos_token_id: int | None
    model_files: Mapping[str, str]
    tokenizer_file: str = "tokenizer.json"
    sha256: Mapping[str, str] = field(default_factory=dict)
    verification: Mapping[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    kind: str = SCORER_KIND

    def to_json(self) -> str:
        """The manifest as JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest written by :meth:`to_json`; anything else is one clear error."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ScorerUnavailableError(f"the manifest is not JSON ({exc}); export again") from exc
        if not isinstance(data, dict):
            raise ScorerUnavailableError(
                f"the manifest is a JSON {type(data).__name__}, not an object; export again"
            )
        if data.get("format_version") != FORMAT_VERSION:
            raise ScorerUnavailableError(
                f"scorer manifest format {data.get('format_version')!r} is not "
                f"{FORMAT_VERSION}; export the model again with `tersify export`"
            )
        unknown = sorted(set(data) - set(_FIELD_TYPES))
        missing = sorted(name for name in _REQUIRED if name not in data)
        if unknown or missing:
            raise ScorerUnavailableError(
                f"the manifest has {'unknown fields ' + ', '.join(unknown) if unknown else ''}"
                f"{'; ' if unknown and missing else ''}"
                f"{'no ' + ', '.join(missing) if missing else ''}; export again"
            )
        for name, value in data.items():
            if not _FIELD_TYPES[name](value):
                raise ScorerUnavailableError(
                    f"the manifest's {name} is {type(value).__name__} {value!r:.60}, "
                    "not what a tersify export writes; export again"
                )
        return cls(**data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_names(value: object, *, hashes: bool = False) -> bool:
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if not (isinstance(key, str) and key and isinstance(item, str)):
            return False
        if hashes and not _SHA256.fullmatch(item):
            return False
        if not hashes and not item:
            return False
    return True


_SHA256 = re.compile(r"[0-9a-f]{64}")
_FIELD_TYPES: dict[str, Callable[[object], bool]] = {
    "name": lambda v: isinstance(v, str),
    "source": lambda v: isinstance(v, str),
    "vocab_size": lambda v: _is_int(v) and v > 0,  # type: ignore[operator]
    "max_positions": lambda v: _is_int(v) and v > 0,  # type: ignore[operator]
    "bos_token_id": lambda v: v is None or (_is_int(v) and v >= 0),  # type: ignore[operator]
    "model_files": lambda v: _is_names(v) and bool(v),
    "tokenizer_file": lambda v: isinstance(v, str) and bool(v),
    "sha256": lambda v: _is_names(v, hashes=True),
    "verification": lambda v: isinstance(v, dict),
    "format_version": _is_int,
    "kind": lambda v: v in (SCORER_KIND, RANKER_KIND),
}
_REQUIRED = ("name", "source", "vocab_size", "max_positions", "bos_token_id", "model_files")


@dataclass(frozen=True)
class Bundle:
    """An exported scorer folder, checked for completeness when opened."""

    folder: Path
    manifest: Manifest

    @classmethod
    def open(cls, folder: str | Path, *, verify: bool = True) -> Bundle:
        """Open the scorer in ``folder``; say how to make one when it is missing.

        Every file the manifest names must lie inside ``folder`` and, with ``verify``, match
        its SHA-256 in the manifest (a file already verified with the same size and
        modification time is not read again).
        """
        path = Path(folder).expanduser()
        manifest_path = path / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ScorerUnavailableError(
                f"no exported scorer in {path} (no {MANIFEST_FILE}); create it with "
                f"`tersify export --model NAME --out {path}`"
            )
        try:
            manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, TypeError) as exc:  # UnicodeDecodeError, a field that will not fit
            raise ScorerUnavailableError(
                f"{manifest_path} is not a tersify scorer manifest ({exc}); export again"
            ) from exc
        except ScorerUnavailableError as exc:
            raise ScorerUnavailableError(f"{manifest_path}: {exc}") from None
        names = sorted({manifest.tokenizer_file, *manifest.model_files.values(), *manifest.sha256})
        files = {name: _inside(path, name) for name in names}
        missing = [name for name, file in files.items() if not file.is_file()]
        if missing:
            raise ScorerUnavailableError(
                f"the scorer in {path} is incomplete (missing {', '.join(missing)}); "
                "export it again with `tersify export`"
            )
        if verify:
            unhashed = [name for name in names if name not in manifest.sha256]
            if unhashed:
                raise ScorerUnavailableError(
                    f"the manifest in {path} has no SHA-256 for {', '.join(unhashed)}, so they "
                    "cannot be trusted; export it again with `tersify export`"
                )
            verify_files(path, {files[name]: manifest.sha256[name] for name in names})
        return cls(folder=path, manifest=manifest)

    def model_path(self, variant: str = "fp32") -> Path:
        """The ONNX file of ``variant`` (``fp32``, or ``int8`` where it was exported)."""
        name = self.manifest.model_files.get(variant)
        if name is None:
            raise ScorerUnavailableError(
                f"the scorer in {self.folder} has no {variant!r} variant "
                f"(it has {sorted(self.manifest.model_files)}); "
                + ("export with --int8" if variant == "int8" else "export it again")
            )
        return self.folder / name

    @property
    def tokenizer_path(self) -> Path:
        """The tokenizer.json file."""
        return self.folder / self.manifest.tokenizer_file


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _inside(folder: Path, name: str) -> Path:
    """``folder / name``, refused when it resolves outside ``folder`` (``..``, absolute, links)."""
    root = folder.resolve()
    target = (folder / name).resolve()
    if Path(name).is_absolute() or not target.is_relative_to(root):
        raise ScorerUnavailableError(
            f"the manifest in {folder} names {name!r}, which lies outside the scorer's folder; "
            "a scorer's files must be inside it: export it again with `tersify export`"
        )
    return folder / name


def verify_files(folder: Path, expected: Mapping[Path, str], *, home: Path | None = None) -> None:
    """Check each file's SHA-256; remember good ones by size and mtime under ``home``."""
    cache_path = (home or Settings.from_env().home) / VERIFIED_FILE
    cache = _read_verified(cache_path)
    changed = False
    for file, digest in expected.items():
        key = str(file.resolve())
        stat = file.stat()
        if cache.get(key) == [stat.st_size, stat.st_mtime_ns, digest]:
            continue
        if file_sha256(file) != digest:
            raise ScorerUnavailableError(
                f"{file.name} in {folder} does not match its SHA-256 in the manifest: it changed "
                "or was damaged since it was exported; export the scorer again"
            )
        cache.pop(key, None)
        cache[key] = [stat.st_size, stat.st_mtime_ns, digest]
        changed = True
    if changed:
        _write_verified(cache_path, dict(list(cache.items())[-_VERIFIED_KEEP:]))


def _read_verified(path: Path) -> dict[str, list[object]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_verified(path: Path, cache: Mapping[str, list[object]]) -> None:
    # Best effort, atomically: a read-only home only means hashing again next time.
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=".verified-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(cache, out)
            os.replace(name, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
