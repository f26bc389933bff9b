"""The shortlist variant exported: its independence from batching, and its export checks.

Its normaliser, on random weights: tests/unit/test_shortlist_normaliser.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tersify import Compressor
from tersify.bundle import Bundle
from tersify.client import default_variant, open_scorer
from tersify.engines.onnx import OnnxScorer
from tersify.errors import ExportError
from tersify.export import shortlist as variant

from texts import sample_text


@pytest.fixture(scope="module")
def shortlist_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model exported with a shortlist: its random weights keep no selection, so
    the bars are lowered here; the graph and the plumbing are what is under test."""
    from tersify.export import export_scorer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(variant, "PICK_BAR", 0.0)
        patch.setattr(variant, "AGREEMENT_BAR", 0.0)
        return export_scorer(
            str(tiny_model_dir), tmp_path_factory.mktemp("short") / "tiny", shortlist=True
        )


def test_export_records_the_variant_and_it_is_the_default(shortlist_dir: Path) -> None:
    bundle = Bundle.open(shortlist_dir)
    manifest = bundle.manifest
    assert manifest.model_files[variant.VARIANT] == variant.GRAPH_FILE
    assert variant.GRAPH_FILE in manifest.sha256
    assert manifest.verification["shortlist_size"] == -(-manifest.vocab_size // 32)
    assert manifest.verification["shortlist_max_abs_diff_torch"] <= 1e-3
    # Weights the package ships no order for: calibrated here.
    assert manifest.verification["shortlist_order"] == "calibrated"
    assert manifest.verification["weights_sha256"] not in variant.SHIPPED
    assert default_variant(bundle) in (variant.VARIANT, variant.OPENVINO_VARIANT)
    fast = open_scorer(str(shortlist_dir))
    fp32 = open_scorer(str(shortlist_dir), variant="fp32")
    assert isinstance(fp32, OnnxScorer)
    assert fast.fingerprint != fp32.fingerprint  # their rows are cached apart


def test_a_window_scores_the_same_alone_and_padded_in_any_batch(shortlist_dir: Path) -> None:
    scorer = OnnxScorer(Bundle.open(shortlist_dir), variant=variant.VARIANT)
    rng = np.random.default_rng(2)
    windows = [rng.integers(2, 500, size=n).astype(np.int64) for n in (40, 7, 300, 300, 1)]
    together = scorer.logprobs(windows)
    for window, batched in zip(windows, together, strict=True):
        (alone,) = scorer.logprobs([window])
        assert np.max(np.abs(alone - batched), initial=0.0) < 1e-5


def test_the_graph_gives_what_the_torch_head_gives(
    shortlist_dir: Path, tiny_model_dir: Path
) -> None:
    from transformers import AutoModelForCausalLM

    bundle = Bundle.open(shortlist_dir)
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="eager").eval()
    graph_ids = OnnxScorer(bundle, variant=variant.VARIANT)
    size = bundle.manifest.verification["shortlist_size"]
    # The shortlist itself is inside the graph; rebuild the module from the same weights
    # with a shortlist of every id, where both must equal the exact log-softmax.
    module = variant.shortlist_module(lm, torch.arange(lm.config.vocab_size))
    ids = np.random.default_rng(3).integers(2, 500, size=64).astype(np.int64)
    with torch.no_grad():
        exact = module(torch.from_numpy(ids[None]))[0].numpy()
    (fp32,) = OnnxScorer(bundle).logprobs([ids])
    assert np.max(np.abs(exact - fp32)) < 1e-4
    (short,) = graph_ids.logprobs([ids])
    assert size < lm.config.vocab_size
    assert np.all(short >= fp32 - 1e-4)  # a partial normaliser: log-probs never lower


def test_openvino_runs_the_same_graph_where_installed(shortlist_dir: Path) -> None:
    pytest.importorskip("openvino")
    from tersify.engines.openvino import OpenVinoScorer

    bundle = Bundle.open(shortlist_dir)
    assert bundle.manifest.model_files[variant.OPENVINO_VARIANT] == variant.GRAPH_FILE
    assert bundle.manifest.verification["openvino_shortlist_max_abs_diff"] <= 1e-3
    assert default_variant(bundle) == variant.OPENVINO_VARIANT
    assert default_variant(bundle, providers=["CPUExecutionProvider"]) == variant.VARIANT
    rng = np.random.default_rng(4)
    windows = [rng.integers(2, 500, size=n).astype(np.int64) for n in (40, 7, 300, 1)]
    ours = OnnxScorer(bundle, variant=variant.VARIANT).logprobs(windows)
    theirs = OpenVinoScorer(bundle, variant=variant.OPENVINO_VARIANT).logprobs(windows)
    for a, b in zip(ours, theirs, strict=True):
        assert np.max(np.abs(a - b), initial=0.0) < 1e-3


