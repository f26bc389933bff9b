"""The embedded engines: scorers and the ranker run in-process, and the local tokenizer.

- :mod:`.onnx`: onnxruntime on an exported graph (``fp32``, ``shortlist``, ``int8``);
- :mod:`.openvino`: OpenVINO on the same graphs (the default where installed);
- :mod:`.torch_engine`: PyTorch on CUDA (bf16, CUDA graphs), inside Triton's python backend;
- :mod:`.ranker`: the sentence-embedding graph with onnxruntime;
- :mod:`.tokenizer`: the exported tokenizer, shared with the Triton clients.

:func:`tersify.client.open_scorer` and :func:`tersify.client.ranker.open_ranker` choose
between these and Triton.
"""
