r"""Logging for ``tersify serve``: one line per request, as text or as JSON lines.

The access log (``tersify.access``) carries the request's fields in ``record.fields``;
the JSON form writes them as one object per line, for log shippers.

Nothing a client sends can add a line to the log or hide part of one: both forms escape
control characters (a decoded ``%0a`` in a path, ESC, NUL, DEL, C1), the characters that
some readers take as line breaks (U+0085, U+2028, U+2029) and bidi controls (which could
make a line display in another order) as ``\xNN`` / ``\uNNNN``. A traceback's lines are
indented continuation lines of their record (text) or one escaped field (JSON).

>>> print(escape("GET /b\nFORGED \x1b[31m \u202e \\"))
GET /b\nFORGED \x1b[31m \u202e \\
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")


# C0 and C1 controls, DEL, line and paragraph separators, bidi marks, embeddings, isolates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNSAFE_OR_BACKSLASH = re.compile(f"{_UNSAFE.pattern}|\\\\")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def escape(text: str) -> str:
    """``text`` on one line, its unsafe characters (and backslashes) escaped."""
    return _UNSAFE_OR_BACKSLASH.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class TextFormatter(logging.Formatter):
    """``time level logger message``, the message escaped onto one line."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The line, its message escaped."""
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        """The traceback, each line indented under its record and escaped."""
        text = super().formatException(ei)
        return "\n".join("    " + escape(line) for line in text.splitlines())


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the request's fields."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # json escapes C0 controls; the rest of the unsafe characters only occur in strings,
        # where a \\u escape stands for them exactly.
        return _UNSAFE.sub(_json_escaped, json.dumps(entry, ensure_ascii=False))


def configure(log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send tersify's and uvicorn's logs to stderr in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    for name, logger_level in (
        ("tersify", level),
        ("uvicorn", logging.WARNING),
        ("uvicorn.error", logging.WARNING),
    ):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(logger_level)
        logger.propagate = False