def test_openvino_scores_from_many_threads_at_once(shortlist_dir: Path) -> None:
    """The service scores two compressions at a time: one scorer, several threads."""
    pytest.importorskip("openvino")
    from concurrent.futures import ThreadPoolExecutor

    from tersify.engines.openvino import OpenVinoScorer

    scorer = OpenVinoScorer(Bundle.open(shortlist_dir), variant=variant.OPENVINO_VARIANT)
    rng = np.random.default_rng(5)
    jobs = [[rng.integers(2, 500, size=300).astype(np.int64)] for _ in range(16)]
    alone = [scorer.logprobs(job)[0] for job in jobs]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda job: scorer.logprobs(job)[0], jobs))
    for a, b in zip(alone, together, strict=True):
        assert np.array_equal(a, b)


def test_compressing_with_the_shortlist_lands_on_the_budget(shortlist_dir: Path) -> None:
    text = sample_text("mixed", 3000, 5)
    compressor = Compressor(str(shortlist_dir), cache=False)
    result = compressor.compress([text], target_token=400)
    assert result.compressed_tokens == compressor.count(result.compressed_prompt) <= 400


def test_the_torch_engine_sums_what_the_graph_sums(shortlist_dir: Path) -> None:
    """The CUDA engine's shortlist head, run in fp32 on the CPU, gives the graph's log-probs."""
    from tersify.engines.torch_engine import SHORTLIST_FILE, EngineOptions, TorchEngine

    assert SHORTLIST_FILE == variant.IDS_FILE
    bundle = Bundle.open(shortlist_dir)
    assert SHORTLIST_FILE in bundle.manifest.sha256
    listed = np.load(shortlist_dir / SHORTLIST_FILE)
    assert listed[0] == 0 and np.all(np.diff(listed) > 0)
    assert len(listed) <= bundle.manifest.verification["shortlist_size"] + 1
    graph = OnnxScorer(bundle, variant=variant.VARIANT)
    fp32 = OnnxScorer(bundle)
    rng = np.random.default_rng(4)
    windows = [rng.integers(2, 500, size=n).astype(np.int64) for n in (300, 41, 7, 2)]
    windows[1][10:20] = windows[1][:10]  # ids the row repeats count once
    width = max(len(w) for w in windows)
    batch = np.zeros((len(windows), width), dtype=np.int64)
    for row, window in enumerate(windows):
        batch[row, : len(window)] = window
    engine = TorchEngine.load(shortlist_dir, EngineOptions(device="cpu"))
    full = TorchEngine(engine.model, EngineOptions(device="cpu", head="full"))
    chunked = TorchEngine(engine.model, EngineOptions(device="cpu", rows_per_chunk=50), listed)
    assert (engine.head, full.head, chunked.head) == ("shortlist", "full", "shortlist")
    got, exact, pieces = engine.score(batch), full.score(batch), chunked.score(batch)
    for row, (short, whole) in enumerate(
        zip(graph.logprobs(windows), fp32.logprobs(windows), strict=True)
    ):
        n = len(windows[row])
        np.testing.assert_allclose(got[row, :n], short, atol=1e-3)
        np.testing.assert_allclose(exact[row, :n], whole, atol=1e-3)
        np.testing.assert_allclose(pieces[row, :n], got[row, :n], atol=1e-5)
        alone = engine.score(windows[row][None, :])[0]
        np.testing.assert_allclose(alone, got[row, :n], atol=1e-5)  # padding changes nothing
    assert np.abs(got - exact).max() > 1e-3  # the shortlist is a different normaliser


def test_the_torch_engine_in_bf16_rounds_target_and_sum_alike(shortlist_dir: Path) -> None:
    """On a GPU the head's products are bf16: the next token's logit must come from the same
    product as the sum it is divided by, or a confident token's log p rises above 0."""
    from tersify.engines.torch_engine import EngineOptions, TorchEngine

    half = TorchEngine.load(shortlist_dir, EngineOptions(device="cpu", dtype="bfloat16"))
    with torch.no_grad():  # large logits: a bf16 step is 0.06-0.25 there
        half.model.get_decoder().norm.weight.fill_(40.0)
        ids = torch.tensor([[2, 17, 230]])
        for _ in range(40):  # the model's own greedy text: every next token is confident
            following = half.model(input_ids=ids).logits[0, -1].float().argmax()
            ids = torch.cat([ids, following.view(1, 1)], dim=1)
    got = half.score(ids.numpy())
    assert got[0, 3:].max() <= 0.0
    assert got[0, 3:].mean() > -0.5  # confident, as meant


def test_the_python_form_links_the_shortlist_and_never_a_stale_one(
    shortlist_dir: Path, tiny_scorer_dir: Path, tmp_path: Path
) -> None:
    from tersify.engines.torch_engine import SHORTLIST_FILE
    from tersify.triton.config import ScorerConfig, write_model

    config = ScorerConfig(form="python")
    folder = tmp_path / "tersify_scorer"
    write_model(config, folder, bundle=Bundle.open(shortlist_dir), symlink=True)
    linked = folder / "1" / SHORTLIST_FILE
    assert linked.resolve() == (shortlist_dir / SHORTLIST_FILE).resolve()
    write_model(config, folder, bundle=Bundle.open(tiny_scorer_dir), symlink=True)
    assert not linked.exists() and not linked.is_symlink()  # the next scorer has none


