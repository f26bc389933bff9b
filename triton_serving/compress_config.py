"""The ``tersify_compress`` model's Triton configuration, beside the scorer's.

A python-backend model in both forms of the repository (its code is Python wherever it
runs); what differs is only where the scorer it calls runs. Its batching merges the
requests in flight into one ``execute`` (one BYTES element each, of any size), where each
compresses on its own thread, so their windows meet in the scorer's dynamic batcher.

Text travels as BYTES tensors of one element: ``REQUEST`` the JSON request, ``RESPONSE``
the answer. (The python backend stub inside ``nvidia-pytriton`` 0.7.0 converts them right
only with numpy < 2; ``tersify.triton.backends.compress`` says how it gets one.)

Each instance keeps one score cache for all its requests, ``cache_bytes`` big (the
``cache_bytes`` model parameter; 0 turns it off, as a benchmark that sends the same request
again and again needs, or every request after the first would be answered from the cache).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tersify.client.triton_models import MODEL_NAME, RANKER_BATCHING, RANKER_MODEL, Batching
from tersify.errors import BadRequestError
from tersify.limits import Limits
from tersify.triton.backends import model_file
from tersify.triton.config import Form
from tersify.validate import non_negative_int

COMPRESS_MODEL = "tersify_compress"
REQUEST = "REQUEST"
RESPONSE = "RESPONSE"
ORIGIN_TOKENS = "ORIGIN_TOKENS"
COMPRESSED_TOKENS = "COMPRESSED_TOKENS"
DEFAULT_TIMEOUT_S = 60.0
# The score cache's size per instance: ScoreCache's default (64 MiB, ~16M scored tokens).
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class CompressConfig:
    """Everything ``tersify_compress``'s ``config.pbtxt`` says.

    ``scorer`` is the exported scorer whose tokenizer the compressor uses (a name or
    folder, as ``--scorer``; empty: the default scorer under ``TERSIFY_HOME``); it must
    be the model that ``scorer_model`` serves. ``ranker`` and ``ranker_model`` are the same
    for question-aware mode's ranker (``ranker_model`` empty: the repository serves no
    ranker, and question-aware requests are refused). ``cache_bytes`` bounds the instance's score
    cache (0: no cache); ``timeout_s`` is each request's deadline (0: none).
    """

    form: Form
    name: str = COMPRESS_MODEL
    scorer: str = ""
    scorer_model: str = MODEL_NAME
    batching: Batching = field(default_factory=Batching)
    ranker: str = ""
    ranker_model: str = RANKER_MODEL
    ranker_batching: Batching = RANKER_BATCHING
    max_batch_size: int = 16
    max_queue_delay_us: int = 1000
    instance_count: int = 2
    encoding: str = "cl100k_base"
    price_per_1k: float = 0.06
    limits: Limits = field(default_factory=Limits)
    timeout_s: float = DEFAULT_TIMEOUT_S
    cache_bytes: int = DEFAULT_CACHE_BYTES

    def __post_init__(self) -> None:
        non_negative_int("cache_bytes", self.cache_bytes)

    def parameters(self) -> dict[str, str]:
        """The model's ``parameters``, read by ``tersify.triton.backends.compress``."""
        return {
            "scorer": self.scorer,
            "scorer_model": self.scorer_model,
            "padded_lengths": ",".join(map(str, self.batching.padded_lengths)),
            "ranker": self.ranker,
            "ranker_model": self.ranker_model,
            "ranker_padded_lengths": ",".join(map(str, self.ranker_batching.padded_lengths)),
            "ranker_max_batch_size": str(self.ranker_batching.max_batch_size),
            "encoding": self.encoding,
            "price_per_1k": f"{self.price_per_1k:g}",
            "max_body_bytes": str(self.limits.max_body_bytes),
            "max_contexts": str(self.limits.max_contexts),
            "max_scorer_tokens": str(self.limits.max_scorer_tokens),
            "timeout_s": f"{self.timeout_s:g}",
            "cache_bytes": str(self.cache_bytes),
        }

    def render(self) -> str:
        """The ``config.pbtxt`` text."""
        lines = [
            f'name: "{self.name}"',
            'backend: "python"',
            f"max_batch_size: {self.max_batch_size}",
            "input [",
            f'  {{ name: "{REQUEST}" data_type: TYPE_STRING dims: [ 1 ] }}',
            "]",
            "output [",
            f'  {{ name: "{RESPONSE}" data_type: TYPE_STRING dims: [ 1 ] }},',
            f'  {{ name: "{ORIGIN_TOKENS}" data_type: TYPE_INT64 dims: [ 1 ] }},',
            f'  {{ name: "{COMPRESSED_TOKENS}" data_type: TYPE_INT64 dims: [ 1 ] }}',
            "]",
            "dynamic_batching {",
            f"  max_queue_delay_microseconds: {self.max_queue_delay_us}",
            "}",
            "instance_group [",
            f"  {{ count: {self.instance_count} kind: KIND_CPU }}",
            "]",
            "parameters [",
            ",\n".join(
                f'  {{ key: "{k}" value: {{ string_value: "{v}" }} }}'
                for k, v in self.parameters().items()
            ),
            "]",
        ]
        return "\n".join(lines) + "\n"


def cache_bytes_parameter(text: str) -> int:
    """The ``cache_bytes`` model parameter in bytes (0: no cache; empty: the default)."""
    value = text.strip()
    if not value:
        return DEFAULT_CACHE_BYTES
    if not value.isascii() or not value.isdigit():
        raise BadRequestError(
            f"{COMPRESS_MODEL}'s parameter cache_bytes={text!r} must be a whole number of "
            f"bytes >= 0 (0 turns the score cache off; default {DEFAULT_CACHE_BYTES}): "
            "fix its config.pbtxt"
        )
    return int(value)


def write_compress_model(config: CompressConfig, folder: Path) -> list[Path]:
    """Write ``config.pbtxt`` and ``1/model.py`` (:func:`tersify.triton.backends.model_file`)."""
    (folder / "1").mkdir(parents=True, exist_ok=True)
    written = [folder / "config.pbtxt", folder / "1" / "model.py"]
    written[0].write_text(config.render(), encoding="utf-8")
    written[1].write_text(model_file(COMPRESS_MODEL), encoding="utf-8")
    return written
