"""The Triton ranker: texts tokenized here, embedded by Triton's ``tersify_ranker`` over gRPC.

The same URL as a remote scorer's (``grpc://HOST:PORT[?ranker=NAME]``) names it: a remote
compressor ranks on the Triton it scores on. Texts are tokenized with the local export's
tokenizer (the ranker's name, by default ``Settings.default_ranker``), padded to the
server's lengths so that the dynamic batcher merges callers (``ranker_requests``), and
sent all at once over one gRPC channel. Deadlines, retries and errors are the scorer's
(``tersify.client.triton.TritonCalls``): ``ScorerUnavailableError`` when the server is
down or serves no ranker, ``ScorerTimeoutError``, ``ScorerError``.

>>> ranker_target("grpc://127.0.0.1:8001?ranker=all-minilm-l6-v2").model
'tersify_ranker'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from tersify.bundle import RANKER_INPUTS, RANKER_OUTPUT, Bundle
from tersify.client.triton import (  # needs [triton]
    RetryPolicy,
    TritonCalls,
    TritonChannel,
    TritonTarget,
    check_concurrency,
    int64_inputs,
)
from tersify.client.triton_models import RANKER_BATCHING, RANKER_MODEL, ranker_requests
from tersify.engines.ranker import RankerTokenizer
from tersify.errors import ScorerError
from tersify.limits import check_deadline
from tersify.scoring import FloatArray, IntArray
from tersify.settings import Settings

_HINT = (
    "is it running, and does it serve the ranker? `tersify triton status`; a Triton "
    "started before the ranker was exported has none: `tersify export --model "
    "all-minilm-l6-v2`, then restart it (or rank with rank_method='bm25')"
)


def ranker_target(url: str, *, settings: Settings | None = None) -> TritonTarget:
    """The ranker's target on the Triton at ``url``: model ``tersify_ranker``.

    ``?ranker=NAME`` names the local export whose tokenizer matches the served ranker
    (default: ``Settings.default_ranker``); a scorer URL's path and ``scorer=`` are the
    scorer's and are ignored here; ``timeout=`` applies to both.

    >>> t = ranker_target("grpc://10.0.0.5:8001/tersify_scorer?scorer=smollm2-135m&ranker=mini")
    >>> (t.address, t.model, t.ranker, t.scorer)
    ('10.0.0.5:8001', 'tersify_ranker', 'mini', 'mini')
    """
    target = TritonTarget.parse(url)
    name = target.ranker or (settings or Settings.from_env()).default_ranker
    # ``scorer`` is the name of the export to tokenize with, as for TritonScorer.
    return replace(target, model=RANKER_MODEL, ranker=name, scorer=name)


class TritonRanker:
    """A :class:`tersify.scoring.Ranker` whose embeddings come from Triton.

    ``bundle`` is the local export of the served ranker (its tokenizer). Requests of one
    ``embed`` go out together (at most ``max_in_flight`` at a time), each at most
    ``max_batch`` rows of one padded length.
    """

    def __init__(
        self,
        target: TritonTarget,
        bundle: Bundle,
        *,
        retry: RetryPolicy | None = None,
        max_in_flight: int = 8,
        padded_lengths: Sequence[int] = RANKER_BATCHING.padded_lengths,
        max_batch: int = RANKER_BATCHING.max_batch_size,
    ) -> None:
        check_concurrency(max_in_flight, max_batch)
        self._bundle = bundle
        self._tokenizer = RankerTokenizer(bundle)
        self._target = target
        self._lengths = tuple(sorted(padded_lengths))
        self._max_batch = max_batch
        calls = TritonCalls(target, retry, hint=_HINT)
        self._channel = TritonChannel(calls, max_in_flight=max_in_flight, threads="tersify-ranker")

    @property
    def name(self) -> str:
        """The exported ranker's name."""
        return self._bundle.manifest.name

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """One L2-normalised embedding per text, ``[len(texts), dim]``."""
        dimension = int(self._bundle.manifest.verification.get("dimension", 0))
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        check_deadline()
        requests = ranker_requests(
            self._tokenizer.encode(texts),
            lengths=self._lengths,
            max_batch=self._max_batch,
            pad_id=self._tokenizer.pad_id,
        )
        outputs = self._channel.run(lambda r, timeout: self._one(r[1], r[2], timeout), requests)
        result = np.zeros((len(texts), outputs[0].shape[1]), dtype=np.float32)
        for (indices, _, _), out in zip(requests, outputs, strict=True):
            result[indices] = out
        return result

    def is_ready(self) -> bool:
        """Whether the server answers and its ranker model is ready."""
        return self._channel.is_ready()

    def close(self) -> None:
        """Close the gRPC channel (and the threads that kept requests in flight)."""
        self._channel.close()

    def _one(self, ids: IntArray, mask: IntArray, timeout: float) -> FloatArray:
        result = self._channel.infer(
            int64_inputs(dict(zip(RANKER_INPUTS, (ids, mask), strict=True))), timeout
        )
        out = result.as_numpy(RANKER_OUTPUT)
        if out is None or out.ndim != 2 or out.shape[0] != ids.shape[0] or out.shape[1] < 1:
            raise ScorerError(
                f"Triton at {self._target.address} answered without a usable "
                f"{RANKER_OUTPUT!r} tensor for a {list(ids.shape)} batch"
            )
        return np.asarray(out, dtype=np.float32)
