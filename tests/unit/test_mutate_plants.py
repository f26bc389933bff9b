"""What ``make mutate`` relies on still holds in the code as it is, checked in seconds.

Each change that tests/mutate.py plants must find its target text exactly once, and the
mutmut configuration must name files that exist: a refactor that moves one of them fails
here, not nine minutes into a mutation run. Then point the edit at where the code went.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import tomllib
from mutate import PLANTED, plant

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "compressor"


@pytest.mark.parametrize(("what", "name", "edits"), PLANTED, ids=[p[0] for p in PLANTED])
def test_each_planted_change_finds_its_target_once(
    what: str, name: str, edits: list[tuple[str, str]]
) -> None:
    source = (CORE / name).read_text(encoding="utf-8")
    for old, _ in edits:
        assert source.count(old) == 1, (
            f"{what!r}: {old!r} occurs {source.count(old)} times in compressor/{name}, not "
            "once: update PLANTED in tests/mutate.py"
        )
    planted = plant(source, what, edits)
    assert planted != source
    ast.parse(planted)  # a change that does not compile would fail every test, trivially


def test_the_mutmut_configuration_names_files_that_exist() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mutmut = config["tool"]["mutmut"]
    assert mutmut["source_paths"] == ["tersify/"]  # the core, as tests/mutate.py stages it
    for module in mutmut["only_mutate"]:
        assert (CORE / Path(module).relative_to("tersify")).is_file(), module
    tests = mutmut["pytest_add_cli_args_test_selection"]
    assert tests and all(t.startswith("tests/unit/") for t in tests), tests
    for test in tests:
        assert (ROOT / test).is_file(), test
