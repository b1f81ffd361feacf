#!/usr/bin/env bash
# Assemble onnxruntime-gpu from wheel parts carried one per call (GPU.md) and install it apart
# from the machine's preinstalled CPU build.
#
#   bench/assemble_ort.sh PARTS_DIR ORT_DIR ORT_SITE
#
# Copies PARTS_DIR/part-* (and wheel.sha256, written by ../shared/gpu/prepare_ort_parts.sh) into
# ORT_DIR, where parts accumulate across calls while the machine is warm; once the parts make
# the whole wheel (sha256 matches, or without the checksum file a valid zip), installs it with
# `pip install --no-deps --target ORT_SITE`; use it with PYTHONPATH=ORT_SITE.
# Exit: 0 installed (or already), 3 incomplete (carry the next part), 4 no parts, 1 failure.
# $PY (default python3) is the Python to install for; $ORT_WHEEL_NAME names the wheel when no
# wheel.sha256 was carried (default: the 1.31.1 cp312 manylinux wheel of GPU.md).
set -uo pipefail
[ $# -eq 3 ] || { sed -n '5p' "$0" | sed 's/^# *//'; exit 2; }
PARTS_DIR="$1"; ORT_DIR="$2"; ORT_SITE="$3"; PY="${PY:-python3}"

if [ -d "$ORT_SITE/onnxruntime" ]; then echo "onnxruntime-gpu already installed in $ORT_SITE"; exit 0; fi
mkdir -p "$ORT_DIR"
cp -f "$PARTS_DIR"/part-* "$ORT_DIR"/ 2>/dev/null
cp -f "$PARTS_DIR"/wheel.sha256 "$ORT_DIR"/ 2>/dev/null
if ! ls "$ORT_DIR"/part-* >/dev/null 2>&1; then
  echo "onnxruntime-gpu: no parts carried ($PARTS_DIR/part-NN, GPU.md)"; exit 4
fi
n=$(ls "$ORT_DIR"/part-* | wc -l)
if [ -f "$ORT_DIR/wheel.sha256" ]; then
  whl="$ORT_DIR/$(awk '{print $2}' "$ORT_DIR/wheel.sha256")"
else
  whl="$ORT_DIR/${ORT_WHEEL_NAME:-onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl}"
fi
cat "$ORT_DIR"/part-* > "$whl"
if [ -f "$ORT_DIR/wheel.sha256" ]; then
  (cd "$ORT_DIR" && sha256sum --status -c wheel.sha256) || {
    echo "onnxruntime-gpu: $n part(s) so far, checksum not yet matched: carry the next part"; rm -f "$whl"; exit 3; }
elif ! "$PY" -c "import sys, zipfile; sys.exit(zipfile.ZipFile(sys.argv[1]).testzip() is not None)" "$whl" 2>/dev/null; then
  echo "onnxruntime-gpu: $n part(s) so far, not yet a whole wheel: carry the next part"; rm -f "$whl"; exit 3
fi
echo "onnxruntime-gpu: $n part(s) make $(basename "$whl"); installing into $ORT_SITE"
"$PY" -m pip install -q --no-deps --target "$ORT_SITE" "$whl" || exit 1
rm -f "$whl"
exit 0
