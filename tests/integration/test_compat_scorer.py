"""``tersify.PromptCompressor`` opens a real scorer folder as LLMLingua opens a model name.

With the fake scorer, the rest of LLMLingua 0.2.2's answers: tests/unit/test_compat.py.
"""

from __future__ import annotations

from pathlib import Path

from tersify import Budget, PromptCompressor

from answers import LLMLINGUA_KEYS, check_answer
from texts import sample_text


def _budget(out: dict, rate: float) -> int:
    return Budget(rate=rate).target(out["origin_tokens"])


def test_real_scorer_folder_by_model_name(tiny_scorer_dir: Path) -> None:
    llm_lingua = PromptCompressor(str(tiny_scorer_dir), device_map="cpu")
    out = llm_lingua.compress_prompt(sample_text("mixed", 3000, 8), rate=0.4)
    check_answer(out, _budget(out, 0.4), keys=LLMLINGUA_KEYS)
    assert abs(out["compressed_tokens"] / out["origin_tokens"] - 0.4) <= 0.02
