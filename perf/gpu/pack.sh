#!/usr/bin/env bash
# Build the offline GPU benchmark kit: perf/gpu/pack.sh DIR
#
# DIR (at most 60 MiB) then holds everything a GPU machine with no network needs besides
# its driver, Python and PyTorch with CUDA: the tritonserver binary and python backend
# trimmed from the nvidia-pytriton wheel, tritonclient with grpcio, protobuf and rapidjson
# wheels, the perf_analyzer binary, tersify's own wheel, the scorer's tokenizer and
# configuration (no weights: run.sh builds the architecture with random weights), the
# seed request, LLMLingua 0.2.2's wheels (unless LLMLINGUA=0), run.sh, gpu/bench.py and the
# benchmarks' harness (harness/: LLMLingua's runner and KV-cache shim among it).
#
# The server keeps the wheel's own layout (pytriton/tritonserver/..., nvidia_pytriton.libs/):
# run.sh unpacks it into the kit's virtual environment, where tersify.triton.server finds it
# as it finds the installed wheel.
#
# Environment: PYVER (target Python, 3.12), PERF_ANALYZER (a pip requirement whose wheel
# holds the binary: perf-analyzer==2.60.0, or tritonclient[all]==2.51.0 for older glibc),
# SCORER (an exported scorer folder: its tokenizer.json; config.json if there, else read
# from GGUF), PYTHON (the Python that runs pip here).
set -euo pipefail

DIR=${1:?usage: perf/gpu/pack.sh DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYVER=${PYVER:-3.12}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
PERF_ANALYZER=${PERF_ANALYZER:-perf-analyzer==2.60.0}
SCORER=${SCORER:-$HOME/.cache/tersify/scorers/gemma-3-270m}
LLMLINGUA=${LLMLINGUA:-1}
LIMIT_MIB=60

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$DIR/wheels"
DIR=$(cd "$DIR" && pwd)
rm -rf "$DIR"/wheels/* "$DIR"/server.tar.xz "$DIR"/scorer "$DIR"/palibs "$DIR"/gpu "$DIR"/harness \
  "$DIR"/bench.py "$DIR"/llmlingua_shim.py

platforms=()
for n in 17 24 27 28 31 34 35 36 37 38 39; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
download() {  # download DEST REQUIREMENT...
  local dest=$1; shift
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp "${platforms[@]}" -d "$dest" "$@"
}

echo "== tritonserver (nvidia-pytriton 0.7.0), trimmed for Python $PYVER"
CACHE=${CACHE:-$HOME/.cache/tersify/kit}
cached="$CACHE/server-pytriton-0.7.0-py$PYVER-wheel-layout.tar.xz"
if [ -f "$cached" ]; then
  cp "$cached" "$DIR/server.tar.xz"
else
download "$WORK/pytriton" nvidia-pytriton==0.7.0
unzip -q "$WORK"/pytriton/nvidia_pytriton-*.whl -d "$WORK/server" \
  'pytriton/tritonserver/bin/tritonserver' \
  'pytriton/tritonserver/backends/python/*' \
  "pytriton/tritonserver/python_backend_stubs/$PYVER/triton_python_backend_stub" \
  'nvidia_pytriton.libs/*'
# Only the binary, not pytriton's Python side: an empty package that find_spec can find.
touch "$WORK/server/pytriton/__init__.py"
rm -f "$WORK"/server/nvidia_pytriton.libs/libpython3*  # the target's own libpython is used
tar -C "$WORK/server" -cf - . | xz -T0 -6 > "$DIR/server.tar.xz"
mkdir -p "$CACHE" && cp "$DIR/server.tar.xz" "$cached"
fi

echo "== client wheels for Python $PYVER"
download "$DIR/wheels" tritonclient==2.73.0 grpcio==1.85.3 protobuf==6.33.6 python-rapidjson==1.25
if [ "$LLMLINGUA" = 1 ]; then
  # With their own dependencies that a PyTorch image may lack (nltk's click and joblib,
  # accelerate for device_map); LLMLingua runs on the image's transformers through
  # harness/llmlingua_shim.py (transformers 5 hands out Cache objects where it wants tuples).
  download "$DIR/wheels" llmlingua==0.2.2 nltk==3.9.1 click==8.5.1 joblib==1.6.0 \
    accelerate==1.15.0 psutil==7.2.2
fi

echo "== perf_analyzer ($PERF_ANALYZER)"
download "$WORK/pa" "$PERF_ANALYZER"
unzip -q -o "$WORK"/pa/*.whl -d "$WORK/pa/unpacked"
binary=$(find "$WORK/pa/unpacked" -type f -name perf_analyzer -path '*bin*' | head -1)
[ -n "$binary" ] || { echo "no perf_analyzer binary in $PERF_ANALYZER" >&2; exit 1; }
xz -T0 -6 -c "$binary" > "$DIR/perf_analyzer.xz"
# Older builds (tritonclient 2.51, for machines with glibc < 2.38) need libb64 beside them.
if readelf -d "$binary" | grep -q 'libb64.so.0d'; then
  (cd "$WORK" && apt-get download -q libb64-0d >/dev/null 2>&1 && dpkg -x libb64-0d_*.deb b64)
  mkdir -p "$DIR/palibs" && cp "$WORK"/b64/usr/lib/x86_64-linux-gnu/libb64.so.0d "$DIR/palibs/"
fi

echo "== tersify's wheel"
"$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$DIR/wheels" "$ROOT"

echo "== scorer tokenizer and configuration ($SCORER)"
mkdir -p "$DIR/scorer"
tokenizer_xz="$CACHE/tokenizer-$(sha256sum "$SCORER/tokenizer.json" | cut -c1-16).json.xz"
[ -f "$tokenizer_xz" ] || xz -T0 -6 -c "$SCORER/tokenizer.json" > "$tokenizer_xz"
cp "$tokenizer_xz" "$DIR/scorer/tokenizer.json.xz"
cp "$SCORER/manifest.json" "$DIR/scorer/source_manifest.json"
if [ -f "$SCORER/config.json" ]; then
  cp "$SCORER/config.json" "$DIR/scorer/config.json"
else
  "$PYTHON" "$HERE/bench.py" config-from-gguf "$SCORER" "$DIR/scorer/config.json"
fi
cp "$ROOT/examples/seed_request.json" "$DIR/seed_request.json"
mkdir -p "$DIR/gpu" "$DIR/harness"
cp "$HERE/run.sh" "$DIR/"
cp "$HERE/bench.py" "$DIR/gpu/"
cp "$HERE"/../harness/*.py "$DIR/harness/"
chmod +x "$DIR/run.sh"

size=$(du -sb "$DIR" | cut -f1)
echo "kit: $DIR, $((size / 1048576)) MiB"
if [ "$size" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "the kit is over $LIMIT_MIB MiB" >&2
  exit 1
fi
