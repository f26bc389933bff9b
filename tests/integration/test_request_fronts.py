"""A question-aware JSON request answers the same through the CLI, HTTP and Python.

On the tiny exported scorer; the request format itself: tests/unit/test_request.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tersify import Compressor, ContextFilter, TokenFilter
from tersify.request import answer
from tersify.service import create_app

from texts import GATE_QUESTION, gate_request


def test_question_aware_is_the_same_through_cli_http_and_python(
    tiny_scorer_dir: Path, tiny_compressor: Compressor, tmp_path: Path
) -> None:
    payload = gate_request(mode="longllmlingua", reorder_context="two_stage")
    # Python API, with the filters spelled out by hand: the preset's documented meaning.
    direct = tiny_compressor.compress(
        payload["context"],
        question=GATE_QUESTION,
        rate=0.3,
        context_filter=ContextFilter(
            rank_method="longllmlingua", reorder="two_stage", dynamic_ratio=0.3
        ),
        token_filter=TokenFilter(condition_on_question=True, contrastive=True),
        mode="longllmlingua",
    )
    expected = answer(direct)
    assert direct.context_order and direct.context_order != tuple(range(5))
    # HTTP
    client = TestClient(create_app(tiny_compressor))
    over_http = client.post("/compress", json=payload)
    assert over_http.status_code == 200, over_http.text
    assert over_http.json() == expected
    # CLI
    path = tmp_path / "request.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    command = ["compress", "--scorer", str(tiny_scorer_dir), str(path)]
    done = subprocess.run(
        [sys.executable, "-m", "tersify.cli", *command],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == expected
