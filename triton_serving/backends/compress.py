"""Triton python-backend model ``tersify_compress``: a whole compression as one inference.

Imported by the model folder's ``model.py`` (:mod:`tersify.triton.backends`). A front at the
edge, like the CLI: it imports the core and the client. ``REQUEST`` holds a JSON compression
request (one BYTES element); ``RESPONSE`` holds the answer (one BYTES element), byte for
byte what ``tersify compress`` prints, and ``ORIGIN_TOKENS`` / ``COMPRESSED_TOKENS`` its two
counts.

The compressor asks the scorer model for log-probs through business-logic scripting (BLS):
every window of a compression is one ``InferenceRequest`` to ``tersify_scorer``, all sent
at once with ``async_exec``, so windows from every request in flight meet in the scorer's
dynamic batcher. Question-aware mode ranks the same way: its texts are tokenized here and
embedded by ``tersify_ranker`` (``BlsRanker``); a repository without a ranker refuses
question-aware requests with the fix. ``execute`` is a coroutine: each request of a merged
batch compresses on a worker thread, whose scorer and ranker hand their BLS calls to the
stub's event loop and wait.

Each request is checked and answered on its own: a bad one fails alone with the CLI's
one-line message (``INVALID_ARG``), under the same ``Limits`` as every front, within its
deadline.

Each instance keeps one score cache for every request it answers, of ``cache_bytes``
bytes (a model parameter, ``compress_config.py``; 0: no cache, so that a request sent
again is scored again, as a benchmark needs). A bad value fails the model's load.

Every tensor goes through the stub's numpy conversion (BYTES has no DLPack form), which
needs a stub built with pybind11 2.12 or later (Triton 24.11 on) or numpy < 2 in the stub.
The stub inside ``nvidia-pytriton`` 0.7.0 (Triton 2.51, pybind11 2.10) reads numpy 2's dtype
item size as 0: an array it builds over a tensor's memory repeats the first element, and
one it sends holds 0 bytes. The launcher names a folder with numpy < 2 in
``TERSIFY_STUB_SITE_PACKAGES``; ``model.py`` puts it first on ``sys.path``, before anything
imports numpy. (With numpy < 2 this stub's DLPack import loops on the capsule it renamed, so DLPack
is used only to detect the bad case under numpy 2.) Where the stub cannot convert, the
model loads and refuses every request with a message that says how to fix it.
"""

import asyncio
import copy
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import triton_python_backend_utils as pb_utils

from tersify.bundle import INPUT_NAME, OUTPUT_NAME, RANKER_INPUTS, RANKER_OUTPUT, Bundle
from tersify.cache import ScoreCache
from tersify.client import resolve_scorer_folder
from tersify.client.ranker import resolve_ranker_folder
from tersify.client.triton_models import ranker_requests
from tersify.compressor import Compressor
from tersify.engines.ranker import RankerTokenizer
from tersify.engines.tokenizer import BundleScorerBase
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
from tersify.triton.compress_config import cache_bytes_parameter

REQUEST = "REQUEST"
RESPONSE = "RESPONSE"
ORIGIN_TOKENS = "ORIGIN_TOKENS"
COMPRESSED_TOKENS = "COMPRESSED_TOKENS"


def _answer(response, model, output):
    """``output`` of a BLS ``response`` as numpy; its error as a timeout or a scorer error."""
    if response.has_error():
        message = response.error().message()
        if "timeout" in message.lower() or "deadline" in message.lower():
            raise ScorerTimeoutError(f"{model} timed out: {message}")
        raise ScorerError(f"{model} failed: {message}")
    tensor = pb_utils.get_output_tensor_by_name(response, output)
    if tensor is None:
        raise ScorerError(f"{model} answered without {output}")
    return tensor.as_numpy()


class _PerRequest:
    """Made once per model instance; ``bound`` gives each request its own copy.

    The copy runs on a worker thread under the request's deadline and hands its BLS calls
    to the stub's event loop.
    """

    _loop = None
    _deadline = Deadline(None)

    def bound(self, loop, deadline):
        request = copy.copy(self)
        request._loop, request._deadline = loop, deadline
        return request