def test_the_torch_engine_asked_for_a_missing_shortlist_says_how_to_fix(
    tiny_scorer_dir: Path,
) -> None:
    from tersify.engines.torch_engine import EngineOptions, TorchEngine
    from tersify.errors import ScorerUnavailableError

    assert TorchEngine.load(tiny_scorer_dir, EngineOptions(device="cpu")).head == "full"
    with pytest.raises(ScorerUnavailableError, match="tersify export"):
        TorchEngine.load(tiny_scorer_dir, EngineOptions(device="cpu", head="shortlist"))
    with pytest.raises(ScorerUnavailableError, match="head="):
        EngineOptions(head="half")  # type: ignore[arg-type]


def test_a_shortlist_that_loses_the_selection_is_refused(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tersify.export import export_scorer

    monkeypatch.setattr(variant, "PICK_BAR", 1.01)  # no size can reach it
    with pytest.raises(ExportError, match="no shortlist keeps the selection"):
        export_scorer(str(tiny_model_dir), tmp_path / "asked", shortlist=True)
    assert not (tmp_path / "asked").exists()
    # Not asked for by name, a failed check only leaves the variant out.
    folder = export_scorer(str(tiny_model_dir), tmp_path / "auto")
    assert variant.VARIANT not in Bundle.open(folder).manifest.model_files
    assert not (folder / variant.GRAPH_FILE).exists()
    assert not (folder / variant.IDS_FILE).exists()


def test_known_weights_take_the_shipped_order_without_calibrating(
    shortlist_dir: Path, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tersify.export import export_scorer

    manifest = Bundle.open(shortlist_dir).manifest
    vocab, digest = manifest.vocab_size, manifest.verification["weights_sha256"]
    order = np.random.default_rng(6).permutation(vocab)[: vocab // 4].astype(np.int32)
    np.save(tmp_path / "tiny.npy", order)
    monkeypatch.setattr(variant, "SHIPPED", {digest: "tiny.npy"})
    monkeypatch.setattr(variant, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(variant, "PICK_BAR", 0.0)
    monkeypatch.setattr(variant, "AGREEMENT_BAR", 0.0)

    def no_calibration(*_args: object) -> None:
        raise AssertionError("calibrated although the order is shipped")

    monkeypatch.setattr(variant, "calibration_mass", no_calibration)
    folder = export_scorer(str(tiny_model_dir), tmp_path / "shipped", shortlist=True)
    verification = Bundle.open(folder).manifest.verification
    assert verification["shortlist_order"] == "shipped"
    size = verification["shortlist_size"]
    listed = np.load(folder / variant.IDS_FILE)
    np.testing.assert_array_equal(listed, np.union1d([0], order[:size]))
    # The agreement check of the exported graph is kept: below its bar, no variant.
    monkeypatch.setattr(variant, "AGREEMENT_BAR", 1.01)
    with pytest.raises(ExportError, match="the shortlist graph strays"):
        export_scorer(str(tiny_model_dir), tmp_path / "refused", shortlist=True)
    assert not (tmp_path / "refused").exists()


def test_a_shipped_order_of_another_vocabulary_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np.save(tmp_path / "order.npy", np.arange(100, dtype=np.int32))
    monkeypatch.setattr(variant, "SHIPPED", {"ab" * 32: "order.npy"})
    monkeypatch.setattr(variant, "SHIPPED_DIR", tmp_path)
    assert variant.shipped_order("ab" * 32, vocab=100) is not None
    assert variant.shipped_order("ab" * 32, vocab=50) is None  # ids past the vocabulary
    assert variant.shipped_order("cd" * 32, vocab=100) is None
    assert variant.shipped_order(None, vocab=100) is None


def test_the_package_ships_the_default_scorers_order() -> None:
    """What the default export reads instead of calibrating: one order per known weights file."""
    assert variant.SHIPPED
    for digest, name in variant.SHIPPED.items():
        assert len(digest) == 64
        with (variant.SHIPPED_DIR / name).open("rb") as handle:
            order = np.load(handle)
        assert order.dtype == np.int32 and order.ndim == 1
        assert len(np.unique(order)) == len(order) == 262144 // 4  # Gemma 3's vocab / 4


def test_a_model_whose_logits_are_not_hidden_times_head_gets_no_shortlist(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tersify.export import export_scorer, models, torch_engine

    real = models.load

    def biased(source: models.ModelSource) -> tuple[object, object]:
        lm, tokenizer = real(source)
        head = lm.get_output_embeddings()
        head.bias = torch.nn.Parameter(torch.linspace(-3.0, 3.0, head.weight.shape[0]))
        return lm, tokenizer

    monkeypatch.setattr(models, "load", biased)
    # The PyTorch engine's config has no head bias: its own check would stop the export first.
    monkeypatch.setattr(torch_engine, "check_engine", lambda *_args: 0.0)
    with pytest.raises(ExportError, match="a bias, a scale or a soft cap"):
        export_scorer(str(tiny_model_dir), tmp_path / "biased", shortlist=True)
