"""The shortlist variant's normaliser, on random weights: no export.

The exported variant, its independence from batching and its export checks:
tests/integration/test_shortlist.py.
"""

from __future__ import annotations

import numpy as np
import torch

from tersify.export import shortlist as variant


def _logsumexp_over(logits: np.ndarray, ids: set[int]) -> float:
    chosen = logits[sorted(ids)]
    top = chosen.max()
    return float(top + np.log(np.exp(chosen - top).sum()))


def test_the_normaliser_sums_the_shortlist_and_each_id_of_the_row_once() -> None:
    rng = np.random.default_rng(0)
    vocab, width = 50, 8
    weight = torch.from_numpy(rng.normal(size=(vocab, width)).astype(np.float32))
    shortlist = {0, 3, 7}
    listed = torch.zeros(vocab, dtype=torch.bool)
    listed[sorted(shortlist)] = True
    ids = np.array([[5, 3, 9, 5, 5, 12, 0, 0]])  # repeats, a shortlisted id, padding
    hidden = torch.from_numpy(rng.normal(size=(1, ids.shape[1] - 1, width)).astype(np.float32))
    got = variant.head_logprobs(
        hidden, torch.from_numpy(ids), weight, weight[sorted(shortlist)], listed
    )[0].numpy()
    assert got[0] == 0.0
    logits = (hidden[0] @ weight.T).numpy()
    members = shortlist | set(ids[0].tolist())
    for t in range(1, ids.shape[1]):
        expected = logits[t - 1, ids[0, t]] - _logsumexp_over(logits[t - 1], members)
        assert abs(got[t] - expected) < 1e-5
    full = torch.log_softmax(torch.from_numpy(logits), -1).numpy()
    assert np.all(got[1:] >= full[np.arange(7), ids[0, 1:]] - 1e-5)  # a partial sum: never lower


def test_a_shortlist_of_the_whole_vocabulary_is_the_exact_log_softmax() -> None:
    rng = np.random.default_rng(1)
    weight = torch.from_numpy(rng.normal(size=(30, 6)).astype(np.float32))
    ids = torch.from_numpy(rng.integers(0, 30, size=(2, 9)))
    hidden = torch.from_numpy(rng.normal(size=(2, 8, 6)).astype(np.float32))
    listed = torch.ones(30, dtype=torch.bool)
    got = variant.head_logprobs(hidden, ids, weight, weight, listed)
    exact = torch.log_softmax(hidden @ weight.T, -1).gather(2, ids[:, 1:, None])[..., 0]
    assert torch.max(torch.abs(got[:, 1:] - exact)) < 1e-5
