#!/usr/bin/env bash
# Builds .triton-cache/ (git-ignored, ~40 MB) for the lent H200 without a GPU: the sm_90 cubins
# of every autotune config that the GPU smoke tests and the quick kernel benchmark launch,
# compiled through the kernels' own wrappers (bench/triton_cache.py build). Triton's cache key
# hashes its native library, a different build per CPython ABI, so the cache is compiled by the
# GPU machine's own wheel: cp312 triton 3.6.0, in a Python 3.12 venv with the GPU machine's
# versions (.venv-gpu312, constraints-skew.txt; shared with `make test-skew`).
#   usage (from the project root): bench/prepare_triton_cache.sh      then carry .triton-cache
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
venv=${SKEW_VENV:-.venv-gpu312}
if [ ! -x "$venv/bin/python" ]; then
  py312=${PYTHON312:-}
  for p in $(command -v python3.12) /root/.pyenv/versions/3.12*/bin/python3.12; do
    [ -n "$py312" ] || { "$p" -c "import sys" 2>/dev/null && py312=$p; }
  done
  [ -n "$py312" ] || { echo "prepare_triton_cache.sh: no Python 3.12 (set PYTHON312)" >&2; exit 1; }
  "$py312" -m venv "$venv"
  "$venv/bin/python" -m pip install -q -c constraints-skew.txt -e ".[cpu,dev,bench]"
fi
rm -rf .triton-cache
TRITON_INTERPRET=0 CUDA_VISIBLE_DEVICES= "$venv/bin/python" -m tritonnx.bench.triton_cache build .triton-cache
"$venv/bin/python" bench/triton_cache.py check .triton-cache | tail -n 1
du -sh .triton-cache
