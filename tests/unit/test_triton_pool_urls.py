"""A pool of Triton servers behind one scorer URL: the URL's parsing and its refusals.

Three real tritonservers, one killed mid-run and restarted: tests/integration/test_triton_pool.py.
"""

from __future__ import annotations

import pytest

from tersify.client.triton_pool import is_pool_url, pool_targets


def test_pool_urls_parse_or_name_the_problem() -> None:
    targets = pool_targets("grpc://a:1,b:2/m?scorer=tiny&timeout=5")
    assert [(t.address, t.model, t.scorer, t.timeout_s) for t in targets] == [
        ("a:1", "m", "tiny", 5.0),
        ("b:2", "m", "tiny", 5.0),
    ]
    assert is_pool_url("grpc://a:1,b:2") and not is_pool_url("grpc://a:1")
    for bad in ("grpc://a:1,,b:2", "grpc://a:1,a:1", "http://a:1,b:2", "grpc://a:1,b"):
        with pytest.raises(ValueError, match="scorer="):
            pool_targets(bad)
