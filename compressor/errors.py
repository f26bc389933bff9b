"""Exceptions raised by tersify.

Every error tersify raises on purpose derives from one root::

    TersifyError
     ├── BadRequestError            an argument or request field is invalid (also a ValueError)
     │    └── UnsupportedOptionError  a known LLMLingua option that tersify does not do yet
     ├── ScorerError                the scorer could not give log-probs
     │    ├── ScorerUnavailableError  not found, not loadable, or not reachable
     │    └── ScorerTimeoutError      it did not answer before the deadline
     └── ExportError                a model could not be turned into a scorer

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


class ScorerError(TersifyError):
    """The scorer could not produce log-probabilities."""


class ScorerUnavailableError(ScorerError):
    """The scorer is missing, cannot be loaded, or cannot be reached."""


class ScorerTimeoutError(ScorerError):
    """The scorer did not answer before its deadline."""


class ExportError(TersifyError):
    """A model could not be exported to an ONNX scorer."""
