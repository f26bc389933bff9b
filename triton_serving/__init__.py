"""Running Triton for tersify: the server's lifecycle, the model configs, the python backends.

- :mod:`tersify.triton.server`: ``tersify triton start/stop``, a local ``tritonserver``;
- :mod:`tersify.triton.config`: ``config.pbtxt`` of ``tersify_scorer`` and ``tersify_ranker``
  in both forms, and the model repository (``tersify triton repo``);
- :mod:`tersify.triton.compress_config`: ``tersify_compress``'s configuration;
- :mod:`tersify.triton.backends`: the python backends the model folders import.

What a caller of these models needs (names, batching, padded shapes) is in
:mod:`tersify.client.triton_models`.
"""
