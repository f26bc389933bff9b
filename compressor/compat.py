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
``force_reserve_digit``), plus tersify's ``keep_newlines`` and ``iterative`` (each window
scored given what earlier windows kept). ``iterative_size`` is accepted and changes
nothing: tersify's windows are sized by its ``WindowPlan``. The options are mapped in
:mod:`tersify.options`, shared with the JSON request. The rest raise
:class:`UnsupportedOptionError` when given a non-default value, never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from tersify.compressor import DEFAULT_PRICE_PER_1K, CompressionResult, Compressor
from tersify.errors import BadRequestError, UnsupportedOptionError
from tersify.options import BY_NAME, NOT_YET, filters, resolve
from tersify.recover import recover
from tersify.request import answer
from tersify.scoring import Scorer
from tersify.validate import number

# Options only this front has: LLMLingua's defaults.
_FRONT_ONLY: Mapping[str, Any] = {
    # False: the question guides compression but is left out of the compressed prompt.
    "concate_question": True,
    # LLMLingua's KV-cache step size: tersify's windows do not need it.
    "iterative_size": 200,
}
# What structured_compress_prompt takes besides the budget: token-level options only.
_STRUCTURED = frozenset(
    {"force_tokens", "force_reserve_digit", "condition_in_question", "condition_compare",
     "keep_newlines", "iterative", "iterative_size"}
)
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
        _check_names("compress_prompt", options)
        front = {**_FRONT_ONLY, **{k: v for k, v in options.items() if k in _FRONT_ONLY}}
        chosen = filters(resolve({k: v for k, v in options.items() if k not in _FRONT_ONLY}))
        result = self._compressor.compress(
            context,
            question=question,
            instruction=instruction,
            rate=rate,
            target_token=_target(target_token),
            context_filter=chosen.context,
            sentence_filter=chosen.sentence,
            token_filter=chosen.token,
        )
        if not front["concate_question"] and question:
            prompt = result.compressed_prompt.removesuffix(question).removesuffix("\n\n")
            result = replace(
                result, compressed_prompt=prompt, compressed_tokens=self._compressor.count(prompt)
            )
        return _llmlingua_answer(result, self._price)

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
        _check_names("structured_compress_prompt", options)
        given = {k: v for k, v in options.items() if k != "iterative_size"}
        resolve(given)  # unknown names and LLMLingua options tersify lacks, as above
        beyond = sorted(set(options) - _STRUCTURED)
        if beyond:
            raise UnsupportedOptionError(
                f"{beyond[0]} is not supported by structured_compress_prompt in tersify; "
                f"it takes {', '.join(sorted(_STRUCTURED))}"
            )
        token_filter = filters(resolve({**given, "use_context_level_filter": False})).token
        text = context if isinstance(context, str) else "".join(context)
        result = self._compressor.compress_segments(
            text,
            question=question,
            instruction=instruction,
            rate=rate,
            target_token=_target(target_token),
            token_filter=token_filter,
        )
        return _llmlingua_answer(result, self._price)


def _llmlingua_answer(result: CompressionResult, price: float) -> dict[str, Any]:
    """The answer with LLMLingua's keys only (tersify's ``mode`` is not one of them)."""
    return {k: v for k, v in answer(result, price)["data"].items() if k != "mode"}


def _target(target_token: object) -> int | None:
    """LLMLingua's ``target_token`` (-1: unset) as tersify's (None: unset)."""
    value = number("target_token", target_token)
    return int(value) if value > 0 else None


def _check_names(method: str, options: Mapping[str, Any]) -> None:
    """A name LLMLingua does not know is a mistake in the call, as in LLMLingua."""
    for name in options:
        if name not in BY_NAME and name not in NOT_YET and name not in _FRONT_ONLY:
            raise BadRequestError(f"{method}() got an unexpected keyword argument {name!r}")
