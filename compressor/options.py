"""LLMLingua's option names, mapped once to tersify's filters; presets for the JSON request.

Every front that speaks LLMLingua's names (``PromptCompressor.compress_prompt``, the JSON
request of ``tersify compress`` and ``POST /compress``) maps them here, so an option means
the same and is checked the same wherever it arrives. Each :class:`Option` carries its
default and its JSON schema: the HTTP schema is generated from this table.

Presets for people who don't want twelve knobs (explicit options override them):

- ``"auto"`` (the default of the JSON request, the CLI and ``Compressor``): ``question-aware``
  when the request has a question and two or more contexts, ``token`` otherwise;
- ``"token"``: LLMLingua's token-level pruning of everything given;
- ``"question-aware"``: documents and their sentences ranked against the question by the
  ranker (``sentbert``: a sentence-embedding model, with BM25 beside it), the most relevant
  sentences kept whole, best documents first (``sort``); only the documents that keep
  something reach the scorer, which trims the last sentence to the exact budget;
- ``"longllmlingua"``: LongLLMLingua's own recommended settings (contexts ranked by how
  well they predict the question, dynamic ratio 0.3, conditioned and contrastive tokens).

``PromptCompressor.compress_prompt`` keeps LLMLingua's own defaults (no preset).

>>> settings = resolve({"mode": "longllmlingua", "reorder_context": "two_stage"})
>>> settings["rank_method"], settings["reorder_context"], settings["condition_compare"]
('longllmlingua', 'two_stage', True)
>>> chosen_mode({}, question="Why?", contexts=2), chosen_mode({}, question="", contexts=2)
('question-aware', 'token')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from tersify.coarse import RANK_METHODS, REORDERS, ContextFilter, Reorder
from tersify.errors import BadRequestError, UnsupportedOptionError
from tersify.sentences import MAX_BUDGET_RATIO, SentenceFilter
from tersify.tokens import TokenFilter
from tersify.validate import choice, fraction, non_negative_int, number, show, text

_CONDITIONS = ("none", "before", "after", "none_condition", "before_condition", "after_condition")


@dataclass(frozen=True)
class Option:
    """One LLMLingua option: its default (LLMLingua 0.2.2's), JSON schema and meaning."""

    name: str
    default: Any
    schema: Mapping[str, Any]
    description: str
    extra: Mapping[str, Any] = field(default_factory=dict)

    def json_schema(self) -> dict[str, Any]:
        """The option's JSON schema with its default and description."""
        default = list(self.default) if isinstance(self.default, tuple) else self.default
        return {**self.schema, "default": default, "description": self.description}


_INT = {"type": "integer", "minimum": 0}
_BOOL = {"type": "boolean"}
OPTIONS: tuple[Option, ...] = (
    Option("use_context_level_filter", True, _BOOL,
           "rank the contexts and keep the best before token-level pruning (several contexts)"),
    Option("rank_method", "llmlingua", {"enum": list(RANK_METHODS)},
           "how contexts are ranked: by the question with a sentence-embedding ranker and "
           "BM25 (sentbert), by the question's log-likelihood (longllmlingua), perplexity "
           "(llmlingua), or BM25"),
    Option("context_budget", "+100",
           {"type": "string", "pattern": r"^\s*[+\-*]\s*[0-9]{1,9}(\.[0-9]{1,6})?\s*$"},
           "tokens the kept contexts may total, relative to the budget: '+100', '-50', '*1.5'"),
    Option("force_context_ids", (), {"type": "array", "items": _INT},
           "contexts always kept, by index"),
    Option("reorder_context", "original", {"enum": list(REORDERS)},
           "order of kept contexts: as given, best first (sort), or best at both ends"),
    Option("dynamic_context_compression_ratio", 0.0, {"type": "number", "minimum": 0, "maximum": 1},
           "how much more better-ranked contexts keep (0: all the same rate)"),
    Option("condition_in_question", "none", {"enum": list(_CONDITIONS)},
           "where the question goes when ranking contexts (before/after); with "
           "'_condition', tokens are also scored given the question"),
    Option("condition_compare", False, _BOOL,
           "score tokens by how much the question makes them more predictable (contrastive)"),
    Option("use_sentence_level_filter", False, _BOOL,
           "keep the most informative sentences first"),
    Option("keep_first_sentence", 0, _INT, "sentences always kept at each context's start"),
    Option("keep_last_sentence", 0, _INT, "sentences always kept at each context's end"),
    Option("keep_sentence_number", 0, _INT, "at most this many sentences per context (0: any)"),
    Option("token_budget_ratio", 1.4, {"type": "number", "minimum": 1, "maximum": 100},
           "the kept sentences may total this many times the budget"),
    Option("force_tokens", (), {"type": "array", "items": {"type": "string", "minLength": 1}},
           "units holding any of these strings are always kept"),
    Option("force_reserve_digit", False, _BOOL, "units holding a digit are always kept"),
    Option("keep_newlines", False, _BOOL, "units holding a line break are always kept"),
    Option("iterative", False, _BOOL,
           "score each window given what earlier windows kept (LLMLingua's iterative mode)"),
    Option("keep_relevant_sentences", False, _BOOL,
           "with rank_method='sentbert': keep whole sentences, the most relevant to the "
           "question first; the scorer trims only the last one to the budget"),
)
BY_NAME: Mapping[str, Option] = {o.name: o for o in OPTIONS}

# LLMLingua 0.2.2's compress_prompt options that tersify does not implement yet, with the
# value that means "off" there: any other value is refused, never silently ignored.
NOT_YET: Mapping[str, Any] = {
    "force_context_number": None,
    "use_token_level_filter": True,
    "keep_split": False,
    "high_priority_bonus": 100,
    "add_instruction": False,
    "context_segs": None,
    "context_segs_rate": None,
    "context_segs_compress": None,
    "target_context": -1,
    "context_level_rate": 1.0,
    "context_level_target_token": -1,
    "return_word_label": False,
    "word_sep": "\t\t|\t\t",
    "label_sep": " ",
    "token_to_word": "mean",
    "drop_consecutive": False,
    "chunk_end_tokens": (".", "\n"),
    "strict_preserve_uncompressed": True,
}

Mode = Literal["auto", "token", "question-aware", "longllmlingua"]
MODES: tuple[Mode, ...] = ("auto", "token", "question-aware", "longllmlingua")
DEFAULT_MODE: Mode = "auto"
PRESETS: Mapping[str, Mapping[str, Any]] = {
    "token": {"use_context_level_filter": False},
    "question-aware": {
        "use_context_level_filter": True,
        "rank_method": "sentbert",
        "reorder_context": "sort",
        "keep_relevant_sentences": True,
    },
    "longllmlingua": {
        "use_context_level_filter": True,
        "rank_method": "longllmlingua",
        "condition_in_question": "after_condition",
        "reorder_context": "sort",
        "dynamic_context_compression_ratio": 0.3,
        "condition_compare": True,
    },
}


@dataclass(frozen=True)
class Filters:
    """What LLMLingua's options ask of tersify's three filters."""

    context: ContextFilter | None
    sentence: SentenceFilter | None
    token: TokenFilter


def chosen_mode(given: Mapping[str, Any], *, question: str, contexts: int) -> str:
    """The preset a request runs: its ``mode``, with ``auto`` decided by what it holds.

    ``auto`` is ``question-aware`` for a question over two or more contexts (a RAG request),
    ``token`` otherwise (one document: nothing to rank).
    """
    mode = choice("mode", given.get("mode", DEFAULT_MODE), MODES)
    if mode != "auto":
        return mode
    return "question-aware" if question and contexts >= 2 else "token"


def resolve(given: Mapping[str, Any], *, mode: str | None = None) -> dict[str, Any]:
    """Defaults, then the preset (``mode`` or ``given["mode"]``), then explicit options.

    ``auto`` resolves as ``token`` here; :func:`chosen_mode` decides it per request.
    Unknown names are a :class:`BadRequestError`; LLMLingua options tersify does not do
    are an :class:`UnsupportedOptionError` unless left at LLMLingua's default.
    """
    settings = {o.name: o.default for o in OPTIONS}
    chosen = given.get("mode", mode)
    if chosen is not None:
        chosen = choice("mode", chosen, MODES)
        settings.update(PRESETS["token" if chosen == "auto" else chosen])
    for name, value in given.items():
        if name == "mode":
            continue
        if name in BY_NAME:
            settings[name] = value
        elif name in NOT_YET:
            if not _is_default(value, NOT_YET[name]):
                raise UnsupportedOptionError(
                    f"{name}={show(value)} is not supported by tersify yet; leave it at its "
                    f"default ({NOT_YET[name]!r})"
                )
        else:
            raise BadRequestError(f"unknown option {name!r}; known options: {', '.join(BY_NAME)}")
    return settings


def filters(settings: Mapping[str, Any]) -> Filters:
    """The filters that resolved ``settings`` ask for, every value checked."""
    condition = choice("condition_in_question", settings["condition_in_question"], _CONDITIONS)
    base = condition.removesuffix("_condition")
    rank_method = settings["rank_method"]
    if rank_method not in RANK_METHODS:
        raise UnsupportedOptionError(
            f"rank_method={show(rank_method)} is not supported; tersify ranks contexts with "
            f"{', '.join(RANK_METHODS)}"
        )
    forced_ids = _int_list("force_context_ids", settings["force_context_ids"])
    context = None
    if _flag(settings, "use_context_level_filter"):
        context = ContextFilter(
            rank_method=rank_method,
            context_budget=text("context_budget", settings["context_budget"]),
            force_context_ids=forced_ids,
            reorder=cast(Reorder, choice("reorder_context", settings["reorder_context"], REORDERS)),
            dynamic_ratio=fraction(
                "dynamic_context_compression_ratio", settings["dynamic_context_compression_ratio"]
            ),
            question_placement="before" if base == "before" else "after",
            keep_sentences=_flag(settings, "keep_relevant_sentences"),
        )
    elif forced_ids:
        raise BadRequestError("force_context_ids needs use_context_level_filter=True")
    elif _flag(settings, "keep_relevant_sentences"):
        raise BadRequestError(
            "keep_relevant_sentences needs use_context_level_filter=True and rank_method='sentbert'"
        )
    token = TokenFilter(
        condition_on_question=condition.endswith("_condition"),
        contrastive=_flag(settings, "condition_compare"),
        force_tokens=tuple(_str_list("force_tokens", settings["force_tokens"])),
        force_digits=_flag(settings, "force_reserve_digit"),
        keep_newlines=_flag(settings, "keep_newlines"),
        iterative=_flag(settings, "iterative"),
    )
    return Filters(context=context, sentence=_sentence_filter(settings), token=token)


def _sentence_filter(settings: Mapping[str, Any]) -> SentenceFilter | None:
    names = ("keep_first_sentence", "keep_last_sentence", "keep_sentence_number")
    counts = [non_negative_int(n, settings[n]) for n in names]
    ratio = number("token_budget_ratio", settings["token_budget_ratio"])
    if not 1 <= ratio <= MAX_BUDGET_RATIO:
        raise BadRequestError(
            f"token_budget_ratio={ratio} must be between 1 and {MAX_BUDGET_RATIO:g}"
        )
    if not _flag(settings, "use_sentence_level_filter"):
        given = [n for n, c in zip(names, counts, strict=True) if c]
        if given:
            raise BadRequestError(f"{given[0]} needs use_sentence_level_filter=True")
        return None
    return SentenceFilter(
        keep_first=counts[0], keep_last=counts[1], keep_number=counts[2], budget_ratio=ratio
    )


def _flag(settings: Mapping[str, Any], name: str) -> bool:
    value = settings[name]
    if not isinstance(value, bool):
        raise BadRequestError(f"{name}={show(value)} must be true or false")
    return value


def _int_list(name: str, value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise BadRequestError(f"{name}={show(value)} must be a list of context indices")
    return tuple(non_negative_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def _str_list(name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise BadRequestError(f"{name}={show(value)} must be a list of strings")
    return [text(f"{name}[{i}]", v) for i, v in enumerate(value)]


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and tuple(value) == default
    if default is None or isinstance(default, bool):
        return value is default
    return not isinstance(value, bool) and bool(value == default)
