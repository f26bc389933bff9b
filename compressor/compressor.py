"""The public entry point: ``Compressor`` and its frozen ``CompressionResult``.

Three entry points (``compress``, ``compress_segments``, ``compress_json``) say what to
compress as a :class:`_Job`; one sequence (:meth:`Compressor._run`) does the rest:
check limits, size the budget, score, rank contexts, fit, explain, answer.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
import tiktoken

from tersify.assemble import Assembler, BoolArray, join_prompt
from tersify.budget import Budget
from tersify.cache import CachedScorer, ScoreCache
from tersify.coarse import ContextFilter
from tersify.encoding import DEFAULT_ENCODING, count_tokens, load_encoding
from tersify.errors import BadRequestError
from tersify.explain import ContextExplanation, Explanation, ScoreKind, explain
from tersify.limits import Deadline, Limits
from tersify.metering import Metered
from tersify.options import DEFAULT_MODE, MODES, Filters, chosen_mode, filters, resolve
from tersify.scoring import FloatArray, Ranker, Scorer, Units
from tersify.selection import Selection
from tersify.sentences import SentenceFilter
from tersify.structured import JsonLayout, Segment, parse_tagged
from tersify.tokens import TokenFilter
from tersify.validate import choice, text, texts
from tersify.windows import WindowPlan

if TYPE_CHECKING:
    from typing import Unpack

DEFAULT_PRICE_PER_1K = 0.06  # USD per 1,000 target tokens: GPT-4's input price


class RunOptions(TypedDict, total=False):
    """The options every entry point takes beside what it compresses (all keyword-only).

    ``rate``, ``ratio`` or ``target_token``: the budget (:class:`~tersify.budget.Budget`;
    half is kept when none is given); ``token_filter``: how units are scored and which are
    always kept; ``deadline``: stops the work when it passes or is cancelled; ``explain``:
    add what was kept and why (:class:`tersify.explain.Explanation`).
    """

    rate: float | None
    ratio: float | None
    target_token: int | None
    token_filter: TokenFilter | None
    deadline: Deadline | None
    explain: bool


@dataclass(frozen=True)
class _Run:
    """One call's :class:`RunOptions`, checked: what :meth:`Compressor._run` works to."""

    rate: float | None = None
    ratio: float | None = None
    target_token: int | None = None
    token_filter: TokenFilter | None = None
    deadline: Deadline | None = None
    explain: bool = False

    @classmethod
    def of(cls, entry: str, options: dict[str, Any]) -> _Run:
        """The options passed to ``entry``; an unknown one fails as Python's own would."""
        known = RunOptions.__optional_keys__
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"{entry}() got an unexpected keyword argument {unknown[0]!r}")
        return cls(
            rate=options.get("rate"),
            ratio=options.get("ratio"),
            target_token=options.get("target_token"),
            token_filter=options.get("token_filter"),
            deadline=options.get("deadline"),
            explain=bool(options.get("explain", False)),
        )


@dataclass(frozen=True)
class CompressionResult:
    """What a compression gives back: text and numbers, no display strings.

    ``origin_tokens`` and ``compressed_tokens`` are counted in the target LLM's tokens
    (``encoding``); ``target_tokens`` is the budget the request asked for.
    ``scorer_tokens`` are the ids the scorer computed log-probs for (BOS, question
    prefixes and window overlaps included); ``explanation`` is there when asked for.
    """

    compressed_prompt: str
    origin_tokens: int
    compressed_tokens: int
    target_tokens: int
    encoding: str
    scorer_tokens: int = 0
    scorer_seconds: float = 0.0
    total_seconds: float = 0.0
    # Indices of the contexts in the compressed prompt, in its order (empty: unchanged).
    context_order: tuple[int, ...] = ()
    # The preset that ran: "token", "question-aware", "longllmlingua" ("auto" decides).
    mode: str = "token"
    explanation: Explanation | None = field(default=None, compare=False)

    @property
    def rate(self) -> float:
        """The fraction kept, ``compressed / origin`` (LLMLingua's ``rate``)."""
        return self.compressed_tokens / self.origin_tokens if self.origin_tokens else 1.0

    @property
    def ratio(self) -> float:
        """The compression factor, ``origin / compressed`` (LLMLingua's ``"4.0x"``)."""
        return self.origin_tokens / self.compressed_tokens if self.compressed_tokens else 0.0

    def saving_usd(self, price_per_1k: float = DEFAULT_PRICE_PER_1K) -> float:
        """Dollars saved per call at ``price_per_1k`` dollars per 1,000 target tokens."""
        return (self.origin_tokens - self.compressed_tokens) * price_per_1k / 1000


