"""LLMLingua-compatible front: ``from tersify import PromptCompressor``.

Code written for LLMLingua 0.2.2 keeps working by changing the import::

    >>> from tersify import PromptCompressor
    >>> llm_lingua = PromptCompressor()  # doctest: +SKIP
    >>> llm_lingua.compress_prompt(context, question=q, rate=0.5)  # doctest: +SKIP
    {'compressed_prompt': ..., 'origin_tokens': ..., 'compressed_tokens': ...,
     'ratio': '2.0x', 'rate': '50.0%', 'saving': ', Saving $0.1 in GPT-4.'}

Every LLMLingua parameter is accepted by name. These work as in LLMLingua: the coarse
level (``rank_method`` = ``llmlingua``, ``longllmlingua`` or ``bm25``,
``context_budget``, ``force_context_ids``, ``reorder_context``,
``dynamic_context_compression_ratio``), the sentence level
(``use_sentence_level_filter``, ``keep_first_sentence``, ``keep_last_sentence``,
``keep_sentence_number``, ``token_budget_ratio``) and the token level
(``condition_in_question``, ``condition_compare``, ``force_tokens``,
``force_reserve_digit``). ``iterative_size`` changes nothing (tersify scores fixed
windows and lands on the budget exactly). The rest raise
:class:`UnsupportedOptionError` when given a non-default value, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tersify.coarse import RANK_METHODS, ContextFilter
from tersify.compressor import DEFAULT_PRICE_PER_1K, Compressor
from tersify.errors import BadRequestError, UnsupportedOptionError
from tersify.recover import recover
from tersify.request import answer
from tersify.scoring import Scorer
from tersify.sentences import SentenceFilter
from tersify.tokens import TokenFilter

# LLMLingua 0.2.2's compress_prompt options that tersify does not implement yet, with
# the value that means "off" there: any other value is refused.
_NOT_YET: Mapping[str, Any] = {
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
# Options tersify implements, with LLMLingua's defaults.
_SUPPORTED: Mapping[str, Any] = {
    "use_context_level_filter": True,
    "rank_method": "llmlingua",
    "context_budget": "+100",
    "force_context_ids": None,
    "reorder_context": "original",
    "dynamic_context_compression_ratio": 0.0,
    "condition_in_question": "none",
    "condition_compare": False,
    "force_tokens": (),
    "force_reserve_digit": False,
    "use_sentence_level_filter": False,
    "keep_first_sentence": 0,
    "keep_last_sentence": 0,
    "keep_sentence_number": 0,
    # How much more than the budget the kept sentences may hold (sentence filter only).
    "token_budget_ratio": 1.4,
    # False: the question guides compression but is left out of the compressed prompt.
    "concate_question": True,
    # LLMLingua's KV-cache step: tersify scores fixed windows, so it changes nothing.
    "iterative_size": 200,
}
_CONDITIONS = ("none", "before", "after")
_LLMLINGUA_DEFAULT_MODEL = "NousResearch/Llama-2-7b-hf"


class PromptCompressor:
    """LLMLingua's ``PromptCompressor``, backed by a tersify scorer.

    ``model_name`` is a tersify scorer (model name or exported folder); LLMLingua's default
    model name selects tersify's default scorer. ``device_map`` picks onnxruntime's
    execution provider (``"cpu"`` or ``"cuda"``).
    """

    def __init__(
        self,
        model_name: str | Scorer = _LLMLINGUA_DEFAULT_MODEL,
        device_map: str = "cuda",
        model_config: Mapping[str, Any] | None = None,
        open_api_config: Mapping[str, Any] | None = None,
        use_llmlingua2: bool = False,
        llmlingua2_config: Mapping[str, Any] | None = None,
        *,
        price_per_1k: float = DEFAULT_PRICE_PER_1K,
    ) -> None:
        if use_llmlingua2 or llmlingua2_config:
            raise UnsupportedOptionError(
                "use_llmlingua2: LLMLingua-2's token classifier is not supported; "
                "tersify compresses with a causal LM scorer (use_llmlingua2=False)"
            )
        if model_config:
            raise UnsupportedOptionError(
                "model_config: transformers loading options do not apply to an exported "
                "ONNX scorer; export the model with `tersify export` instead"
            )
        if open_api_config:
            raise UnsupportedOptionError("open_api_config: OpenAI-based scoring is not supported")
        if device_map not in ("cuda", "cpu", "auto", "mps"):
            raise BadRequestError(f"device_map={device_map!r} must be 'cuda', 'cpu' or 'auto'")
        if isinstance(model_name, str) and model_name == _LLMLINGUA_DEFAULT_MODEL:
            scorer: Scorer | str | None = None
        else:
            scorer = model_name
        if isinstance(scorer, str) or scorer is None:
            providers = ["CPUExecutionProvider"] if device_map == "cpu" else None
            scorer = Compressor.open(scorer, providers=providers)
        self._compressor = Compressor(scorer)
        self._price = price_per_1k

    @property
    def compressor(self) -> Compressor:
        """The :class:`tersify.Compressor` behind this front."""
        return self._compressor

    def recover(self, original_prompt: str, compressed_prompt: str, response: str) -> str:
        """LLMLingua's ``recover``: expand compressed fragments quoted in ``response``."""
        return recover(original_prompt, compressed_prompt, response)

    def compress_prompt(
        self,
        context: str | Sequence[str],
        instruction: str = "",
        question: str = "",
        rate: float = 0.5,
        target_token: float = -1,
        **options: Any,
    ) -> dict[str, Any]:
        """Compress like LLMLingua 0.2.2 and answer with its keys and display strings."""
        settings = dict(_SUPPORTED)
        for name, value in options.items():
            if name in _SUPPORTED:
                settings[name] = value
            elif name not in _NOT_YET:
                raise BadRequestError(
                    f"compress_prompt() got an unexpected keyword argument {name!r}"
                )
            elif not _is_default(value, _NOT_YET[name]):
                raise UnsupportedOptionError(
                    f"{name}={value!r} is not supported by tersify yet; leave it at its "
                    f"default ({_NOT_YET[name]!r})"
                )
        context_filter, token_filter = _filters(settings)
        sentence_filter = _sentence_filter(settings)
        result = self._compressor.compress(
            context,
            question=question,
            instruction=instruction,
            rate=rate,
            target_token=_target(target_token),
            context_filter=context_filter,
            sentence_filter=sentence_filter,
            token_filter=token_filter,
        )
        if not settings["concate_question"] and question:
            prompt = result.compressed_prompt.removesuffix(question).removesuffix("\n\n")
            result = replace(
                result, compressed_prompt=prompt, compressed_tokens=self._compressor.count(prompt)
            )
        return dict(answer(result, self._price)["data"])

    def structured_compress_prompt(
        self,
        context: str | Sequence[str],
        instruction: str = "",
        question: str = "",
        rate: float = 0.5,
        target_token: float = -1,
        **options: Any,
    ) -> dict[str, Any]:
        """LLMLingua's structured compression: ``<llmlingua, rate=..., compress=...>`` tags.

        Token-level options (``force_tokens``, ``force_reserve_digit``,
        ``condition_in_question`` with ``_condition``, ``condition_compare``) apply.
        """
        unknown = sorted(
            set(options)
            - {
                "force_tokens",
                "force_reserve_digit",
                "condition_in_question",
                "condition_compare",
                "iterative_size",
            }
        )
        if unknown:
            raise UnsupportedOptionError(
                f"{unknown[0]} is not supported by structured_compress_prompt in tersify"
            )
        settings = {**_SUPPORTED, **options, "use_context_level_filter": False}
        _, token_filter = _filters(settings)
        text = context if isinstance(context, str) else "".join(context)
        result = self._compressor.compress_segments(
            text,
            question=question,
            instruction=instruction,
            rate=rate,
            target_token=_target(target_token),
            token_filter=token_filter,
        )
        return dict(answer(result, self._price)["data"])