class BlsScorer(_PerRequest, BundleScorerBase):
    """A scorer whose ``logprobs`` asks the scorer model through BLS, all windows at once.

    It holds the tokenizer (see ``_PerRequest``). Windows are right-padded to the scorer's
    padded lengths, as the gRPC scorer does.
    """

    def __init__(self, bundle, *, model, lengths):
        super().__init__(bundle)
        self._model = model
        self._lengths = lengths

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
            inputs=[pb_utils.Tensor(INPUT_NAME, ids)],
            **options,
        )

    def _parse(self, response, length):
        out = _answer(response, f"the scorer model {self._model}", OUTPUT_NAME)
        if out.ndim != 2 or out.shape[1] < length:
            raise ScorerError(f"the scorer model {self._model} answered a {out.shape} tensor")
        return np.array(out[0, :length], dtype=np.float32)


class BlsRanker(_PerRequest):
    """A ranker whose ``embed`` asks the ranker model through BLS, all batches at once.

    Texts are tokenized here with the ranker's export and padded as the gRPC ranker pads
    them (``ranker_requests``), so that they meet other requests' in the ranker's batcher.
    """

    def __init__(self, bundle, *, model, lengths, max_batch):
        self._bundle = bundle
        self._tokenizer = RankerTokenizer(bundle)
        self._model = model
        self._lengths = lengths
        self._max_batch = max_batch

    @property
    def name(self):
        return self._bundle.manifest.name

    def embed(self, texts):
        self._deadline.check()
        dimension = int(self._bundle.manifest.verification.get("dimension", 0))
        if not texts:
            return np.zeros((0, dimension), dtype=np.float32)
        batches = ranker_requests(
            self._tokenizer.encode(texts),
            lengths=self._lengths,
            max_batch=self._max_batch,
            pad_id=self._tokenizer.pad_id,
        )
        requests = [self._request(ids, mask) for _, ids, mask in batches]
        future = asyncio.run_coroutine_threadsafe(_gather(requests), self._loop)
        outputs = [
            self._parse(r, len(ids))
            for r, (_, ids, _) in zip(future.result(), batches, strict=True)
        ]
        result = np.zeros((len(texts), outputs[0].shape[1]), dtype=np.float32)
        for (indices, _, _), out in zip(batches, outputs, strict=True):
            result[indices] = out
        return result

    def _request(self, ids, mask):
        remaining = self._deadline.remaining()
        options = {} if remaining is None else {"timeout": max(1, int(remaining * 1e6))}
        return pb_utils.InferenceRequest(
            model_name=self._model,
            requested_output_names=[RANKER_OUTPUT],
            inputs=[
                pb_utils.Tensor(RANKER_INPUTS[0], ids),
                pb_utils.Tensor(RANKER_INPUTS[1], mask),
            ],
            **options,
        )

    def _parse(self, response, rows):
        out = _answer(response, f"the ranker model {self._model}", RANKER_OUTPUT)
        if out.ndim != 2 or out.shape[0] != rows or out.shape[1] < 1:
            raise ScorerError(f"the ranker model {self._model} answered a {out.shape} tensor")
        return np.array(out, dtype=np.float32)


class MissingRanker:
    """The ranker of a repository that serves none: question-aware requests get the fix."""

    name = "none"

    def __init__(self, reason):
        self._reason = reason

    def bound(self, loop, deadline):
        return self

    def embed(self, texts):
        raise ScorerUnavailableError(
            f"tersify_compress has no ranker ({self._reason}): export it with `tersify export "
            "--model all-minilm-l6-v2` and write the repository again (`tersify triton start` "
            'or `tersify triton repo`), or send "mode": "token" or rank_method "bm25"'
        )


async def _gather(requests):
    return await asyncio.gather(*(r.async_exec() for r in requests))


class _Unconverted:
    """A BYTES input the stub could not convert: every element is None."""

    def reshape(self, dims):
        return np.full(dims, None, dtype=np.object_)


def _stub_converts_tensors():
    """Whether the stub builds numpy arrays over tensor memory right (see the docstring)."""
    if int(np.__version__.split(".")[0]) < 2:
        return True  # every pybind11 reads numpy 1's dtypes
    # Under numpy 2, DLPack crosses right: the stub's array over the same memory must match.
    probe = pb_utils.Tensor.from_dlpack("probe", np.arange(1, 5, dtype=np.int64))
    return probe.as_numpy().tolist() == [1, 2, 3, 4]


