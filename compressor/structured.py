"""Structured prompts: tagged segments with their own rate, and JSON.

LLMLingua's tags mark segments of one prompt::

    <llmlingua, rate=0.3>long background ...</llmlingua>
    <llmlingua, compress=False>Keep this exactly.</llmlingua>
    untagged text gets the prompt's rate

The parser reads only exact ``<llmlingua ...>`` and ``</llmlingua>`` tags, so any other
``<`` inside content (``a < b``, HTML, XML) stays content. Segments do not nest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tersify.errors import BadRequestError

_OPEN = re.compile(r"<llmlingua((?:\s*,\s*[A-Za-z_]+\s*=\s*[^,>\s]+)*)\s*>")
_ATTRIBUTE = re.compile(r"\s*,\s*([A-Za-z_]+)\s*=\s*([^,>\s]+)")
_CLOSE = "</llmlingua>"


@dataclass(frozen=True)
class Segment:
    """A piece of a prompt: kept byte for byte (``compress=False``) or compressed.

    ``rate`` is the fraction of this segment to keep relative to the others: a segment
    of rate 0.6 in a prompt compressed to 0.3 keeps about twice the share of one with
    the prompt's rate. The prompt as a whole lands on its budget.
    """

    text: str
    rate: float | None = None
    compress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise BadRequestError(f"segment text must be a string, not {type(self.text).__name__}")
        if self.rate is not None and not 0.0 < self.rate <= 1.0:
            raise BadRequestError(f"segment rate={self.rate} must be in (0, 1]")


def parse_tagged(prompt: str) -> list[Segment]:
    """Split a prompt with ``<llmlingua, ...>`` tags into segments.

    >>> [(s.text, s.rate, s.compress) for s in parse_tagged(
    ...     "a<llmlingua, rate=0.5>b < c</llmlingua><llmlingua, compress=False>d</llmlingua>")]
    [('a', None, True), ('b < c', 0.5, True), ('d', None, False)]
    """
    segments: list[Segment] = []
    position = 0
    while position < len(prompt):
        found = _OPEN.search(prompt, position)
        close_before = prompt.find(_CLOSE, position)
        if close_before != -1 and (found is None or close_before < found.start()):
            raise BadRequestError(f"'{_CLOSE}' at character {close_before} closes no open tag")
        if found is None:
            segments.append(Segment(prompt[position:]))
            break
        if found.start() > position:
            segments.append(Segment(prompt[position : found.start()]))
        end = prompt.find(_CLOSE, found.end())
        if end == -1:
            raise BadRequestError(
                f"the tag at character {found.start()} is never closed with '{_CLOSE}'"
            )
        content = prompt[found.end() : end]
        if _OPEN.search(content):
            raise BadRequestError(f"tags do not nest (inside the tag at character {found.start()})")
        segments.append(_segment(content, found.group(1), found.start()))
        position = end + len(_CLOSE)
    return [s for s in segments if s.text]


def _segment(content: str, attributes: str, where: int) -> Segment:
    rate: float | None = None
    compress = True
    for name, value in _ATTRIBUTE.findall(attributes):
        if name == "rate":
            try:
                rate = float(value)
            except ValueError as exc:
                raise BadRequestError(
                    f"rate={value!r} in the tag at character {where} is not a number"
                ) from exc
        elif name == "compress":
            if value not in ("True", "False", "true", "false"):
                raise BadRequestError(
                    f"compress={value!r} in the tag at character {where} must be True or False"
                )
            compress = value.lower() == "true"
        else:
            raise BadRequestError(
                f"unknown attribute {name!r} in the tag at character {where} (rate, compress)"
            )
    return Segment(content, rate=rate, compress=compress)


@dataclass(frozen=True)
class JsonLayout:
    """A JSON value with its strings pulled out: they are compressed, the rest is kept."""

    skeleton: Any
    strings: tuple[str, ...]

    @classmethod
    def of(cls, value: Any, *, keep_keys: Sequence[str] = ()) -> JsonLayout:
        """Pull the string values out of ``value`` (keys and ``keep_keys``' values stay)."""
        strings: list[str] = []
        frozen = set(keep_keys)

        def walk(node: Any, key: str | None) -> Any:
            if isinstance(node, str):
                if key in frozen:
                    return node
                strings.append(node)
                return _Slot(len(strings) - 1)
            if isinstance(node, dict):
                return {k: walk(v, k) for k, v in node.items()}
            if isinstance(node, list):
                return [walk(v, key) for v in node]
            return node

        return cls(skeleton=walk(value, None), strings=tuple(strings))

    def render(self, strings: Sequence[str]) -> str:
        """The JSON text with ``strings`` in place of the original ones."""

        def fill(node: Any) -> Any:
            if isinstance(node, _Slot):
                return strings[node.index]
            if isinstance(node, dict):
                return {k: fill(v) for k, v in node.items()}
            if isinstance(node, list):
                return [fill(v) for v in node]
            return node

        try:
            return json.dumps(fill(self.skeleton), ensure_ascii=False, allow_nan=False)
        except ValueError as exc:  # NaN or Infinity: not JSON, and the result must parse
            raise BadRequestError(f"the value to compress is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class _Slot:
    index: int
