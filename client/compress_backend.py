"""Triton python-backend model ``tersify_compress``: a whole compression as one inference.

Copied into the model repository by ``tersify triton repo`` (and ``tersify triton start``);
never imported by tersify. A front at the edge, like the CLI: it imports the core and the
client. ``REQUEST`` holds a JSON compression request as UTF-8 bytes; ``RESPONSE`` holds the
answer, byte for byte what ``tersify compress`` prints, and ``ORIGIN_TOKENS`` /
``COMPRESSED_TOKENS`` its two counts.

The compressor asks the scorer model for log-probs through business-logic scripting (BLS):
every window of a compression is one ``InferenceRequest`` to ``tersify_scorer``, all sent
at once with ``async_exec``, so windows from every request in flight meet in the scorer's
dynamic batcher. ``execute`` is a coroutine: each request of a merged batch compresses on a
worker thread, whose scorer hands its BLS calls to the stub's event loop and waits.

Each request is checked and answered on its own: a bad one fails alone with the CLI's
one-line message (``INVALID_ARG``), under the same ``Limits`` as every front, within its
deadline. Tensors cross the stub through DLPack only (UINT8 for text): with numpy 2 in the
stub's environment, BYTES tensors and tensors built from numpy arrive corrupt or empty.
"""

import asyncio
import copy
import json
import os
import site
import sys
from concurrent.futures import ThreadPoolExecutor

# The backend stub does not put PYTHONPATH on sys.path; the launcher passes the
# environment that has tersify, numpy, tokenizers and tiktoken.
for _entry in os.environ.get("TERSIFY_SITE_PACKAGES", "").split(os.pathsep):
    if _entry and _entry not in sys.path:
        site.addsitedir(_entry)

import numpy as np
import triton_python_backend_utils as pb_utils

from tersify.bundle import INPUT_NAME, OUTPUT_NAME, Bundle
from tersify.cache import ScoreCache
from tersify.client import resolve_scorer_folder
from tersify.client.tokenizer import BundleScorerBase
from tersify.compressor import Compressor
from tersify.errors import (
    BadRequestError,
    CancelledError,
    DeadlineExceededError,
    OverloadedError,
    ScorerError,
    ScorerTimeoutError,
    ScorerUnavailableError,
    TersifyError,
)
from tersify.limits import Deadline, Limits
from tersify.request import CompressRequest, answer, compress
from tersify.settings import Settings

REQUEST = "REQUEST"
RESPONSE = "RESPONSE"
ORIGIN_TOKENS = "ORIGIN_TOKENS"
COMPRESSED_TOKENS = "COMPRESSED_TOKENS"


class BlsScorer(BundleScorerBase):
    """A scorer whose ``logprobs`` asks the scorer model through BLS, all windows at once.

    One is made per model instance (it holds the tokenizer); ``bound`` gives each request
    its copy, which runs on a worker thread and hands its BLS calls to the stub's event
    loop. Windows are right-padded to the scorer's padded lengths, as the gRPC scorer does.
    """

    def __init__(self, bundle, *, model, lengths):
        super().__init__(bundle)
        self._model = model
        self._lengths = lengths
        self._loop = None
        self._deadline = Deadline(None)

    def bound(self, loop, deadline):
        scorer = copy.copy(self)
        scorer._loop, scorer._deadline = loop, deadline
        return scorer

    @property
    def max_window(self):
        return min(self._lengths[-1], self._bundle.manifest.max_positions)

    def logprobs(self, windows):
        self._deadline.check()
        if not windows:
            return []
        requests = [self._request(window) for window in windows]
        future = asyncio.run_coroutine_threadsafe(_gather(requests), self._loop)
        responses = future.result()
        return [self._parse(r, len(w)) for r, w in zip(responses, windows, strict=True)]

    def _request(self, window):
        length = next((n for n in self._lengths if n >= len(window)), None)
        if length is None:
            raise BadRequestError(
                f"a window of {len(window)} ids is longer than the scorer's longest padded "
                f"length ({self._lengths[-1]})"
            )
        ids = np.zeros((1, length), dtype=np.int64)
        ids[0, : len(window)] = window
        remaining = self._deadline.remaining()
        options = {} if remaining is None else {"timeout": max(1, int(remaining * 1e6))}
        return pb_utils.InferenceRequest(
            model_name=self._model,
            requested_output_names=[OUTPUT_NAME],
            inputs=[pb_utils.Tensor.from_dlpack(INPUT_NAME, ids)],
            **options,
        )

    def _parse(self, response, length):
        if response.has_error():
            message = response.error().message()
            if "timeout" in message.lower() or "deadline" in message.lower():
                raise ScorerTimeoutError(f"the scorer model {self._model} timed out: {message}")
            raise ScorerError(f"the scorer model {self._model} failed: {message}")
        tensor = pb_utils.get_output_tensor_by_name(response, OUTPUT_NAME)
        if tensor is None:
            raise ScorerError(f"the scorer model {self._model} answered without {OUTPUT_NAME}")
        out = np.from_dlpack(tensor)
        if out.ndim != 2 or out.shape[1] < length:
            raise ScorerError(f"the scorer model {self._model} answered a {out.shape} tensor")
        return np.array(out[0, :length], dtype=np.float32)