def _target(target_token: object) -> int | None:
    """LLMLingua's ``target_token`` (-1: unset) as tersify's (None: unset)."""
    if isinstance(target_token, bool) or not isinstance(target_token, (int, float)):
        raise BadRequestError(f"target_token={target_token!r} must be a number")
    return int(target_token) if target_token > 0 else None


def _sentence_filter(settings: Mapping[str, Any]) -> SentenceFilter | None:
    names = ("keep_first_sentence", "keep_last_sentence", "keep_sentence_number")
    if not settings["use_sentence_level_filter"]:
        given = [n for n in names if settings[n]]
        if given:
            raise BadRequestError(f"{given[0]} needs use_sentence_level_filter=True")
        return None
    return SentenceFilter(
        keep_first=settings["keep_first_sentence"],
        keep_last=settings["keep_last_sentence"],
        keep_number=settings["keep_sentence_number"],
        budget_ratio=float(settings["token_budget_ratio"]),
    )


def _filters(settings: Mapping[str, Any]) -> tuple[ContextFilter | None, TokenFilter]:
    """LLMLingua's options as tersify's context and token filters."""
    condition = settings["condition_in_question"]
    base = condition.removesuffix("_condition") if isinstance(condition, str) else None
    if base not in _CONDITIONS:
        raise BadRequestError(
            f"condition_in_question={condition!r} must be one of none, before, after, "
            "optionally with '_condition' (e.g. 'after_condition')"
        )
    rank_method = settings["rank_method"]
    if rank_method not in RANK_METHODS:
        raise UnsupportedOptionError(
            f"rank_method={rank_method!r} is not supported; tersify ranks contexts with "
            f"{', '.join(RANK_METHODS)}"
        )
    forced_ids = settings["force_context_ids"] or ()
    context_filter = None
    if settings["use_context_level_filter"]:
        context_filter = ContextFilter(
            rank_method=rank_method,
            context_budget=str(settings["context_budget"]),
            force_context_ids=tuple(forced_ids),
            reorder=settings["reorder_context"],
            dynamic_ratio=float(settings["dynamic_context_compression_ratio"]),
            question_placement="before" if base == "before" else "after",
        )
    elif forced_ids:
        raise BadRequestError("force_context_ids needs use_context_level_filter=True")
    token_filter = TokenFilter(
        condition_on_question=isinstance(condition, str) and condition.endswith("_condition"),
        contrastive=bool(settings["condition_compare"]),
        force_tokens=tuple(settings["force_tokens"] or ()),
        force_digits=bool(settings["force_reserve_digit"]),
    )
    return context_filter, token_filter


def _is_default(value: Any, default: Any) -> bool:
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and tuple(value) == default
    if default is None or isinstance(default, bool):
        return value is default
    return not isinstance(value, bool) and bool(value == default)
