"""A score cache: log-probs of windows seen before cost (almost) nothing.

A window's log-probs depend only on the scorer and the window's ids, so they can be kept
and handed back the next time the same window comes: a document retrieved again in a RAG
workload is cut into the same windows (windows start at each context's first token) and
is scored for free. Question-conditioned windows start with the question's ids, so they
hit only when the question is the same too.

``CachedScorer`` wraps any :class:`~tersify.scoring.Scorer`; ``ScoreCache`` holds the rows:
an LRU bounded in bytes, safe under threads, optionally backed by an SQLite file bounded
in bytes too, so that scores outlive the process.

The key is a digest of the scorer's identity and the window's ids. A scorer may expose a
``fingerprint`` string (the exported scorers hash their manifest, which holds the SHA-256
of every file, with the engine and variant): a re-export gives a new fingerprint, so old
rows are never served for a new model. A scorer without one gets an identity of its own
for the wrapper's life, and cannot use the disk.

>>> import numpy as np
>>> class Toy:
...     name, bos_token_id, max_window, fingerprint = "toy", None, 8, "toy-v1"
...     calls = 0
...     def tokenize(self, text): raise NotImplementedError
...     def logprobs(self, windows):
...         Toy.calls += len(windows)
...         return [np.arange(len(w), dtype=np.float32) for w in windows]
>>> scorer = CachedScorer(Toy())
>>> window = np.array([5, 6, 7], dtype=np.int64)
>>> [row.tolist() for row in scorer.logprobs([window, window])], Toy.calls
([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]], 1)
>>> _ = scorer.logprobs([window]); Toy.calls, scorer.cache.stats().hits
(1, 1)
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tersify.errors import BadRequestError
from tersify.scoring import FloatArray, IntArray, Scorer, ScorerWrapper

DEFAULT_CACHE_BYTES = 64 * 1024 * 1024  # 64 MiB: about 16M scored tokens
DEFAULT_DISK_BYTES = 1024 * 1024 * 1024
_ENTRY_OVERHEAD = 120  # bytes per entry beside the row: key, dict slot, array header
_DISK_FILE = "scores.sqlite3"


@dataclass(frozen=True)
class CacheStats:
    """What a cache has done since it was made: lookups that hit and missed, and its size."""

    hits: int
    misses: int
    entries: int
    bytes: int
    disk_hits: int = 0
    disk_errors: int = 0

    @property
    def hit_rate(self) -> float:
        """Hits per lookup (0 before the first)."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ScoreCache:
    """Log-prob rows by key: an LRU bounded in bytes, optionally backed by a file on disk.

    ``max_bytes`` bounds the rows held in memory; ``directory`` (optional) holds an SQLite
    file of at most ``max_disk_bytes`` of rows, shared by processes that use the same
    folder; the least recently used rows go first. One lock guards both, so a cache may be
    shared by threads and by several scorers (keys hold the scorer's identity).
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_CACHE_BYTES,
        *,
        directory: str | Path | None = None,
        max_disk_bytes: int = DEFAULT_DISK_BYTES,
    ) -> None:
        if max_bytes < 0 or max_disk_bytes < 0:
            raise BadRequestError(
                f"cache sizes must be >= 0 bytes (max_bytes={max_bytes}, "
                f"max_disk_bytes={max_disk_bytes})"
            )
        self.max_bytes = max_bytes
        self.max_disk_bytes = max_disk_bytes
        self._rows: OrderedDict[bytes, FloatArray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._hits = self._misses = self._disk_hits = self._disk_errors = 0
        self._disk: _DiskRows | None = None
        if directory is not None:
            self._disk = _DiskRows(Path(directory).expanduser() / _DISK_FILE, max_disk_bytes)

    @property
    def persistent(self) -> bool:
        """Whether rows are also kept on disk."""
        return self._disk is not None

    def get_many(self, keys: Sequence[bytes], lengths: Sequence[int]) -> list[FloatArray | None]:
        """The row of each key (a copy), or ``None``; a row of the wrong length is a miss."""
        found: list[FloatArray | None] = []
        with self._lock:
            for key, length in zip(keys, lengths, strict=True):
                row = self._rows.get(key)
                if row is not None and len(row) == length:
                    self._rows.move_to_end(key)
                    found.append(row.copy())
                else:
                    found.append(None)
            wanted = [i for i, row in enumerate(found) if row is None]
            if self._disk is not None and wanted:
                try:
                    stored = self._disk.get([keys[i] for i in wanted])
                except sqlite3.Error:
                    self._disk_errors += 1
                    stored = {}
                for i in wanted:
                    row = stored.get(keys[i])
                    if row is not None and len(row) == lengths[i]:
                        found[i] = row.copy()
                        self._remember(keys[i], row)
                        self._disk_hits += 1
            hits = sum(row is not None for row in found)
            self._hits += hits
            self._misses += len(found) - hits
        return found

    def put_many(self, keys: Sequence[bytes], rows: Sequence[FloatArray]) -> None:
        """Keep ``rows`` under ``keys`` (in memory, and on disk when there is one)."""
        copies = [np.array(row, dtype=np.float32) for row in rows]
        with self._lock:
            for key, row in zip(keys, copies, strict=True):
                self._remember(key, row)
            if self._disk is not None and copies:
                try:
                    self._disk.put(list(zip(keys, copies, strict=True)))
                except sqlite3.Error:
                    self._disk_errors += 1

    def stats(self) -> CacheStats:
        """Counts so far and the memory held."""
        with self._lock:
            return CacheStats(
                hits=self._hits,
                misses=self._misses,
                entries=len(self._rows),
                bytes=self._bytes,
                disk_hits=self._disk_hits,
                disk_errors=self._disk_errors,
            )

    def clear(self) -> None:
        """Forget every row in memory (the disk file stays)."""
        with self._lock:
            self._rows.clear()
            self._bytes = 0

    def close(self) -> None:
        """Close the disk file, if any; the cache goes on in memory only."""
        with self._lock:
            if self._disk is not None:
                self._disk.close()
                self._disk = None

    def _remember(self, key: bytes, row: FloatArray) -> None:
        """Insert or refresh ``key`` in memory, evicting the least recently used rows."""
        size = row.nbytes + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        old = self._rows.pop(key, None)
        if old is not None:
            self._bytes -= old.nbytes + _ENTRY_OVERHEAD
        self._rows[key] = row
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._rows.popitem(last=False)
            self._bytes -= evicted.nbytes + _ENTRY_OVERHEAD


class _DiskRows:
    """Rows in one SQLite file, least recently used deleted past ``max_bytes``.

    Not locked itself: ``ScoreCache`` calls it under its lock.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS rows "
                "(key BLOB PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS rows_used ON rows (used)")
            self._db.commit()
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM rows"
            ).fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise BadRequestError(
                f"cannot use {path} as a score cache ({exc}); give a writable folder "
                "or delete the file"
            ) from exc
        self._path = path
        self._max_bytes = max_bytes
        self._bytes = int(total)

    def get(self, keys: Sequence[bytes]) -> dict[bytes, FloatArray]:
        """Rows stored under ``keys``; their use time is refreshed."""
        found: dict[bytes, FloatArray] = {}
        for start in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, data FROM rows WHERE key IN ({marks})"  # noqa: S608 - marks only
            for key, data in self._db.execute(query, chunk):
                if len(data) % 4 == 0:
                    found[bytes(key)] = np.frombuffer(data, dtype="<f4").astype(np.float32)
        if found:
            now = time.time()
            self._db.executemany(
                "UPDATE rows SET used = ? WHERE key = ?", [(now, key) for key in found]
            )
            self._db.commit()
        return found

    def put(self, items: Sequence[tuple[bytes, FloatArray]]) -> None:
        """Store rows, then delete the least recently used ones past the bound."""
        now = time.time()
        for key, row in items:
            data = row.astype("<f4").tobytes()
            previous = self._db.execute(
                "SELECT LENGTH(data) FROM rows WHERE key = ?", (key,)
            ).fetchone()
            self._db.execute(
                "INSERT OR REPLACE INTO rows (key, data, used) VALUES (?, ?, ?)", (key, data, now)
            )
            self._bytes += len(data) - (previous[0] if previous else 0)
        while self._bytes > self._max_bytes:
            oldest = self._db.execute(
                "SELECT key, LENGTH(data) FROM rows ORDER BY used LIMIT 256"
            ).fetchall()
            if not oldest:
                break
            self._db.executemany("DELETE FROM rows WHERE key = ?", [(k,) for k, _ in oldest])
            self._bytes -= sum(size for _, size in oldest)
        self._db.commit()

    def close(self) -> None:
        self._db.close()