@dataclass(frozen=True)
class _Job:
    """What one entry point asks to compress, before any scoring.

    ``texts`` are the compressible pieces (contexts, segments, JSON strings); ``render``
    turns each piece's kept text into the whole prompt; ``frozen`` pieces are kept whole;
    ``rates`` give pieces their own rate, relative to the prompt's (``None``: the prompt's).
    """

    texts: list[str]
    question: str
    render: Callable[[list[str]], str]
    frozen: Collection[int] = ()
    rates: Sequence[float | None] | None = None
    verbatim_parts: str = "instruction and question"
    mode: str = "token"



class Compressor:
    """Token-level prompt compression (LLMLingua) with exact budget control.

    ``scorer`` is a :class:`tersify.scoring.Scorer`, or where to find one: ``None`` for the
    embedded default, a model name (``"gemma-3-270m"``), an exported scorer's folder, or a
    Triton URL (``grpc://HOST:PORT``). ``limits`` bound every request (contexts, scorer
    tokens). ``cache`` keeps the log-probs of windows seen before (a document retrieved
    again costs almost nothing, with the same output): ``True`` gives this compressor its
    own in-memory :class:`~tersify.cache.ScoreCache`, a ``ScoreCache`` is shared (or kept
    on disk), ``False`` scores every window every time. ``variant`` picks an exported
    variant (``"fp32"``: onnxruntime, as before variants); by default the fastest one the
    export checked that this machine runs. ``ranker`` ranks documents and sentences against
    the question (``rank_method="sentbert"``, question-aware mode): a
    :class:`tersify.scoring.Ranker`, or where to find one (``None``: the default ranker,
    over Triton when ``scorer`` is a Triton URL); it is opened when first needed.

    >>> compressor = Compressor()  # doctest: +SKIP
    >>> compressor.compress(["A long document ..."], question="Why?", rate=0.5)  # doctest: +SKIP
    """

    def __init__(
        self,
        scorer: Scorer | str | os.PathLike[str] | None = None,
        *,
        encoding: str | tiktoken.Encoding = DEFAULT_ENCODING,
        window: WindowPlan | None = None,
        limits: Limits | None = None,
        cache: bool | ScoreCache = True,
        variant: str | None = None,
        ranker: Ranker | str | os.PathLike[str] | None = None,
    ) -> None:
        if ranker is None and isinstance(scorer, str) and "://" in scorer:
            ranker = scorer  # a remote scorer: rank on the same Triton
        if ranker is not None and not isinstance(ranker, (str, os.PathLike, Ranker)):
            raise BadRequestError(
                f"ranker={ranker!r} is not a Ranker: pass None, a model name, a folder, a "
                "Triton URL, or an object with embed()"
            )
        self._ranker_spec = ranker
        self._ranker: Ranker | None = ranker if isinstance(ranker, Ranker) else None
        if scorer is None or isinstance(scorer, (str, os.PathLike)):
            scorer = self.open(scorer, variant=variant)
        elif variant is not None:
            raise BadRequestError(
                f"variant={variant!r} applies to a scorer tersify opens (a name or a folder), "
                "not to a Scorer object"
            )
        if not isinstance(scorer, Scorer):
            raise BadRequestError(
                f"scorer={scorer!r} is not a Scorer: pass None, a model name, a folder, "
                "or an object with tokenize() and logprobs()"
            )
        if inspect.iscoroutinefunction(scorer.logprobs):
            raise BadRequestError(
                f"scorer={type(scorer).__name__} is asynchronous (its logprobs() is a "
                "coroutine); Compressor needs a synchronous scorer such as TritonScorer"
            )
        if not isinstance(cache, (bool, ScoreCache)):
            raise BadRequestError(f"cache={cache!r}: pass True, False or a ScoreCache")
        self._scorer: Scorer = scorer.inner if isinstance(scorer, CachedScorer) else scorer
        # What compressions score with: the scorer behind the score cache, unless asked not to.
        self._scoring: Scorer = scorer
        if cache is not False and not isinstance(scorer, CachedScorer):
            self._scoring = CachedScorer(scorer, None if cache is True else cache)
        self._encoding = (
            encoding if isinstance(encoding, tiktoken.Encoding) else load_encoding(encoding)
        )
        self._window = window or WindowPlan()
        self._limits = limits or Limits()

    @staticmethod
    def open(spec: str | os.PathLike[str] | None = None, **options: Any) -> Scorer:
        """Open the scorer ``spec`` names: the one door from the core to ``tersify.client``.

        ``None`` is the default scorer; a name is an export under ``TERSIFY_HOME``; a
        folder an exported scorer; ``grpc://HOST:PORT`` Triton. ``options`` go to
        :func:`tersify.client.open_scorer` (``variant``, ``providers``).
        """
        from tersify.client import open_scorer  # the transport loads only when asked for

        return open_scorer(spec, **options)

    def ranker(self) -> Ranker:
        """The ranker of question-aware compression, opened on first use."""
        if self._ranker is None:
            from tersify.client.ranker import open_ranker  # the transport loads only when asked

            spec = self._ranker_spec
            self._ranker = open_ranker(None if isinstance(spec, Ranker) else spec)
        return self._ranker

    @property
    def scorer(self) -> Scorer:
        """The scorer that gives this compressor its log-probs (behind the cache, if any).

        Its own attributes stay reachable: a Triton scorer's ``is_ready()`` says whether the
        server answers, which a cache in front must not hide.
        """
        return self._scorer

    @property
    def cache(self) -> ScoreCache | None:
        """The score cache in front of the scorer, or ``None`` when caching is off."""
        return self._scoring.cache if isinstance(self._scoring, CachedScorer) else None

    @property
    def limits(self) -> Limits:
        """The limits every request is checked against."""
        return self._limits

    def count(self, text: str) -> int:
        """``text``'s size in target tokens."""
        return count_tokens(self._encoding, text)

    def compress(
        self,
        context: str | Sequence[str],
        *,
        question: str = "",
        instruction: str = "",
        context_filter: ContextFilter | None = None,
        sentence_filter: SentenceFilter | None = None,
        mode: str = DEFAULT_MODE,
        **options: Unpack[RunOptions],
    ) -> CompressionResult:
        """Compress ``context`` so the whole prompt fits the budget; keep the rest verbatim.

        The budget covers the whole prompt, instruction and question included (both are
        kept as they are). With no budget given, half is kept (``rate=0.5``).
        ``mode`` is a preset (:mod:`tersify.options`): ``"auto"`` is question-aware for a
        question over two or more contexts and token-level otherwise. Filters given here
        replace the preset's: ``context_filter`` first keeps and reorders the contexts that
        matter most (with several contexts); ``sentence_filter`` then keeps the most
        informative sentences; ``token_filter`` changes how units are scored and which are
        always kept. The budget, ``deadline`` and ``explain`` are :class:`RunOptions`.
        """
        run = _Run.of("compress", dict(options))
        token_filter = run.token_filter
        contexts = texts("context", context)
        question, instruction = text("question", question), text("instruction", instruction)
        ran = chosen_mode(
            {"mode": choice("mode", mode, MODES)}, question=question, contexts=len(contexts)
        )
        if context_filter is None and sentence_filter is None and token_filter is None:
            preset: Filters = filters(resolve({}, mode=ran))
            context_filter, sentence_filter = preset.context, preset.sentence
            token_filter = preset.token
        elif mode == "auto":
            ran = "custom"  # the caller's own filters, not a preset

        def render(parts: list[str]) -> str:
            return join_prompt(instruction, parts, question)

        job = _Job(texts=contexts, question=question, render=render, mode=ran)
        return self._run(
            job,
            replace(run, token_filter=token_filter),
            context_filter=context_filter if len(contexts) > 1 else None,
            sentence_filter=sentence_filter,
        )

    def compress_segments(
        self,
        segments: str | Sequence[Segment],
        *,
        question: str = "",
        instruction: str = "",
        **options: Unpack[RunOptions],
    ) -> CompressionResult:
        """Compress one prompt made of segments, each with its own rate or kept as it is.

        ``segments`` is a list of :class:`Segment` or a string with LLMLingua's
        ``<llmlingua, rate=...>`` / ``<llmlingua, compress=False>`` tags. Segments with
        ``compress=False`` are kept byte for byte; the prompt lands on its budget.
        The budget, ``token_filter``, ``deadline`` and ``explain`` are :class:`RunOptions`.
        """
        run = _Run.of("compress_segments", dict(options))
        parts = parse_tagged(text("segments", segments)) if isinstance(segments, str) else segments
        if isinstance(parts, (str, bytes)) or not isinstance(parts, Sequence):
            raise BadRequestError("segments must be a tagged string or a list of Segment")
        if any(not isinstance(p, Segment) for p in parts):
            raise BadRequestError("segments must be Segment objects or a tagged string")
        pieces = texts("segments", [p.text for p in parts])
        question, instruction = text("question", question), text("instruction", instruction)

        def render(kept: list[str]) -> str:
            return join_prompt(instruction, ["".join(kept)], question)

        job = _Job(
            texts=pieces,
            question=question,
            render=render,
            frozen={i for i, p in enumerate(parts) if not p.compress},
            rates=[p.rate for p in parts],
            verbatim_parts="instruction, question and compress=False segments",
        )
        return self._run(job, run)

    def compress_json(
        self,
        value: Any,
        *,
        keep_keys: Sequence[str] = (),
        **options: Unpack[RunOptions],
    ) -> CompressionResult:
        """Compress the string values of a JSON value; the result always parses.

        ``value`` is a decoded JSON value or JSON text. Keys, numbers, booleans, nulls
        and the values of ``keep_keys`` are kept; the budget counts the JSON text.
        The budget, ``token_filter``, ``deadline`` and ``explain`` are :class:`RunOptions`.
        """
        run = _Run.of("compress_json", dict(options))
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
                raise BadRequestError(f"the JSON to compress does not parse: {exc}") from exc
        if isinstance(keep_keys, str) or not isinstance(keep_keys, Sequence):
            raise BadRequestError("keep_keys must be a list of key names")
        keys = [text(f"keep_keys[{i}]", key) for i, key in enumerate(keep_keys)]
        layout = JsonLayout.of(value, keep_keys=keys)
        strings = [text(f"string {i}", s) for i, s in enumerate(layout.strings)]

        job = _Job(
            texts=strings,
            question="",
            render=layout.render,
            verbatim_parts="JSON keys and values",
        )
        return self._run(job, run)

    def _run(
        self,
        job: _Job,
        run: _Run,
        *,
        context_filter: ContextFilter | None = None,
        sentence_filter: SentenceFilter | None = None,
    ) -> CompressionResult:
        """The one compression sequence every entry point shares."""
        started = time.perf_counter()
        budget = Budget(rate=run.rate, ratio=run.ratio, target_token=run.target_token)
        explain = run.explain
        self._limits.check_contexts(len(job.texts))
        everything = list(range(len(job.texts)))
        original = job.render(job.texts)
        origin_tokens = count_tokens(self._encoding, original, coarse=True)
        target = budget.target(origin_tokens)
        if target >= origin_tokens or not any(job.texts):
            return self._result(
                original, origin_tokens, origin_tokens, target, started,
                explanation=_unchanged(job.texts) if explain else None, mode=job.mode,
            )
        verbatim = job.render([t if i in job.frozen else "" for i, t in enumerate(job.texts)])
        floor = self.count(verbatim)
        if target < floor:
            raise BadRequestError(
                f"the budget of {target} tokens is below the {floor} tokens of "
                f"{job.verbatim_parts}, which are kept verbatim: ask for at least {floor + 1}"
            )
        fraction = target / origin_tokens
        meter = Metered(self._scoring, run.deadline or Deadline())

        def count(prompt: str) -> int:
            # The budget search counts the prompts that keep every unit and none: known.
            if prompt == original:
                return origin_tokens
            return floor if prompt == verbatim else self.count(prompt)

        selection = Selection(
            meter,
            self._window,
            count,
            job.texts,
            job.question,
            run.token_filter or TokenFilter(),
            fraction,
            ranker=self.ranker,
        )
        self._limits.check_scorer_tokens(selection.n_scorer_tokens)
        order, ranked, weights, priority, scored = everything, None, None, None, None
        if job.rates is not None:
            weights = np.array([(r or fraction) / fraction for r in job.rates], dtype=np.float32)
        if context_filter is not None:
            ranking = selection.rank_contexts(context_filter, target - floor)
            order, ranked, weights = ranking.order, ranking.ranked, ranking.weights
            priority, scored = ranking.priority, ranking.scored
        units = [selection.units(i) for i in order]
        assembler = Assembler([job.texts[i] for i in order], units)

        def build(keep: BoolArray) -> str:
            return job.render(assembler.kept_parts(keep))

        fitted = selection.fit(
            order,
            build,
            target,
            weights,
            frozen=job.frozen,
            sentences=sentence_filter,
            priority=priority,
            scored=scored,
        )
        frozen_units = sum(len(u) for i, u in zip(order, units, strict=True) if i in job.frozen)
        if int(fitted.keep.sum()) <= frozen_units and frozen_units < assembler.n_units:
            raise BadRequestError(
                f"the budget of {target} tokens leaves no room for any of the text to "
                f"compress after the {floor} tokens of {job.verbatim_parts}: ask for more"
            )
        explanation = None
        if explain:
            explanation = _explain(job, selection, order, units, fitted.scores, fitted.keep, ranked)
        return self._result(
            fitted.prompt, origin_tokens, fitted.tokens, target, started,
            meter=meter, context_order=tuple(order), explanation=explanation, mode=job.mode,
        )

    def _result(
        self,
        prompt: str,
        origin_tokens: int,
        tokens: int,
        target: int,
        started: float,
        *,
        meter: Metered | None = None,
        context_order: tuple[int, ...] = (),
        explanation: Explanation | None = None,
        mode: str = "token",
    ) -> CompressionResult:
        return CompressionResult(
            compressed_prompt=prompt,
            origin_tokens=origin_tokens,
            compressed_tokens=tokens,
            target_tokens=target,
            encoding=self._encoding.name,
            scorer_tokens=meter.tokens if meter else 0,
            scorer_seconds=meter.seconds if meter else 0.0,
            total_seconds=time.perf_counter() - started,
            context_order=context_order,
            explanation=explanation,
            mode=mode,
        )


def _score_kind(token_filter: TokenFilter) -> ScoreKind:
    if token_filter.contrastive:
        return "contrastive"
    if token_filter.condition_on_question:
        return "question-conditioned surprisal"
    return "surprisal"


def _explain(
    job: _Job,
    selection: Selection,
    order: Sequence[int],
    units: list[Units],
    scores: list[FloatArray],
    keep: BoolArray,
    ranked: list[int] | None,
) -> Explanation:
    return explain(
        job.texts,
        order,
        units,
        scores,
        keep,
        ranking=ranked,
        score=_score_kind(selection.token_filter),
    )


def _unchanged(pieces: Sequence[str]) -> Explanation:
    """The explanation of a prompt that was already within its budget: all of it kept."""
    return Explanation(
        contexts=tuple(
            ContextExplanation(index=i, length=len(t), kept_runs=(len(t),) if t else (), position=i)
            for i, t in enumerate(pieces)
        )
    )
