"""``make mutate``: mutation testing of the core, and the changes planted in issue 15.

1. mutmut (``[tool.mutmut]`` in pyproject.toml) mutates ``budget``, ``assemble``,
   ``scoring``, ``windows``, ``tokens`` and ``coarse`` and runs the fast unit tests
   against each mutant; the score and every surviving mutant are printed.
2. Six changes once planted by hand (a wrong ``compressed_tokens``, iterative windows
   without kept tokens, ...) are applied one at a time; the fast tests must fail on each.

mutmut needs the package's folder to carry its import name, and it must not touch the
checkout (others work in it), so everything runs in a copy, ``build/mutate/``:
``compressor/`` becomes ``tersify/`` with ``engines/``, ``client/``, ... inside it, as pip
installs them (``package-dir``), beside ``tests/``, ``examples/`` and ``pyproject.toml``.
mutmut keeps its results there, so a second run only retests what changed.

    python tests/mutate.py [--max-children N] [--fail-under 85] [--planted-only]
                           [--revision HEAD] [--incremental]
"""

# ruff: noqa: T201 - a command that prints its report
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "build" / "mutate"
ALSO = ["tests", "examples", "pyproject.toml"]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "*.onnx", "*.onnx.data")

# (what it breaks, file in compressor/, edits): each edit is (text in the source, text it
# becomes), and each text must occur exactly once. The fast tests must fail on each change;
# tests/unit/test_mutate_plants.py checks that every one still applies, so a refactor that
# moves a target fails `make test-fast`: then point the edit at where the code went.
PLANTED: list[tuple[str, str, list[tuple[str, str]]]] = [
    (
        "compressed_tokens reports the target instead of the real count",
        "compressor.py",
        [("fitted.prompt, origin_tokens, fitted.tokens, target,",
          "fitted.prompt, origin_tokens, target, target,")],
    ),
    (
        "iterative windows carry none of the earlier windows' kept tokens",
        "windows.py",
        [("carried = kept[s][-context:] if context else []", "carried = []")],
    ),
    (
        "group_units' first unit may start after position 0",
        "scoring.py",
        [("    begin[0] = 0\n", "")],
    ),
    (
        "question-aware (longllmlingua) ranking scores every context 0",
        "coarse.py",
        [("    return best\n", "    return np.zeros_like(best)\n")],
    ),
    (
        "the question appended after fitting, so it is not counted",
        "compressor.py",
        [
            ("return job.render(assembler.kept_parts(keep))",
             "return job.render(assembler.kept_parts(keep))"
             '.removesuffix("\\n\\n" + job.question)'),
            ("fitted.prompt, origin_tokens, fitted.tokens,",
             'fitted.prompt + "\\n\\n" + job.question, origin_tokens, fitted.tokens,'),
        ],
    ),
    (
        "group_units without its 'covered' check",
        "scoring.py",
        [("begins = (end > start) & (start >= covered) & (start > 0)",
          "begins = (end > start) & (start > 0)")],
    ),
]


def plant(source: str, what: str, edits: list[tuple[str, str]]) -> str:
    """``source`` with the planted change ``what`` (its ``edits``) applied."""
    for old, _ in edits:
        if source.count(old) != 1:
            raise SystemExit(
                f"planted change {what!r} no longer applies: {old!r} occurs "
                f"{source.count(old)} times, not once; update PLANTED in tests/mutate.py"
            )
    for old, new in edits:
        source = source.replace(old, new)
    return source


