"""Exceptions raised by tersify.

Every error tersify raises on purpose derives from one root::

    TersifyError
     ├── BadRequestError            an argument or request field is invalid (also a ValueError)
     │    ├── UnsupportedOptionError  a known LLMLingua option that tersify does not do yet
     │    └── LimitExceededError      the request is larger than a configured limit
     ├── OverloadedError            too much work in flight: try again later
     ├── DeadlineExceededError      the request's deadline passed before the work was done
     ├── CancelledError             the caller went away; the work was stopped
     ├── ScorerError                the scorer could not give log-probs
     │    ├── ScorerUnavailableError  not found, not loadable, not trusted, or not reachable
     │    └── ScorerTimeoutError      it did not answer before the deadline
     ├── UpstreamError              an LLM behind tersify failed (unreachable, 4xx, 5xx, timeout)
     ├── ExportError                a model could not be turned into a scorer
     └── InternalError              a broken invariant or a corrupt installed file: tersify's fault

Who is at fault decides the kind: ``BadRequestError`` is the caller's (exit 2, HTTP 400);
the rest are runtime failures (exit 1, HTTP 429/499/500/502/503/504).
Errors from onnxruntime, tritonclient, torch or transformers are converted at the
boundary that calls them (``tersify.client``, ``tersify.export``) with ``raise ... from``.
"""

from __future__ import annotations


class TersifyError(Exception):
    """Root of every error tersify raises on purpose."""


class BadRequestError(TersifyError, ValueError):
    """A request or an argument is invalid; the message names it and how to fix it."""


class UnsupportedOptionError(BadRequestError):
    """An LLMLingua option that tersify knows but does not implement yet."""


class LimitExceededError(BadRequestError):
    """The request is larger than a limit (body bytes, contexts, scorer tokens)."""


class OverloadedError(TersifyError):
    """Too many compressions in flight and waiting; ``retry_after`` seconds is a fair wait."""

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeadlineExceededError(TersifyError):
    """The request's deadline passed; the work was stopped."""


class CancelledError(TersifyError):
    """The caller went away (a closed connection); the work was stopped."""


class ScorerError(TersifyError):
    """The scorer could not produce log-probabilities."""


class ScorerUnavailableError(ScorerError):
    """The scorer is missing, cannot be loaded or trusted, or cannot be reached."""


class ScorerTimeoutError(ScorerError):
    """The scorer did not answer before its deadline."""


class UpstreamError(TersifyError):
    """An LLM that tersify forwards to failed; ``status`` is its HTTP status, if it answered."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ExportError(TersifyError):
    """A model could not be exported to an ONNX scorer."""


class InternalError(TersifyError):
    """A broken invariant or a corrupt installed file: a bug or a damaged install, not the call."""
