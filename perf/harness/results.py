"""What a benchmark reports: ``perf/results/NAME.md`` and ``NAME.json``, which the docs include.

The Markdown starts with one line that says how it was measured: the command, the machine
(lscpu's model name, cores and SIMD: AVX2, AVX-512, BF16) and the date; the JSON holds the
same three beside the figures.

>>> table(["system", "seconds"], [["tersify", "2.71"]], align="lr")
'| system | seconds |\\n|---|---:|\\n| tersify | 2.71 |'
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import RESULTS, ROOT

# lscpu flags, and how a header names them.
_SIMD = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("BF16", ("avx512_bf16", "amx_bf16")),
    ("AMX", ("amx_tile",)),
)


def cpu_summary() -> str:
    """The CPU as lscpu names it, with its cores and SIMD: ``AMD EPYC (2 cores; AVX2)``."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    fields = {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in out.splitlines())
    }
    flags = set(fields.get("Flags", "").split())
    simd = [name for name, names in _SIMD if flags & set(names)]
    return (
        f"{fields.get('Model name', 'an unknown CPU')} ({fields.get('CPU(s)', '?')} cores; "
        f"{', '.join(simd) or 'no AVX2'})"
    )


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that runs this script again, from the repository root.

    >>> command_line([str(ROOT / "perf" / "bench_seed.py"), "--repeat", "3"])
    'python perf/bench_seed.py --repeat 3'
    """
    script, *args = sys.argv if argv is None else argv
    path = Path(script).resolve()
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(script)
    return shlex.join(["python", str(shown), *args])


def header(*, command: str | None = None, machine: str | None = None) -> str:
    """The line above a result: ``Measured with `COMMAND` on MACHINE, DATE.``."""
    return (
        f"Measured with `{command or command_line()}` on {machine or cpu_summary()}, "
        f"{time.strftime('%Y-%m-%d')}."
    )


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, align: str = "") -> str:
    """A Markdown table; ``align`` is one letter a column, ``l`` or ``r`` (default ``l``)."""
    if align and len(align) != len(columns):
        raise ValueError(f"align={align!r} has {len(align)} letters for {len(columns)} columns")
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align or "l" * len(columns)) + "|"
    cells = [" | ".join(str(cell) for cell in row) for row in rows]
    return "\n".join(["| " + " | ".join(columns) + " |", rule, *(f"| {c} |" for c in cells)])


def write(
    name: str,
    markdown: str,
    data: Mapping[str, Any] | None = None,
    *,
    directory: Path = RESULTS,
    machine: str | None = None,
    with_header: bool = True,
) -> str:
    """Write ``directory/NAME.md`` (the header line, then ``markdown``) and ``NAME.json``.

    Returns the Markdown as written. ``with_header=False`` for a ``markdown`` that already
    says how it was measured.
    """
    command, machine = command_line(), machine or cpu_summary()
    text = markdown.rstrip("\n") + "\n"
    if with_header:
        text = header(command=command, machine=machine) + "\n\n" + text
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.md").write_text(text, encoding="utf-8")
    if data is not None:
        meta = {"command": command, "machine": machine, "date": time.strftime("%Y-%m-%d")}
        (directory / f"{name}.json").write_text(
            json.dumps({**meta, **data}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    return text
