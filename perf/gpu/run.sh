#!/usr/bin/env bash
# Run the GPU benchmark from a kit made by perf/gpu/pack.sh: DIR/run.sh [--cpu] [options]
#
# Assumes only a GPU with its driver, Python 3.12 and PyTorch with CUDA (numpy,
# transformers, safetensors beside it). Unpacks the server and installs the kit's wheels
# under WORK (default /tmp/tersify-kit), then bench.py starts Triton with the CUDA engine
# and prints one table. --cpu is the dry run: a tiny random model on the CPU, few
# repetitions, the same flow end to end. bench.py --help lists the options.
set -euo pipefail

KIT=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
WORK=${WORK:-/tmp/tersify-kit}
mkdir -p "$WORK/server" "$WORK/site"

if [ ! -x "$WORK/server/bin/tritonserver" ]; then
  xz -dc "$KIT/server.tar.xz" | tar -C "$WORK/server" -xf -
fi
if [ ! -x "$WORK/perf_analyzer" ]; then
  xz -dc "$KIT/perf_analyzer.xz" > "$WORK/perf_analyzer"
  chmod +x "$WORK/perf_analyzer"
fi
# Libraries perf_analyzer may need: the kit's extras, and the server's CUDA runtime by soname.
mkdir -p "$WORK/palibs"
cp -f "$KIT"/palibs/* "$WORK/palibs/" 2>/dev/null || true
for cudart in "$WORK"/server/libs/libcudart-*.so.12*; do
  [ -e "$cudart" ] && ln -sf "$cudart" "$WORK/palibs/libcudart.so.12"
done
if [ ! -f "$WORK/site/.installed" ]; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$WORK/site" "$KIT"/wheels/*.whl
  touch "$WORK/site/.installed"
fi
export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" "$KIT/bench.py" run --kit "$KIT" --work "$WORK" "$@"
