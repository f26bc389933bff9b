"""The openvino variant's agreement measure: a different selection of units is seen.

The variant exported and checked against fp32: tests/integration/test_openvino.py.
"""

from __future__ import annotations

import numpy as np

from tersify.export import openvino as ov_variant


def test_agreement_measure_sees_a_different_selection() -> None:
    text = "abcdefghij"
    offsets = np.array([[i, i + 1] for i in range(10)], dtype=np.int64)
    reference = [np.concatenate([[0.0], -np.arange(10, dtype=np.float32)])]
    same = ov_variant.selection_agreement(reference, reference, [(text, offsets)])
    flipped = ov_variant.selection_agreement(reference, [-reference[0]], [(text, offsets)])
    assert same == 1.0 and flipped < 0.5
