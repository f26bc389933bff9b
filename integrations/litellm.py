"""LiteLLM: ``TersifyHook``, a proxy hook that compresses ``messages`` before each call.

Needs ``pip install 'tersify[litellm]'``. In the LiteLLM proxy's ``config.yaml``::

    litellm_settings:
      callbacks: my_hooks.tersify_hook   # my_hooks.py: tersify_hook = TersifyHook(rate=0.5)

Messages are compressed under :mod:`tersify.integrations.messages`' policy; a request
may carry its own ``tersify`` object (``extra_body={"tersify": {"rate": 0.3}}``), which is
taken out before the call goes on. The figures land in ``data["metadata"]["tersify"]``.
Set ``LITELLM_LOCAL_MODEL_COST_MAP=True`` where the proxy has no internet.

>>> from tersify.integrations.litellm import TersifyHook
>>> hook = TersifyHook(rate=0.5)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from typing import Any

from tersify.compressor import Compressor
from tersify.integrations.messages import MessagePolicy, compress_messages

try:
    from litellm.integrations.custom_logger import CustomLogger
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tersify.integrations.litellm needs LiteLLM: pip install 'tersify[litellm]'"
    ) from exc

CHAT_CALLS = frozenset({"completion", "acompletion"})


class TersifyHook(CustomLogger):
    """Compresses chat ``messages`` in LiteLLM's ``async_pre_call_hook``.

    ``compressor`` is a :class:`tersify.Compressor` (the default scorer, opened on first
    use, when it is left out); ``rate`` / ``target_token`` is the default budget.
    """

    def __init__(
        self,
        compressor: Compressor | None = None,
        *,
        rate: float | None = 0.5,
        target_token: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.policy = MessagePolicy(rate=rate, target_token=target_token)
        self._compressor = compressor

    def compressor(self) -> Compressor:
        """The compressor, opened on first use."""
        if self._compressor is None:
            self._compressor = Compressor()
        return self._compressor

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: str
    ) -> dict[str, Any]:
        """Compress ``data["messages"]`` for chat calls; other calls pass unchanged."""
        options = data.pop("tersify", None)
        if call_type not in CHAT_CALLS or "messages" not in data:
            return data
        policy = self.policy.with_options(options)
        done = await asyncio.to_thread(
            compress_messages, self.compressor(), data["messages"], policy
        )
        data["messages"] = done.messages
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata["tersify"] = {
            "origin_tokens": done.origin_tokens,
            "compressed_tokens": done.compressed_tokens,
            "seconds": round(done.seconds, 4),
        }
        return data
