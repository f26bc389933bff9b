"""Compressing OpenAI chat messages: the policy that the gateway and the LiteLLM hook share.

The policy, by default:

- the text of ``system`` and ``user`` messages is context and is compressed, all of it
  in one question-aware compression so that the budget goes where the information is;
- the question is the last paragraph (after the last blank line) of the last ``user``
  message: it is kept verbatim and guides the compression (LongLLMLingua's
  question-aware token scores, unless ``question_aware`` is false or the question
  takes more than half a scorer window);
- ``assistant``, ``tool`` and every other message, and every non-text part (images,
  audio), are kept verbatim; so are the roles, names and every other field;
- the budget: ``rate`` is the fraction of the compressible text kept (the question is
  kept on top, so an ordinary chat with a long question is never refused);
  ``target_token`` is the size of compressed text and question together (target LLM
  tokens); both come from the request's ``tersify`` object (``{"rate": 0.5}``,
  ``{"target_token": 800}``, ``{"compress": false}``, ``{"question_aware": false}``) or
  else from the policy's default.

>>> MessagePolicy().with_options({"rate": 0.3}).rate
0.3
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tersify.assemble import SEPARATOR
from tersify.budget import Budget
from tersify.compressor import CompressionResult, Compressor
from tersify.errors import BadRequestError
from tersify.integrations.documents import context_target, kept_parts, question_fits
from tersify.limits import Deadline
from tersify.scoring import Scorer
from tersify.tokens import TokenFilter

OPTION_FIELDS = ("rate", "target_token", "compress", "question_aware")
_Place = tuple[int, int | None]  # (message index, part index or None for a string content)


@dataclass(frozen=True)
class MessagePolicy:
    """Which messages are compressed and to what budget; ``rate`` is the fraction kept."""

    rate: float | None = 0.5
    target_token: int | None = None
    roles: tuple[str, ...] = ("system", "user")
    compress: bool = True
    question_aware: bool = True

    def __post_init__(self) -> None:
        Budget(rate=self.rate, target_token=self.target_token)  # checks both
        if self.rate is None and self.target_token is None:
            raise BadRequestError("give the messages' budget: a rate or a target_token")
        for name in ("compress", "question_aware"):
            if not isinstance(getattr(self, name), bool):
                raise BadRequestError(
                    f"tersify.{name}={getattr(self, name)!r} must be true or false"
                )

    def token_filter(self, question: str, scorer: Scorer) -> TokenFilter:
        """Question-aware token scores (LongLLMLingua's) when asked and the question fits."""
        aware = self.question_aware and question_fits(scorer, question)
        return TokenFilter(condition_on_question=aware, contrastive=aware)

    def with_options(self, options: object) -> MessagePolicy:
        """The policy as changed by a request's ``tersify`` object (``None``: unchanged)."""
        if options is None:
            return self
        if not isinstance(options, Mapping):
            raise BadRequestError('the "tersify" field must be an object such as {"rate": 0.5}')
        unknown = sorted(set(options) - set(OPTION_FIELDS))
        if unknown:
            raise BadRequestError(
                f"unknown field tersify.{unknown[0]}; known fields: {', '.join(OPTION_FIELDS)}"
            )
        changes: dict[str, Any] = {}
        if "target_token" in options:
            changes.update(target_token=options["target_token"], rate=None)
        if "rate" in options:
            changes.update(rate=options["rate"], target_token=options.get("target_token"))
        for name in ("compress", "question_aware"):
            if name in options:
                changes[name] = options[name]
        return replace(self, **changes)


@dataclass(frozen=True)
class CompressedMessages:
    """The messages to forward, and the compression that made them (None: nothing to do)."""

    messages: list[dict[str, Any]]
    result: CompressionResult | None

    @property
    def origin_tokens(self) -> int:
        """The compressible text and question before, in target tokens."""
        return self.result.origin_tokens if self.result else 0

    @property
    def compressed_tokens(self) -> int:
        """The same text after compression."""
        return self.result.compressed_tokens if self.result else 0

    @property
    def seconds(self) -> float:
        """The compression's wall time."""
        return self.result.total_seconds if self.result else 0.0


def compress_messages(
    compressor: Compressor,
    messages: object,
    policy: MessagePolicy,
    deadline: Deadline | None = None,
) -> CompressedMessages:
    """``messages`` with their context compressed under ``policy`` (the input is not changed).

    >>> compress_messages(Compressor(), [{"role": "user", "content": "Hi"}],
    ...                   MessagePolicy())  # doctest: +SKIP
    """
    checked = check_messages(messages)
    out = copy.deepcopy(checked)
    if not policy.compress:
        return CompressedMessages(out, None)
    places, texts = _compressible(out, policy.roles)
    question, question_place = _question(out, places, texts)
    if not any(texts):
        return CompressedMessages(out, None)
    result = compressor.compress(
        texts,
        question=question,
        target_token=policy.target_token
        or context_target(compressor, texts, question, "", policy.rate),
        token_filter=policy.token_filter(question, compressor.scorer),
        deadline=deadline,
        explain=True,
    )
    kept = [""] * len(texts)
    for index, text in kept_parts(result, texts):
        kept[index] = text
    for place, text in zip(places, kept, strict=True):
        if place == question_place:
            text = SEPARATOR.join(t for t in (text, question) if t)
        _set_text(out, place, text)
    return CompressedMessages(out, result)


def check_messages(messages: object) -> list[dict[str, Any]]:
    """OpenAI's ``messages``, checked enough to compress them; each problem names its field."""
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise BadRequestError('"messages" must be a non-empty list of message objects')
    out = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise BadRequestError(f'messages[{index}] must be an object with a string "role"')
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise BadRequestError(f"messages[{index}].content must be a string or a list of parts")
        if isinstance(content, list):
            for number, part in enumerate(content):
                if not isinstance(part, Mapping) or (
                    part.get("type") == "text" and not isinstance(part.get("text"), str)
                ):
                    raise BadRequestError(
                        f'messages[{index}].content[{number}] must be a part object; a "text" '
                        'part needs a string "text"'
                    )
        out.append(dict(message))
    return out


def _compressible(
    messages: list[dict[str, Any]], roles: tuple[str, ...]
) -> tuple[list[_Place], list[str]]:
    places: list[_Place] = []
    texts: list[str] = []
    for index, message in enumerate(messages):
        if message["role"] not in roles:
            continue
        content = message.get("content")
        if isinstance(content, str):
            places.append((index, None))
            texts.append(content)
        elif isinstance(content, list):
            for number, part in enumerate(content):
                if part.get("type") == "text":
                    places.append((index, number))
                    texts.append(part["text"])
    return places, texts


def _question(
    messages: list[dict[str, Any]], places: list[_Place], texts: list[str]
) -> tuple[str, _Place | None]:
    """Take the last user message's last paragraph out of ``texts``: it is the question."""
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    if not users:
        return "", None
    candidates = [k for k, place in enumerate(places) if place[0] == users[-1]]
    if not candidates:
        return "", None
    k = candidates[-1]
    head, _, question = texts[k].rpartition(SEPARATOR)
    if not head:  # nothing before the question: the whole text is kept as it is
        question = texts[k]
    texts[k] = head
    return question, places[k]


def _set_text(messages: list[dict[str, Any]], place: _Place, text: str) -> None:
    index, number = place
    if number is None:
        messages[index]["content"] = text
    else:
        parts = list(messages[index]["content"])
        parts[number] = {**parts[number], "text": text}
        messages[index]["content"] = parts
