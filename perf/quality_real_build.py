"""Build perf/data/squad2_multidoc.json: 20-document QA requests from SQuAD 2.0's dev set.

    python perf/quality_real_build.py PATH/TO/dev-v2.0.json [--requests 90] [--seed 7]

Run once; its output is checked in (perf/data/README.md says where the source came from and
under which licence). Each request is one real SQuAD question whose paragraph (the gold
document) holds a gold answer, and 19 distractors: the other paragraphs of the set that
share the most content words with the question and contain none of its answers (normalised
as SQuAD's evaluation normalises). The gold document stands first, in the middle (10th)
or last, a third of the requests each. Paragraphs are stored once and requests refer to
them by index, so the file stays small.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter
from pathlib import Path

from quality_real_data import DATA_FILE, normalize_answer

DOCUMENTS = 20
POSITIONS = {"first": 0, "middle": DOCUMENTS // 2 - 1, "last": DOCUMENTS - 1}
MAX_WORDS = 220  # paragraphs longer than this are left out: 20 of them stay near 4k tokens
MAX_ANSWER_WORDS = 6
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of in on at to for from by with and or but is are was were be been being what "
    "which who whom whose when where why how did does do that this these those it its as "
    "into than then there their they he she his her him not no can could would should may "
    "many much most more some any one two also after before during about over under".split()
)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 1}


def build(squad: dict[str, object], n_requests: int, seed: int) -> dict[str, object]:  # noqa: C901
    """The benchmark's paragraphs and requests, deterministic for ``seed``."""
    paragraphs: list[str] = []
    questions: list[tuple[int, str, list[str]]] = []
    for article in squad["data"]:  # type: ignore[index]
        for paragraph in article["paragraphs"]:
            text = " ".join(paragraph["context"].split())
            if len(text.split()) > MAX_WORDS:
                continue
            index = len(paragraphs)
            paragraphs.append(text)
            for qa in paragraph["qas"]:
                answers = sorted({a["text"].strip() for a in qa["answers"]})
                if qa.get("is_impossible") or not answers:
                    continue
                if max(len(a.split()) for a in answers) > MAX_ANSWER_WORDS:
                    continue
                questions.append((index, " ".join(qa["question"].split()), answers))
    rng = random.Random(seed)
    rng.shuffle(questions)
    normalized = [normalize_answer(p) for p in paragraphs]
    terms = [_terms(p) for p in paragraphs]
    chosen, used_gold = [], set()
    for gold, question, answers in questions:
        if len(chosen) == n_requests:
            break
        if gold in used_gold:  # one question per paragraph: more documents, more topics
            continue
        golds = [normalize_answer(a) for a in answers]
        asked = _terms(question)
        overlap = Counter(
            {
                i: len(asked & terms[i])
                for i in range(len(paragraphs))
                if i != gold and not any(g and g in normalized[i] for g in golds)
            }
        )
        distractors = [i for i, _ in overlap.most_common(DOCUMENTS - 1)]
        if len(distractors) < DOCUMENTS - 1:
            continue
        rng.shuffle(distractors)
        position_name = list(POSITIONS)[len(chosen) % len(POSITIONS)]
        documents = list(distractors)
        documents.insert(POSITIONS[position_name], gold)
        used_gold.add(gold)
        chosen.append(
            {
                "id": f"squad2-{len(chosen):03d}",
                "question": question,
                "answers": answers,
                "documents": documents,
                "gold": POSITIONS[position_name],
                "position": position_name,
            }
        )
    used = sorted({i for r in chosen for i in r["documents"]})  # type: ignore[attr-defined]
    renumber = {old: new for new, old in enumerate(used)}
    for request in chosen:
        request["documents"] = [renumber[i] for i in request["documents"]]  # type: ignore[index]
    return {
        "source": "SQuAD 2.0 dev set (the CS224N copy), CC BY-SA 4.0; see perf/data/README.md",
        "documents_per_request": DOCUMENTS,
        "paragraphs": [paragraphs[i] for i in used],
        "requests": chosen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("squad", type=Path, help="SQuAD 2.0's dev-v2.0.json")
    parser.add_argument("--requests", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    squad = json.loads(args.squad.read_text(encoding="utf-8"))
    data = build(squad, args.requests, args.seed)
    DATA_FILE.parent.mkdir(parents=True, exist_ok=True)
    DATA_FILE.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"{len(data['requests'])} requests, {len(data['paragraphs'])} paragraphs: {DATA_FILE}")


if __name__ == "__main__":
    main()
