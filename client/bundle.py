"""An exported scorer on disk: ONNX graph, tokenizer and manifest in one folder.

``tersify export`` writes it; the in-process scorer and Triton's model repository read
it. The manifest says what model it came from and what the graph expects::

    scorer-folder/
        manifest.json       this module's Manifest
        model.onnx          input_ids INT64 [batch, seq] -> token_logprobs FP32 [batch, seq]
        model.onnx.data     the weights (ONNX external data)
        tokenizer.json      the scorer's tokenizer (Hugging Face tokenizers)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tersify.errors import ScorerUnavailableError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


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

    def to_json(self) -> str:
        """The manifest as JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest written by :meth:`to_json`."""
        data = json.loads(text)
        if data.get("format_version") != FORMAT_VERSION:
            raise ScorerUnavailableError(
                f"scorer manifest format {data.get('format_version')!r} is not "
                f"{FORMAT_VERSION}; export the model again with `tersify export`"
            )
        return cls(**data)


@dataclass(frozen=True)
class Bundle:
    """An exported scorer folder, checked for completeness when opened."""

    folder: Path
    manifest: Manifest

    @classmethod
    def open(cls, folder: str | Path) -> Bundle:
        """Open the scorer in ``folder``; say how to make one when it is missing."""
        path = Path(folder).expanduser()
        manifest_path = path / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ScorerUnavailableError(
                f"no exported scorer in {path} (no {MANIFEST_FILE}); create it with "
                f"`tersify export --model NAME --out {path}`"
            )
        try:
            manifest = Manifest.from_json(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, TypeError) as exc:
            raise ScorerUnavailableError(
                f"{manifest_path} is not a tersify scorer manifest ({exc}); export again"
            ) from exc
        missing = [
            name
            for name in (manifest.tokenizer_file, *manifest.model_files.values(), *manifest.sha256)
            if not (path / name).is_file()
        ]
        if missing:
            raise ScorerUnavailableError(
                f"the scorer in {path} is incomplete (missing {', '.join(sorted(set(missing)))}); "
                "export it again with `tersify export`"
            )
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
