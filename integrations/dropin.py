"""What the framework drop-ins share: :class:`DocumentPolicy`'s options as pydantic fields.

LangChain's and LlamaIndex's components are pydantic models; :class:`DropIn` gives each the
options of :class:`~tersify.integrations.documents.DocumentPolicy` as fields (one source:
the dataclass), checks them when the component is built, and opens the default compressor
on first use when none is given.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from tersify.compressor import Compressor
from tersify.integrations.documents import DocumentPolicy

try:
    from pydantic import BaseModel, ConfigDict, PrivateAttr, create_model
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the framework drop-ins need pydantic (LangChain or LlamaIndex)") from exc

_HINTS = typing.get_type_hints(DocumentPolicy)


class _DropIn(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Compressor | None = None
    _opened: Compressor | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        """Check the options now, not at the first query."""
        super().model_post_init(context)
        self.policy()

    def policy(self, **changes: Any) -> DocumentPolicy:
        """The options as a :class:`DocumentPolicy`, with ``changes`` applied."""
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(DocumentPolicy)}
        return DocumentPolicy(**(options | changes))

    def opened(self) -> Compressor:
        """The compressor given, else the default one, opened on first use."""
        if self.compressor is not None:
            return self.compressor
        if self._opened is None:
            self._opened = Compressor()
        return self._opened


# The drop-ins' base (the framework's own base class goes first): ``compressor`` and
# DocumentPolicy's fields, with their types and defaults.
_FIELDS: dict[str, Any] = {
    f.name: (_HINTS[f.name], f.default) for f in dataclasses.fields(DocumentPolicy)
}
DropIn: Any = create_model("DropIn", __base__=_DropIn, **_FIELDS)