def config() -> dict:
    """``[tool.mutmut]`` of the staged tree's pyproject.toml."""
    return tomllib.loads((STAGE / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]


def checkout(revision: str | None) -> Path:
    """The tree to test: the working tree, or ``revision``'s files (``git archive``)."""
    if revision is None:
        return ROOT
    tree = STAGE.parent / "mutate-source"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", revision], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def packages(tree: Path) -> dict[str, str]:
    """Each package folder of ``tree`` and where pip installs it, outermost first.

    ``{"compressor": "tersify", "engines": "tersify/engines", ...}``, read from
    ``[tool.setuptools] package-dir``, so that a new room is staged as well.
    """
    project = tomllib.loads((tree / "pyproject.toml").read_text(encoding="utf-8"))
    folders = project["tool"]["setuptools"]["package-dir"]
    places = {folder: name.replace(".", "/") for name, folder in folders.items()}
    return dict(sorted(places.items(), key=lambda item: item[1].count("/")))


def stage(where: Path, tree: Path) -> None:
    """Copy ``tree`` into ``where`` in the installed layout (mtimes kept, for mutmut)."""
    if (where / "tersify").exists():
        shutil.rmtree(where / "tersify")
    for source, target in packages(tree).items():
        shutil.copytree(tree / source, where / target, ignore=IGNORE, dirs_exist_ok=True)
    for name in ALSO:
        if (tree / name).is_dir():
            if (where / name).exists():
                shutil.rmtree(where / name)
            shutil.copytree(tree / name, where / name, ignore=IGNORE)
        else:
            shutil.copy2(tree / name, where / name)


def pytest_env(where: Path) -> dict[str, str]:
    """An environment in which ``import tersify`` finds the copy in ``where``."""
    env = dict(os.environ, PYTHONPATH=str(where), PYTHONDONTWRITEBYTECODE="1", TERSIFY_MUTATION="1")
    found = subprocess.run(
        [sys.executable, "-c", "import tersify; print(tersify.__file__)"],
        env=env, cwd=where, capture_output=True, text=True, check=True,
    ).stdout.strip()
    if not found.startswith(str(where)):
        raise SystemExit(f"tersify imports from {found}, not from the copy in {where}")
    return env


def failing_tests(where: Path, tests: list[str], extra: list[str]) -> list[str]:
    """The node ids of the tests that fail on the unmutated copy."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", *tests, *extra],
        env=pytest_env(where), cwd=where, capture_output=True, text=True, check=False,
    )
    failed = re.findall(r"^FAILED (\S+?)(?: - .*)?$", done.stdout, flags=re.MULTILINE)
    if done.returncode not in (0, 1) or (done.returncode == 1 and not failed):
        raise SystemExit(f"the fast tests do not run:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return failed


def planted(tests: list[str], deselect: list[str]) -> bool:
    """Apply each planted change to a fresh copy; True when the tests catch every one."""
    where = STAGE / "planted"
    caught = True
    for what, name, edits in PLANTED:
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        for name_ in ("tersify", *ALSO):  # the snapshot the baseline ran on, not the checkout
            source = STAGE / name_
            if source.is_dir():
                shutil.copytree(source, where / name_, ignore=IGNORE)
            else:
                shutil.copy2(source, where / name_)
        path = where / "tersify" / name
        path.write_text(plant(path.read_text(encoding="utf-8"), what, edits), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests,
             *deselect],
            env=pytest_env(where), cwd=where, capture_output=True, text=True, check=False,
        )
        first = re.search(r"^FAILED (\S+)", done.stdout, flags=re.MULTILINE)
        verdict = f"killed by {first.group(1)}" if done.returncode == 1 and first else "SURVIVED"
        if done.returncode not in (0, 1):
            verdict = f"broke the test run (exit {done.returncode})"
        caught &= verdict.startswith("killed")
        print(f"  planted: {what}: {verdict}", flush=True)
    shutil.rmtree(where, ignore_errors=True)
    return caught


def mutmut(max_children: int, deselect: list[str]) -> tuple[float, list[str], dict[str, int]]:
    """Run mutmut in the copy; the score (killed / tested, %) and the survivors' diffs."""
    if deselect:  # tests that fail unmutated would kill every mutant: leave them out
        pyproject = STAGE / "pyproject.toml"
        data = pyproject.read_text(encoding="utf-8")
        args = json.dumps([*config().get("pytest_add_cli_args", []), *deselect])
        line = f"pytest_add_cli_args = {args}"
        data = re.sub(r"(?m)^pytest_add_cli_args = .*$", lambda _: line, data)
        pyproject.write_text(data, encoding="utf-8")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", TERSIFY_MUTATION="1")
    env.pop("PYTHONPATH", None)
    run = [sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)]
    subprocess.run(run, cwd=STAGE, env=env, check=True)
    report = subprocess.run(
        [sys.executable, "-c", _REPORT], cwd=STAGE, env=env, capture_output=True, text=True,
        check=True,
    )
    result = json.loads(report.stdout)
    return result["score"], result["survivors"], result["counts"]


# Run inside the copy: read mutmut's results and each survivor's diff in one process.
_REPORT = """
import collections, json
from mutmut.__main__ import (SourceFileMutationData, get_diff_for_mutant,
                             status_by_exit_code, walk_mutatable_files)
counts, survivors = collections.Counter(), []
for path in walk_mutatable_files():
    data = SourceFileMutationData(path=path)
    data.load()
    for name, code in data.exit_code_by_key.items():
        status = status_by_exit_code[code]
        counts[status] += 1
        if status in ("survived", "no tests"):
            diff = get_diff_for_mutant(name, path=path)
            lines = [l for l in diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
            survivors.append(f"{name} ({status}): " + " | ".join(l.strip() for l in lines))
tested = sum(counts.values()) - counts["skipped"] - counts["not checked"]
killed = counts["killed"] + counts["timeout"] + counts["caught by type check"]
print(json.dumps({"score": 100.0 * killed / max(1, tested), "survivors": survivors,
                  "counts": dict(counts)}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--fail-under", type=float, default=85.0)
    parser.add_argument("--planted-only", action="store_true")
    parser.add_argument(
        "--incremental", action="store_true", help="keep mutmut's earlier verdicts (faster; "
        "they are not retested when only the tests changed)"
    )
    parser.add_argument(
        "--revision", help="test a commit's files (git archive) instead of the working tree"
    )
    options = parser.parse_args()

    if not options.incremental:  # mutmut keeps old verdicts when only the tests changed
        shutil.rmtree(STAGE / "mutants", ignore_errors=True)
    STAGE.mkdir(parents=True, exist_ok=True)
    stage(STAGE, checkout(options.revision))
    settings = config()
    tests = settings["pytest_add_cli_args_test_selection"]
    broken = failing_tests(STAGE, tests, settings.get("pytest_add_cli_args", []))
    for node in broken:
        print(f"  FAILS WITHOUT ANY MUTATION, left out: {node}")
    deselect = [f"--deselect={node}" for node in broken]

    print("planted changes (issue 15), each must fail the fast tests:", flush=True)
    ok = planted(tests, deselect)
    if not options.planted_only:
        score, survivors, counts = mutmut(options.max_children, deselect)
        print(f"\nsurviving mutants ({len(survivors)}):")
        for line in survivors:
            print(f"  {line}")
        print(f"\nmutants: {counts}")
        print(f"mutation score: {score:.1f}% (killed / tested; goal {options.fail_under:g}%)")
        ok &= score >= options.fail_under
    if broken:
        print(f"{len(broken)} fast tests fail without any mutation (listed above)")
    return 0 if ok and not broken else 1


if __name__ == "__main__":
    sys.exit(main())
