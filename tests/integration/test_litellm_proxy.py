"""LiteLLM's own proxy (`litellm --config`) with TersifyHook, in front of the real local LLM.

The proxy runs examples/litellm_proxy.yaml as a user would; the LLM is llama.cpp's server
with SmolLM2-135M-Instruct. The upstream's own ``usage.prompt_tokens`` shows that what reached
it was compressed: far fewer tokens than the same chat sent to it directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import OpenAI

from tersify.integrations.local_llm import LocalLLM, free_port

from processes import wait_until_up
from texts import secret_chat

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "examples" / "litellm_proxy.yaml"
MASTER_KEY = "sk-proxy-master-5"  # the proxy refuses to start without one


@pytest.fixture(scope="module")
def proxy(local_llm: LocalLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tersify.export import export_scorer

    export_scorer("smollm2-135m", skip_existing=True)  # the hook's scorer, by name below
    folder = tmp_path_factory.mktemp("litellm")
    port = free_port()
    env = {
        **os.environ,
        "LLM_API_BASE": local_llm.url,
        "LLM_API_KEY": "none",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "TERSIFY_SCORER": "smollm2-135m",
    }
    litellm = Path(sys.executable).with_name("litellm")
    with (folder / "proxy.log").open("wb") as log:
        process = subprocess.Popen(
            [str(litellm), "--config", str(CONFIG), "--host", "127.0.0.1", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        live = base + "/health/liveliness"
        wait_until_up(live, process, "the LiteLLM proxy", log=folder / "proxy.log")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_the_proxy_sends_the_compressed_prompt(proxy: str, local_llm: LocalLLM) -> None:
    client = OpenAI(base_url=proxy, api_key=MASTER_KEY, max_retries=0, timeout=300)
    reply = client.chat.completions.create(
        model="smollm2",
        messages=secret_chat(13),  # type: ignore[arg-type]
        max_tokens=12,
        temperature=0,
        extra_body={"tersify": {"rate": 0.4}},
    )
    assert reply.choices[0].message.content
    direct = OpenAI(base_url=local_llm.url, api_key="none", max_retries=0)
    full = direct.chat.completions.create(
        model="smollm2",
        messages=secret_chat(13),  # type: ignore[arg-type]
        max_tokens=12,
        temperature=0,
    )
    assert reply.usage is not None and full.usage is not None
    # the upstream's own count: what reached it is the compressed chat
    assert reply.usage.prompt_tokens < 0.6 * full.usage.prompt_tokens
