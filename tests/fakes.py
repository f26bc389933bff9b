"""A fake scorer for unit tests: a real tokenizer shape, deterministic log-probs, no model.

It splits text into words, spaces and single CJK characters, and splits each CJK
character into its UTF-8 bytes as separate tokens, as byte-level tokenizers do, so that
unit grouping is exercised. Log-probs depend on the token and its predecessor only.
And a fake ranker, and an LLM that fails in every way an LLM can (``FailingLLM``).
"""

from __future__ import annotations

import json
import re
import time
import zlib
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler

import numpy as np

from tersify.scoring import FloatArray, IntArray, Tokenized

_PIECES = re.compile(r"[A-Za-z]+|\d|\s+|[\u3400-\u9fff]|.", re.DOTALL)


class FakeScorer:
    """Deterministic stand-in for an exported scorer."""

    name = "fake"
    bos_token_id: int | None = 1

    def __init__(self, max_window: int = 64) -> None:
        self.max_window = max_window
        self.calls: list[int] = []  # windows per logprobs() call

    def tokenize(self, text: str) -> Tokenized:
        ids: list[int] = []
        offsets: list[tuple[int, int]] = []
        for match in _PIECES.finditer(text):
            piece = match.group()
            if "\u3400" <= piece[0] <= "\u9fff":
                for byte in piece.encode("utf-8"):  # one token per byte, like byte fallback
                    ids.append(10 + byte)
                    offsets.append((match.start(), match.end()))
            else:
                ids.append(300 + zlib.crc32(piece.encode()) % 5000)
                offsets.append((match.start(), match.end()))
        return Tokenized(
            ids=np.asarray(ids, dtype=np.int64),
            offsets=np.asarray(offsets, dtype=np.int64).reshape(-1, 2),
        )

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        self.calls.append(len(windows))
        out = []
        for window in windows:
            assert len(window) <= self.max_window
            row = np.zeros(len(window), dtype=np.float32)
            for t in range(1, len(window)):
                h = zlib.crc32(f"{window[t - 1]}:{window[t]}".encode())
                row[t] = -((h % 1000) / 100.0)
            out.append(row)
        return out


class TokenizerScorer(FakeScorer):
    """The fake's log-probs over a real ``tokenizers`` tokenizer's ids and offsets."""

    def __init__(self, tokenizer: object, max_window: int = 64) -> None:
        super().__init__(max_window)
        self.name = "fake-over-real-tokenizer"
        self._tokenizer = tokenizer

    def tokenize(self, text: str) -> Tokenized:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)  # type: ignore[attr-defined]
        return Tokenized(
            ids=np.asarray(encoding.ids, dtype=np.int64),
            offsets=np.asarray(encoding.offsets, dtype=np.int64).reshape(-1, 2),
        )


class AnsweringScorer(FakeScorer):
    """A scorer that knows which passage answers the question, and nothing else.

    A token of the question is predicted almost surely when an answer word came before it
    in the window, and an answer word when a question token did: log p(question | context)
    is high only for the context holding the answer. The answer words are not the
    question's, so BM25 (which counts shared words) and perplexity ranking (which never
    sees the question) cannot tell that context apart; only question-aware ranking can.
    """

    def __init__(self, question: str, answer_words: Sequence[str]) -> None:
        super().__init__(max_window=64)
        self.question_ids = set(self.tokenize(question).ids.tolist())
        self.answer_ids = {int(self.tokenize(w).ids[0]) for w in answer_words}

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        rows = super().logprobs(windows)
        for window, row in zip(windows, rows):
            seen_question = seen_answer = False
            for t, token in enumerate(window.tolist()):
                if t and (
                    (token in self.question_ids and seen_answer)
                    or (token in self.answer_ids and seen_question)
                ):
                    row[t] = -0.01
                seen_question |= token in self.question_ids
                seen_answer |= token in self.answer_ids
        return rows


class WindowSpy:
    """Any scorer, with every call's windows and the rows it returned recorded in order."""

    def __init__(self, scorer: FakeScorer) -> None:
        self._scorer = scorer
        self.name = scorer.name
        self.bos_token_id = scorer.bos_token_id
        self.max_window = scorer.max_window
        self.calls: list[list[tuple[IntArray, FloatArray]]] = []

    def tokenize(self, text: str) -> Tokenized:
        return self._scorer.tokenize(text)

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        rows = self._scorer.logprobs(windows)
        self.calls.append([(np.array(w), np.array(r)) for w, r in zip(windows, rows)])
        return rows


class FakeRanker:
    """Deterministic stand-in for an exported ranker: hashed bag-of-words embeddings.

    Texts that share words are close, as with a real sentence-embedding model, so ranking
    by the question behaves sensibly without a model.
    """

    name = "fake-ranker"
    dimension = 64

    def __init__(self) -> None:
        self.calls: list[int] = []  # texts per embed() call

    def embed(self, texts: Sequence[str]) -> FloatArray:
        self.calls.append(len(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[row, zlib.crc32(word.encode()) % self.dimension] += 1.0
            norm = float(np.linalg.norm(out[row]))
            out[row] = out[row] / norm if norm else out[row]
        return out


CONTEXT_CHARS = 1500  # what /small/ holds, as an LLM with a short context


def _small_context(prompt: str) -> tuple[int, dict | str]:
    """llama.cpp's answers: a 400 past the context, else a chat completion."""
    if len(prompt) > CONTEXT_CHARS:
        return 400, {"error": {"message": "the request exceeds the available context size"}}
    message = {"role": "assistant", "content": "4711946"}
    return 200, {
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": 1},
    }


class FailingLLM(BaseHTTPRequestHandler):
    """An LLM that answers every POST as its path says: /401, /500, /slow, /garbage, /small.

    The failures an LLM can have, which a healthy one will not produce (the ``failing_url``
    fixture serves it).
    """

    def do_POST(self) -> None:
        sent = self.rfile.read(int(self.headers.get("content-length", 0)))
        kind = self.path.split("/")[1]
        if kind == "slow":
            time.sleep(3)
        status, body = {
            "401": (401, {"error": {"message": "Incorrect API key provided: sk-..."}}),
            "500": (500, {"error": {"message": "CUDA out of memory\nat layer 3"}}),
            "garbage": (200, "<html>not json</html>"),
        }.get(kind, (200, {}))
        if kind == "small":
            status, body = _small_context(json.loads(sent)["messages"][0]["content"])
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except BrokenPipeError:  # the client timed out first, as /slow means it to
            pass

    def log_message(self, *args: object) -> None:
        pass
