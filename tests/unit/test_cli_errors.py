"""The ``tersify`` command's refusals that need no scorer, run as a user runs it: a subprocess.

The command with an exported scorer: tests/integration/test_cli.py.
"""

from __future__ import annotations

from pathlib import Path

from processes import tersify
from texts import SEED


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    done = tersify("compress", str(tmp_path / "nope.json"))
    assert done.returncode == 2 and done.stdout == b""
    assert "cannot read" in done.stderr.decode()


def test_missing_scorer_says_how_to_export(tmp_path: Path) -> None:
    done = tersify("compress", str(SEED), home=tmp_path)
    assert done.returncode == 1 and done.stdout == b""
    err = done.stderr.decode()
    assert err.count("\n") == 1 and "tersify export --model NAME" in err


def test_export_of_a_missing_model_fails_clearly(tmp_path: Path) -> None:
    done = tersify("export", "--model", str(tmp_path / "none.gguf"), "--out", str(tmp_path / "o"))
    assert done.returncode == 1 and "no such GGUF file" in done.stderr.decode()
