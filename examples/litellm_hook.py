"""LiteLLM proxy: compress every chat's messages before it goes to the model.

pip install 'tersify[litellm]' and point the proxy's config.yaml at this module::

    model_list:
      - model_name: local
        litellm_params: {model: openai/smollm2, api_base: "http://127.0.0.1:8000/v1"}
    litellm_settings:
      callbacks: litellm_hook.tersify_hook

Clients may send ``extra_body={"tersify": {"rate": 0.3}}``; the hook takes it out before
the call goes on. Set LITELLM_LOCAL_MODEL_COST_MAP=True where the proxy has no internet.
"""

from tersify.integrations.litellm import TersifyHook

tersify_hook = TersifyHook(rate=0.5)  # the default scorer opens on the first request
