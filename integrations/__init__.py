"""Edges over tersify's public API: ask an LLM, and drop-ins for the frameworks users already run.

- :mod:`tersify.integrations.llm`: an OpenAI-compatible chat client (standard library only);
- :mod:`tersify.integrations.ask`: ``ask()``, the full and the compressed prompt to one LLM;
- :mod:`tersify.integrations.langchain`: ``TersifyCompressor`` (extra ``[langchain]``);
- :mod:`tersify.integrations.llamaindex`: ``TersifyPostprocessor`` (extra ``[llamaindex]``);
- :mod:`tersify.integrations.litellm`: ``TersifyHook`` (extra ``[litellm]``).

The framework modules import their framework on import; this package imports none of them.
"""

from tersify.integrations.ask import AskResult, ask
from tersify.integrations.llm import ChatReply, LLMEndpoint, chat

__all__ = ["AskResult", "ChatReply", "LLMEndpoint", "ask", "chat"]