class TritonPythonModel:
    """Compresses each request of a merged batch on its own worker thread."""

    def initialize(self, args):
        self.refusal = None
        if not _stub_converts_tensors():
            self.refusal = ScorerUnavailableError(
                f"tersify_compress cannot read or write BYTES tensors here: this Triton's "
                f"python backend stub (built with pybind11 < 2.12, as in nvidia-pytriton "
                f"0.7.0) misreads numpy {np.__version__}'s arrays; give the stub numpy < 2 "
                "(pip install --target DIR 'numpy<2', then TERSIFY_STUB_SITE_PACKAGES=DIR "
                "for tritonserver) or serve it with Triton 24.11 or later"
            )
            pb_utils.Logger.log_error(str(self.refusal))
            # The stub would parse the corrupt copy of a BYTES input and die on it.
            pb_utils.deserialize_bytes_tensor = lambda _buffer: _Unconverted()
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
        self.ranker = _ranker(parameters)
        Compressor(self.scorer, encoding=self.encoding, limits=self.limits, ranker=self.ranker)
        # One score cache for every request of this instance: documents seen before are free.
        cache_bytes = cache_bytes_parameter(parameters.get("cache_bytes", ""))
        self.cache = ScoreCache(max_bytes=cache_bytes) if cache_bytes else False
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
        if self.refusal is not None:
            return _error(self.refusal)
        try:
            text, result = self._compress(request, loop)
        except TersifyError as exc:
            return _error(exc)
        except Exception as exc:  # a bug: one line to the caller, never a traceback
            return _error(ScorerError(f"internal error in tersify_compress: {exc!r}"))
        # An object array of bytes: np.bytes_ would drop trailing NUL bytes.
        tensors = [
            pb_utils.Tensor(RESPONSE, np.array([[text]], dtype=np.object_)),
            pb_utils.Tensor(ORIGIN_TOKENS, np.array([[result.origin_tokens]], dtype=np.int64)),
            pb_utils.Tensor(
                COMPRESSED_TOKENS, np.array([[result.compressed_tokens]], dtype=np.int64)
            ),
        ]
        return pb_utils.InferenceResponse(output_tensors=tensors)

    def _compress(self, request, loop):
        tensor = pb_utils.get_input_tensor_by_name(request, REQUEST)
        values = None if tensor is None else tensor.as_numpy().reshape(-1)
        if values is None or values.size != 1 or not isinstance(values[0], bytes):
            raise BadRequestError(f"input {REQUEST!r}: send the JSON request as one BYTES element")
        raw = values[0]
        self.limits.check_body(len(raw))
        parsed = CompressRequest.from_json(raw)
        deadline = Deadline(self.timeout_s)
        compressor = Compressor(
            self.scorer.bound(loop, deadline),
            encoding=self.encoding,
            limits=self.limits,
            cache=self.cache,
            ranker=self.ranker.bound(loop, deadline),
        )
        result = compress(parsed, compressor, deadline=deadline)
        # What `tersify compress` prints, byte for byte.
        text = json.dumps(answer(result, self.price_per_1k), ensure_ascii=False, indent=4) + "\n"
        return text.encode("utf-8"), result


def _ranker(parameters):
    """The ranker model's BLS client; a refusing one where the repository has no ranker."""
    model = parameters.get("ranker_model", "")
    if not model:
        return MissingRanker("the repository was written without tersify_ranker")
    try:
        bundle = Bundle.open(
            resolve_ranker_folder(parameters.get("ranker") or None, Settings.from_env())
        )
        lengths = tuple(sorted(int(n) for n in parameters["ranker_padded_lengths"].split(",")))
        return BlsRanker(
            bundle,
            model=model,
            lengths=lengths,
            max_batch=int(parameters.get("ranker_max_batch_size") or 16),
        )
    except (TersifyError, KeyError, ValueError) as exc:
        pb_utils.Logger.log_warn(f"tersify_compress ranks nothing: {exc}")
        return MissingRanker(str(exc))


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
