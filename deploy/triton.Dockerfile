# NGC's Triton with tersify: tersify_scorer (onnxruntime backend on the shortlist graph, the
# embedded default's, TensorRT FP16), tersify_ranker
# and tersify_compress (python backend, BLS to the scorer) in the image's model repository,
# the exported files beside it (deploy/triton.yaml). Built from the checkout's root:
#
#   docker build -f deploy/triton.Dockerfile -t registry.example.com/tersify/triton:24.12-tersify-0.1.0 .
#
# 24.12: the python backend stub is built with pybind11 2.12, so numpy 2 is fine (24.10's is
# not). Stages: the wheel; the default scorer and ranker exported and the repository written
# (torch lives only there); NGC's image with the wheel installed for the python backend.

# ---- the wheel, built from the checkout
FROM python:3.12.8-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY compressor compressor
COPY engines engines
COPY client client
COPY triton_serving triton_serving
COPY export export
COPY service service
COPY cli cli
COPY integrations integrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# ---- the default scorer and ranker exported, the model repository written around them
FROM python:3.12.8-slim-bookworm AS export
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/tersify-*.whl)[export]"
ENV TERSIFY_HOME=/opt/tersify/home
RUN tersify export --model gemma-3-270m --quiet \
    && tersify triton repo --out /opt/tersify/repository --scorer gemma-3-270m

# ---- the runtime: NGC's Triton, tersify importable by the python backend (Python 3.12)
FROM nvcr.io/nvidia/tritonserver:24.12-py3
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir --break-system-packages /dist/tersify-*.whl && rm -rf /dist
COPY --from=export /opt/tersify /opt/tersify
ENV TERSIFY_HOME=/opt/tersify/home
EXPOSE 8000 8001 8002
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"]
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/opt/tersify/repository/onnxruntime", "--strict-readiness=true", "--exit-on-error=true"]