async def _gather(requests):
    return await asyncio.gather(*(r.async_exec() for r in requests))


class TritonPythonModel:
    """Compresses each request of a merged batch on its own worker thread."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        spec = parameters.get("scorer") or None
        self.bundle = Bundle.open(resolve_scorer_folder(spec, Settings.from_env()))
        self.model = parameters.get("scorer_model", "tersify_scorer")
        self.lengths = tuple(sorted(int(n) for n in parameters["padded_lengths"].split(",")))
        self.encoding = parameters.get("encoding", "cl100k_base")
        self.price_per_1k = float(parameters.get("price_per_1k", "0.06"))
        self.limits = Limits(
            **{
                name: int(parameters[name])
                for name in ("max_body_bytes", "max_contexts", "max_scorer_tokens")
                if parameters.get(name)
            }
        )
        timeout = float(parameters.get("timeout_s", "0") or 0)
        self.timeout_s = timeout if timeout > 0 else None
        # The tokenizer and the target encoding load once, here, not on the first request.
        self.scorer = BlsScorer(self.bundle, model=self.model, lengths=self.lengths)
        Compressor(self.scorer, encoding=self.encoding, limits=self.limits)
        # One score cache for every request of this instance: documents seen before are free.
        self.cache = ScoreCache()
        self.pool = ThreadPoolExecutor(
            max_workers=max(1, int(config.get("max_batch_size", 1))),
            thread_name_prefix="tersify_compress",
        )

    async def execute(self, requests):
        loop = asyncio.get_running_loop()
        jobs = [loop.run_in_executor(self.pool, self._answer, r, loop) for r in requests]
        return list(await asyncio.gather(*jobs))

    def finalize(self):
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _answer(self, request, loop):
        try:
            text, result = self._compress(request, loop)
        except TersifyError as exc:
            return _error(exc)
        except Exception as exc:  # a bug: one line to the caller, never a traceback
            return _error(ScorerError(f"internal error in tersify_compress: {exc!r}"))
        counts = np.array([[result.origin_tokens], [result.compressed_tokens]], dtype=np.int64)
        tensors = [
            pb_utils.Tensor.from_dlpack(RESPONSE, np.frombuffer(text, dtype=np.uint8)[None].copy()),
            pb_utils.Tensor.from_dlpack(ORIGIN_TOKENS, counts[0:1].copy()),
            pb_utils.Tensor.from_dlpack(COMPRESSED_TOKENS, counts[1:2].copy()),
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _compress(self, request, loop):
        tensor = pb_utils.get_input_tensor_by_name(request, REQUEST)
        if tensor is None:
            raise BadRequestError(f"missing input {REQUEST!r}: send the JSON request as UINT8")
        raw = np.from_dlpack(tensor).tobytes()
        self.limits.check_body(len(raw))
        parsed = CompressRequest.from_json(raw)
        deadline = Deadline(self.timeout_s)
        compressor = Compressor(
            self.scorer.bound(loop, deadline),
            encoding=self.encoding,
            limits=self.limits,
            cache=self.cache,
        )
        result = compress(parsed, compressor, deadline=deadline)
        # What `tersify compress` prints, byte for byte.
        text = json.dumps(answer(result, self.price_per_1k), ensure_ascii=False, indent=4) + "\n"
        return text.encode("utf-8"), result


_CODES = (
    (BadRequestError, "INVALID_ARG"),
    (OverloadedError, "UNAVAILABLE"),
    (ScorerUnavailableError, "UNAVAILABLE"),
    (CancelledError, "CANCELLED"),
    (DeadlineExceededError, "UNAVAILABLE"),
    (ScorerTimeoutError, "UNAVAILABLE"),
)


def _error(exc):
    """The CLI's one-line message, with the Triton code that says whose fault it is."""
    message = " ".join(str(exc).split())
    name = next((code for kind, code in _CODES if isinstance(exc, kind)), "INTERNAL")
    code = getattr(pb_utils.TritonError, name, pb_utils.TritonError.INTERNAL)
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
