"""Question relevance from a sentence-embedding ranker (``rank_method="sentbert"``).

A ranker turns texts into unit-length embeddings; a sentence's closeness to the question is
the cosine of their embeddings. The core only takes dot products: where the embeddings come
from (onnxruntime in-process, Triton over gRPC, a fake in tests) is the ranker's business
(``tersify.client.ranker``).

Embeddings alone confuse passages on the same topic (the distractor about the same entity);
BM25 alone misses paraphrase. Both together, per sentence and per document, put the gold
document in the top two far more often than either (perf/quality_real.py; the README's
quality section). Documents are scored by their best sentence, so a long document whose
answer sits past the ranker's 256 tokens is still found.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tersify.coarse import bm25_scores
from tersify.errors import InternalError
from tersify.scoring import FloatArray, Ranker
from tersify.sentences import sentence_starts

# How the signals add up (each z-normalised within the request); chosen on the real-data
# benchmark (perf/quality_real.py), not on one example.
BM25_WEIGHT_DOCUMENT = 0.5  # beside a document's best sentence embedding
BM25_WEIGHT_SENTENCE = 1.0  # beside a sentence's embedding
DOCUMENT_WEIGHT = 1.0  # a sentence's priority also counts its document's score
# A "sentence" longer than this many characters (a list, a table row, text without
# punctuation) is cut at spaces into pieces about this long: each is ranked and kept on its
# own, so that one huge run neither hides its answer from the ranker (which reads 256
# tokens) nor is passed over whole because it cannot fit the budget.
MAX_PIECE_CHARS = 400


@dataclass(frozen=True)
class Relevance:
    """How relevant each document, and each of its sentences, is to the question.

    ``documents[c]`` ranks document ``c`` (higher first); ``sentences[c]`` holds the
    character offsets where its sentences start (they tile it) and ``priority[c]`` each
    sentence's score for being kept (higher first), its document's score included.
    """

    documents: FloatArray
    sentences: tuple[tuple[int, ...], ...]
    priority: tuple[FloatArray, ...]

    def sentence_order(self) -> list[tuple[int, int]]:
        """Every (document, sentence), the highest priority first."""
        flat = [(float(p), c, k) for c, row in enumerate(self.priority) for k, p in enumerate(row)]
        flat.sort(key=lambda item: -item[0])
        return [(c, k) for _, c, k in flat]


def relevance(ranker: Ranker, question: str, documents: Sequence[str]) -> Relevance:
    """Score documents and sentences against the question: embeddings and BM25 together.

    Sentences are embedded (in one call, with the question); a document scores by its
    best sentence and by BM25 over the documents, a sentence by its embedding and by BM25
    over the sentences, plus its document's score.

    >>> class Words:  # a toy ranker: one dimension per word
    ...     name = "words"
    ...     def embed(self, texts):
    ...         vocab = ["bridge", "opened", "cat"]
    ...         rows = np.array([[t.lower().count(w) for w in vocab] for t in texts], float)
    ...         return (rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-9))
    >>> r = relevance(Words(), "When was the bridge opened?", ["A cat.", "The bridge opened."])
    >>> int(r.documents.argmax())
    1
    """
    starts = [tuple(piece_starts(text)) for text in documents]
    pieces, owner = [], []
    for c, (text, bounds) in enumerate(zip(documents, starts, strict=True)):
        for a, b in zip(bounds, [*bounds[1:], len(text)], strict=True):
            pieces.append(text[a:b].strip() or text[a:b])
            owner.append(c)
    vectors = np.asarray(ranker.embed([question, *pieces]), dtype=np.float32)
    if vectors.shape[0] != 1 + len(pieces):
        raise InternalError(
            f"the ranker returned {vectors.shape[0]} embeddings for {1 + len(pieces)} texts"
        )
    similarity = (vectors[1:] @ vectors[0]).astype(np.float64)
    owners = np.asarray(owner, dtype=np.int64)
    best = np.full(len(documents), -1.0)
    np.maximum.at(best, owners, similarity)
    document_score = _z(best) + BM25_WEIGHT_DOCUMENT * _z(bm25_scores(documents, question))
    sentence_score = (
        _z(similarity)
        + BM25_WEIGHT_SENTENCE * _z(bm25_scores(pieces, question))
        + DOCUMENT_WEIGHT * document_score[owners]
    )
    priority = tuple(
        sentence_score[owners == c].astype(np.float32) for c in range(len(documents))
    )
    return Relevance(
        documents=document_score.astype(np.float32), sentences=tuple(starts), priority=priority
    )


def piece_starts(text: str, limit: int = MAX_PIECE_CHARS) -> list[int]:
    """Where the ranked pieces of ``text`` start: its sentences, long ones cut at spaces.

    >>> text = "Short one. " + "word " * 20
    >>> starts = piece_starts(text, 60)
    >>> [len(text[a:b]) for a, b in zip(starts, [*starts[1:], len(text)])]
    [11, 60, 40]
    """
    starts: list[int] = []
    bounds = sentence_starts(text) if text else [0]
    for a, b in zip(bounds, [*bounds[1:], len(text)], strict=True):
        starts.append(a)
        while b - starts[-1] > limit:
            cut = text.rfind(" ", starts[-1] + limit // 2, starts[-1] + limit)
            cut = starts[-1] + limit if cut < 0 else cut + 1
            starts.append(cut)
    return starts


def choose_sentences(
    relevance: Relevance,
    documents: Sequence[str],
    count: Callable[[str], int],
    budget: int,
) -> tuple[list[tuple[int, int]], int]:
    """The sentences to keep whole: the highest priority first while they fit ``budget``.

    A sentence that does not fit is passed over for smaller ones after it. Returns every
    (document, sentence) in keeping order, the chosen ones first and the rest after (so
    that the token level can trim the first one left out to fill the budget exactly), and
    how many were chosen.
    """
    chosen, rest, total = [], [], 0
    for c, k in relevance.sentence_order():
        bounds = relevance.sentences[c]
        end = bounds[k + 1] if k + 1 < len(bounds) else len(documents[c])
        cost = count(documents[c][bounds[k] : end])
        if total + cost <= budget:
            chosen.append((c, k))
            total += cost
        else:
            rest.append((c, k))
    return chosen + rest, len(chosen)


def _z(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Values standardised within the request (all zero when they are all equal)."""
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return array
    spread = float(array.std())
    return (array - array.mean()) / spread if spread > 1e-12 else np.zeros_like(array)
