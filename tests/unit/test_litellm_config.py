"""The LiteLLM proxy configuration in examples/ is the one docs/gateway.md shows.

The proxy itself, with TersifyHook in front of the real local LLM:
tests/integration/test_litellm_proxy.py.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "litellm_proxy.yaml"


def test_the_docs_show_this_config() -> None:
    import yaml

    page = (ROOT / "docs" / "gateway.md").read_text(encoding="utf-8")
    block = page.split("LiteLLM's proxy with the hook", 1)[1].split("```yaml\n", 1)[1]
    shown = yaml.safe_load(block.split("```", 1)[0])
    assert shown == yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
