#!/usr/bin/env bash
# Run the GPU benchmark from a kit made by perf/gpu/pack.sh: DIR/run.sh [--cpu] [options]
#
# Assumes only a GPU with its driver, Python 3.12 and PyTorch with CUDA (numpy,
# transformers, safetensors beside it). Makes a virtual environment under WORK (default
# /tmp/tersify-kit) that sees PYTHON's packages, installs the kit's wheels and unpacks the
# server into it (in the nvidia-pytriton wheel's layout, where tersify.triton.server looks),
# then gpu/bench.py starts Triton with the CUDA engine and prints one table. --cpu is the
# dry run: a tiny random model on the CPU, few repetitions, the same flow end to end.
# gpu/bench.py run --help lists the options.
set -euo pipefail

KIT=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
WORK=${WORK:-/tmp/tersify-kit}
VENV="$WORK/venv"
mkdir -p "$WORK"

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv --without-pip --system-site-packages "$VENV"
fi
SITE=$(echo "$VENV"/lib/python3*/site-packages)
if [ ! -f "$SITE/.kit-installed" ]; then
  # PYTHON's own packages (torch, transformers, numpy), also where PYTHON is itself a venv;
  # Triton's backend stub reads them through this file too (site.addsitedir of $SITE).
  "$PYTHON" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith("-packages")))' \
    > "$SITE/kit-base-packages.pth"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --disable-pip-version-check \
    --target "$SITE" "$KIT"/wheels/*.whl
  xz -dc "$KIT/server.tar.xz" | tar -C "$SITE" -xf -
  touch "$SITE/.kit-installed"
fi
if [ ! -x "$WORK/perf_analyzer" ]; then
  xz -dc "$KIT/perf_analyzer.xz" > "$WORK/perf_analyzer"
  chmod +x "$WORK/perf_analyzer"
fi
# Libraries perf_analyzer may need: the kit's extras, and the server's CUDA runtime by soname.
mkdir -p "$WORK/palibs"
cp -f "$KIT"/palibs/* "$WORK/palibs/" 2>/dev/null || true
for cudart in "$SITE"/nvidia_pytriton.libs/libcudart-*.so.12*; do
  [ -e "$cudart" ] && ln -sf "$cudart" "$WORK/palibs/libcudart.so.12"
done
exec "$VENV/bin/python" "$KIT/gpu/bench.py" run --kit "$KIT" --work "$WORK" "$@"