class CachedScorer(ScorerWrapper):
    """A scorer that asks its inner scorer only for windows the cache does not hold.

    The same window twice in one call is scored once. Everything else (name, BOS,
    ``max_window``, tokenization) is the inner scorer's.
    """

    def __init__(self, scorer: Scorer, cache: ScoreCache | None = None) -> None:
        if not isinstance(scorer, Scorer):
            raise BadRequestError(f"scorer={scorer!r} is not a Scorer (tokenize + logprobs)")
        self._scorer = scorer
        self.cache = cache if cache is not None else ScoreCache()
        fingerprint = getattr(scorer, "fingerprint", None)
        if fingerprint is None and self.cache.persistent:
            raise BadRequestError(
                f"scorer {scorer.name!r} has no fingerprint, so its scores cannot be kept on "
                "disk safely; use an exported scorer or a cache without a directory"
            )
        identity = fingerprint if fingerprint is not None else f"anonymous:{uuid.uuid4()}"
        self._identity = str(identity).encode("utf-8") + b"\0"

    @property
    def inner(self) -> Scorer:
        """The scorer that computes what the cache misses."""
        return self._scorer

    @property
    def fingerprint(self) -> str | None:
        """The inner scorer's fingerprint, if it has one."""
        value = getattr(self._scorer, "fingerprint", None)
        return None if value is None else str(value)

    def key(self, window: IntArray) -> bytes:
        """The cache key of ``window`` for this scorer."""
        ids = np.ascontiguousarray(window, dtype="<i8").tobytes()
        return hashlib.blake2b(self._identity + ids, digest_size=20).digest()

    def logprobs(self, windows: Sequence[IntArray]) -> list[FloatArray]:
        """Cached rows where held; the rest from the inner scorer in one call, then kept."""
        keys = [self.key(w) for w in windows]
        rows = self.cache.get_many(keys, [len(w) for w in windows])
        todo: dict[bytes, int] = {}  # key -> first window that needs it
        for i, row in enumerate(rows):
            if row is None:
                todo.setdefault(keys[i], i)
        fresh: dict[bytes, FloatArray] = {}
        if todo:
            computed = self._scorer.logprobs([windows[i] for i in todo.values()])
            fresh = dict(zip(todo, computed, strict=True))
            self.cache.put_many(list(fresh), list(fresh.values()))
        return [
            row if row is not None else np.array(fresh[key], dtype=np.float32)
            for key, row in zip(keys, rows, strict=True)
        ]
