"""LLMLingua 0.2.2 on a transformers that hands out ``Cache`` objects (4.47 and later, 5.x).

LLMLingua passes ``past_key_values`` around as a list of ``[key, value]`` per layer: it
reads ``past_key_values[0][0].shape[2]``, slices ``k[:, :, :n]`` and passes the lists back
in. Newer transformers take and return only ``Cache`` objects (a list in fails with
``'list' object has no attribute 'get_seq_length'``; 5.x dropped the conversion helpers),
and the cache a model such as Gemma 3 makes itself keeps only the last positions of its
sliding-window layers, which LLMLingua's slicing by absolute position would cut wrong.
:func:`legacy_cache` wraps the model's forward: a list coming in becomes a cache of full
layers, a call with ``use_cache`` and no cache starts an empty full one, and the cache
going out goes back to ``(key, value)`` pairs. Full layers keep every position, as
transformers 4.44 did; the sliding window is still applied by the attention mask, so the
log-probs are those of one forward over the whole text (perf/llmlingua_gemma_check.py).
LLMLingua's own code runs unmodified. Used by :mod:`harness.llmlingua_runner` (here and in
the GPU kit) and perf/llmlingua_gemma_check.py. Runs inside LLMLingua's venv.
"""

import transformers


def needs_legacy_cache() -> bool:
    """True on the transformers that return ``Cache`` objects where LLMLingua wants tuples."""
    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return (major, minor) >= (4, 47)


def _to_cache(pairs):
    from transformers.cache_utils import DynamicCache

    if hasattr(DynamicCache, "from_legacy_cache"):  # 4.x
        return DynamicCache.from_legacy_cache(tuple(tuple(p) for p in pairs))
    return DynamicCache([tuple(p) for p in pairs])  # 5.x: no config, so full layers


def _to_pairs(cache):
    if hasattr(cache, "to_legacy_cache"):
        return cache.to_legacy_cache()
    return tuple((layer.keys, layer.values) for layer in cache.layers)


def legacy_cache(model):
    """Wrap ``model.forward`` so that LLMLingua sees and passes tuple KV caches."""
    from transformers.cache_utils import Cache, DynamicCache

    forward = model.forward

    def call(*args, past_key_values=None, **kwargs):
        if past_key_values is not None and not isinstance(past_key_values, Cache):
            past_key_values = _to_cache(past_key_values)
        elif past_key_values is None and kwargs.get("use_cache"):
            past_key_values = DynamicCache()  # no config: full layers
        out = forward(*args, past_key_values=past_key_values, **kwargs)
        if isinstance(getattr(out, "past_key_values", None), Cache):
            out.past_key_values = _to_pairs(out.past_key_values)
        return out

    model.forward = call
    return model
