"""One vocabulary for checking what callers pass: texts, numbers, integers, choices.

Every front (Python API, JSON request, LLMLingua's parameters) checks through these, so
the same mistake gets the same message wherever it is made. Each raises
:class:`~tersify.errors.BadRequestError` naming the argument and what it must be.

>>> fraction("rate", 0.5, low_open=True)
0.5
>>> non_negative_int("keep_first", True)
Traceback (most recent call last):
...
tersify.errors.BadRequestError: keep_first=True must be a non-negative integer
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence

from tersify.errors import BadRequestError

__all__ = [
    "choice",
    "fraction",
    "non_negative_int",
    "number",
    "positive_int",
    "show",
    "text",
    "texts",
]


_SHORT = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 40, 40, 6, 4, 2


def show(value: object) -> str:
    """``repr(value)`` cut short, so that a huge or deep value never floods a message.

    >>> show(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    """
    return _SHORT.repr(value)


def _has_lone_surrogate(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def text(name: str, value: object) -> str:
    """``value`` as a string: ``None`` is empty; a lone surrogate is refused.

    >>> text("question", None)
    ''
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"{name} must be a string, not {type(value).__name__}")
    if _has_lone_surrogate(value):
        raise BadRequestError(
            f"{name} holds a lone surrogate (an unpaired UTF-16 half): send valid Unicode text"
        )
    return value


def texts(name: str, value: object) -> list[str]:
    """``value`` as a non-empty list of strings (one string is a list of one).

    >>> texts("context", "abc")
    ['abc']
    """
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = list(value)
    else:
        raise BadRequestError(
            f"{name} must be a string or a list of strings, not {type(value).__name__}"
        )
    checked = [text(f"{name}[{index}]", item) for index, item in enumerate(items)]
    if not any(checked):
        raise BadRequestError(f"{name} is empty: give at least one non-empty text")
    return checked


def number(name: str, value: object) -> float:
    """``value`` as a finite number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequestError(f"{name}={show(value)} must be a number")
    try:
        result = float(value)
    except OverflowError:
        raise BadRequestError(f"{name} is too large a number") from None
    if not math.isfinite(result):
        raise BadRequestError(f"{name}={show(value)} must be a finite number")
    return result


def fraction(
    name: str, value: object, *, low_open: bool = False, high_open: bool = False, hint: str = ""
) -> float:
    """``value`` as a number in [0, 1], with either end open if asked."""
    result = number(name, value)
    low_ok = result > 0 if low_open else result >= 0
    high_ok = result < 1 if high_open else result <= 1
    if not (low_ok and high_ok):
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise BadRequestError(f"{name}={show(value)} must be in {interval}{hint}")
    return result


def _integer(name: str, value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequestError(f"{name}={show(value)} must be a {what} integer")
    return value


def non_negative_int(name: str, value: object) -> int:
    """``value`` as an integer >= 0."""
    result = _integer(name, value, "non-negative")
    if result < 0:
        raise BadRequestError(f"{name}={show(value)} must be a non-negative integer")
    return result


def positive_int(name: str, value: object) -> int:
    """``value`` as an integer >= 1."""
    result = _integer(name, value, "positive")
    if result < 1:
        raise BadRequestError(f"{name}={show(value)} must be a positive integer")
    return result


def choice(name: str, value: object, choices: Sequence[str]) -> str:
    """``value`` as one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise BadRequestError(f"{name}={show(value)} must be one of {', '.join(choices)}")
    return value
