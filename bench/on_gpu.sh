#!/usr/bin/env bash
# One lent GPU machine's whole job, resumable (DESIGN.md "Benchmarks", GPU.md, issue 9).
#
#   bench/on_gpu.sh STATEDIR [--budget SECONDS] [--steps env,install,ort,tests,kernels,models,gather] [--dry-run]
#
# STATEDIR: a git-ignored folder of the repo (e.g. .gpu-state), NOT $OUT: it survives between
# commands while the machine is warm. Each step logs into STATEDIR/logs/<step>.log and leaves
# STATEDIR/steps/<step>.done when finished; a done step is skipped on the next call. Steps bound
# to the machine (env, install, ort) are redone on a fresh machine (other boot id).
#   env      nvidia-smi, driver, GPU, Python and package versions, the commit
#   install  the project into python3 without touching its packages (--no-deps, editable)
#   ort      onnxruntime-gpu from carried .ortparts/part-NN (+ wheel.sha256), apart from the
#            preinstalled CPU build (PYTHONPATH=$ORT_SITE); parts accumulate in $ORT_DIR while
#            the machine is warm: carry one part per call with `--steps env,install,ort`
#            (each a few seconds, back to back), then run the whole script
#   tests    pytest -m gpu
#   kernels  tritonnx bench --kernels conv,rnn
#   models   tritonnx bench (paper configs, batch 1,64, fp16 then fp32, every provider),
#            --time-budget from what is left, --resume: done when nothing is left to run
#   gather   at most 8 files into $OUT: summary.txt (steps, times, log tails), state.tgz
#            (STATEDIR without models; put it back into STATEDIR to resume after a cold
#            start), table.md, kernels.md, results.json, speedup.png, env.json
# --budget: seconds for this call (default 540, under the 10-minute command limit); each step
# has its own cap and never runs past what is left. --dry-run: CPU, the current Python
# ($PYTHON or python3), installs nothing, tiny configs, "skipped: no GPU" for GPU-only parts.
set -uo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

STATEDIR=""; BUDGET=""; STEPS="env,install,ort,tests,kernels,models,gather"; DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) BUDGET="${2:?--budget needs seconds}"; shift 2 ;;
    --budget=*) BUDGET="${1#*=}"; shift ;;
    --steps) STEPS="${2:?--steps needs a list}"; shift 2 ;;
    --steps=*) STEPS="${1#*=}"; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) usage ;;
    -*) echo "on_gpu.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$STATEDIR" ] || { echo "on_gpu.sh: one STATEDIR only" >&2; usage; }; STATEDIR="$1"; shift ;;
  esac
done
[ -n "$STATEDIR" ] || usage
for s in ${STEPS//,/ }; do
  case "$s" in env|install|ort|tests|kernels|models|gather) ;;
    *) echo "on_gpu.sh: unknown step '$s' (env,install,ort,tests,kernels,models,gather)" >&2; exit 2 ;;
  esac
done

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
mkdir -p "$STATEDIR/logs" "$STATEDIR/steps"
STATEDIR="$(cd "$STATEDIR" && pwd)"
RESULTS="$STATEDIR/results"
ORT_DIR="${ORT_DIR:-/tmp/ort}"
ORT_SITE="${ORT_SITE:-/tmp/ortsite}"
BOOT_ID="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || hostname)"
if [ "$DRY" = 1 ]; then
  PY="${PYTHON:-python3}"; BUDGET="${BUDGET:-120}"
  DRY_MODELS="${ON_GPU_DRY_MODELS:-mlp}"
else
  PY="${PYTHON:-python3}"; BUDGET="${BUDGET:-540}"
fi
START=$(date +%s)
HAS_GPU=0
if [ "$DRY" = 0 ] && nvidia-smi -L >/dev/null 2>&1; then HAS_GPU=1; fi
[ -d "$ORT_SITE/onnxruntime" ] && export PYTHONPATH="$ORT_SITE${PYTHONPATH:+:$PYTHONPATH}"

say() { echo "[on_gpu $(date -u +%H:%M:%S)] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
is_done() {  # step [machine]: done, and (for machine steps) on this machine, for this checkout
  local f="$STATEDIR/steps/$1.done"  # (the editable install points at the checkout's path)
  [ -f "$f" ] || return 1
  [ "${2:-}" = machine ] && ! grep -qF "boot=$BOOT_ID repo=$REPO " "$f" && return 1
  return 0
}
mark_done() { echo "boot=$BOOT_ID repo=$REPO time=$(date -u +%FT%TZ) seconds=$2" > "$STATEDIR/steps/$1.done"; }
record() { printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$1" "$2" "$3" >> "$STATEDIR/steps.tsv"; }

# run_step NAME CAP [machine] -- command...: skips done steps, caps the time, logs, marks done on rc 0
run_step() {
  local name="$1" cap="$2" kind="$3"; shift 4
  if is_done "$name" "$kind"; then say "$name: already done, skipped"; return 0; fi
  local rem; rem=$(left)
  if [ "$rem" -le 5 ]; then say "$name: not run: budget spent"; record "$name" "not-run" 0; return 1; fi
  [ "$cap" -gt "$rem" ] && cap=$rem
  say "$name: running (cap ${cap}s, log $STATEDIR/logs/$name.log)"
  local t0 rc; t0=$(date +%s)
  timeout -s INT -k 20 "$cap" bash -c "$*" >> "$STATEDIR/logs/$name.log" 2>&1; rc=$?
  local dt=$(( $(date +%s) - t0 ))
  tail -n 3 "$STATEDIR/logs/$name.log" | sed "s/^/  $name| /"
  if [ $rc -eq 0 ]; then mark_done "$name" "$dt"; record "$name" ok "$dt"; say "$name: done in ${dt}s"
  elif [ $rc -eq 3 ]; then record "$name" partial "$dt"; say "$name: partial after ${dt}s (resumes next call)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ] || [ $rc -eq 130 ]; then record "$name" timeout "$dt"; say "$name: time cap hit after ${dt}s (resumes next call)"
  else record "$name" "failed rc=$rc" "$dt"; say "$name: FAILED rc=$rc after ${dt}s (see log)"; fi
  return $rc
}

# Restore a state.tgz brought back from an earlier (cold) machine.
if [ -f "$STATEDIR/state.tgz" ]; then
  say "restoring $STATEDIR/state.tgz"
  tar -xzf "$STATEDIR/state.tgz" -C "$STATEDIR" && mv "$STATEDIR/state.tgz" "$STATEDIR/state.tgz.restored"
fi

step_env() {
  echo "== $(date -u +%FT%TZ) boot $BOOT_ID dry_run=$DRY"
  if [ "$HAS_GPU" = 1 ]; then nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  else echo "nvidia-smi: skipped: no GPU"; fi
  echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null) $(git -C "$REPO" status --porcelain --untracked-files=no | wc -l) modified"
  "$PY" - <<'EOF'
import importlib.metadata as md, platform, sys
print("python", platform.python_version(), sys.executable)
for d in ("torch", "triton", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "onnxruntime-gpu", "numpy", "tabulate", "tqdm", "matplotlib", "pytest", "tritonnx"):
    try:
        print(f"{d} {md.version(d)}")
    except md.PackageNotFoundError:
        print(f"{d} -")
import torch
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
}

step_install() {
  if [ "$DRY" = 1 ]; then echo "dry run: installs nothing"
  elif ! "$PY" -m pip install -q --no-deps --no-build-isolation -e "$REPO"; then
    # setuptools < 77 rejects the SPDX string form of project.license (no network to upgrade
    # it): retry with the table form, in this machine's copy of pyproject.toml only.
    echo "retrying with the table form of project.license (setuptools $("$PY" -c 'import setuptools; print(setuptools.__version__)' 2>&1))"
    sed -i 's/^license = "\(.*\)"$/license = {text = "\1"}/' "$REPO/pyproject.toml"
    "$PY" -m pip install -q --no-deps --no-build-isolation -e "$REPO" || return 1
  fi
  "$PY" -c "import tritonnx, tritonnx.bench, tritonnx.runtime; print('tritonnx', tritonnx.__version__, tritonnx.__file__)"
}

step_ort() {
  if [ "$HAS_GPU" = 0 ]; then
    echo "onnxruntime-gpu: skipped: no GPU"
    "$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" || true
    return 0
  fi
  PY="$PY" bash "$REPO/bench/assemble_ort.sh" "$REPO/.ortparts" "$ORT_DIR" "$ORT_SITE"
  case $? in
    0) export PYTHONPATH="$ORT_SITE${PYTHONPATH:+:$PYTHONPATH}" ;;
    4) echo "onnxruntime rows on CUDA will say onnxruntime-gpu is missing until parts are carried"; return 3 ;;
    3) return 3 ;;
    *) return 1 ;;
  esac
  # Listed is not loaded: a CUDA provider whose libraries do not load falls back to the CPU
  # with only a warning, so open a session on it and check what runs.
  "$PY" - <<'PYEOF'
import numpy as np
import torch  # noqa: F401 - loads the CUDA/cuDNN libraries onnxruntime-gpu links against
import onnxruntime as o
from onnx import TensorProto, helper

print("onnxruntime", o.__version__, o.__file__, o.get_available_providers())
assert "CUDAExecutionProvider" in o.get_available_providers()
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
sess = o.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
print("session providers", sess.get_providers())
assert sess.get_providers()[0] == "CUDAExecutionProvider", "the CUDA provider did not load (see the warning above)"
(y,) = sess.run(None, {"x": np.array([-1, 2, -3, 4], np.float32)})
assert y.tolist() == [0, 2, 0, 4], y
PYEOF
}

step_tests() {
  if [ "$HAS_GPU" = 0 ]; then
    echo "pytest -m gpu: skipped: no GPU"
    # They must at least import and collect here: on the lent machine one collection error
    # would otherwise cost every GPU test.
    "$PY" -m pytest -m gpu -q -p no:cacheprovider --collect-only tests | tail -n 3
    local crc=${PIPESTATUS[0]}
    [ "$crc" -eq 0 ] || [ "$crc" -eq 5 ]
    return
  fi
  # A module that fails to import skips only its own tests; each test gets a time limit (a
  # deadlocked grid barrier would otherwise hold the whole step: pytest-timeout's thread method
  # ends the process, and under xdist only that worker, which is replaced); workers in parallel
  # when pytest-xdist is there (the autotuning compiles are CPU-bound: 12 of the 16 cores). `-o` keys are ignored
  # (a warning) where pytest-timeout is missing.
  local args=(-m gpu -q -p no:cacheprovider -rfE --continue-on-collection-errors --durations=25
              -o timeout="${ON_GPU_TEST_TIMEOUT:-240}" -o timeout_method=thread)
  if "$PY" -c "import xdist" 2>/dev/null; then args+=(-n "${ON_GPU_TEST_WORKERS:-12}"); fi
  echo "pytest ${args[*]} tests"
  "$PY" -m pytest "${args[@]}" tests
  local rc=$?
  # Failing tests are a result (in the log), not a reason to spend the next call on them again.
  [ $rc -le 1 ] || [ $rc -eq 5 ]
}

step_kernels() {
  # One process per family, each with its share of the step's cap and a budget inside it: rows
  # are written when a family returns, so a family killed at its share (a hang, or one case far
  # past the budget) loses only its own rows, and the step still ends (it is not redone: a
  # rerun would hang the same way).
  mkdir -p "$RESULTS"; rm -f "$RESULTS/kernels.jsonl"
  local cap start fam share budget rc status=0
  cap=$(left); [ "$cap" -gt "$KERNELS_CAP" ] && cap=$KERNELS_CAP
  start=$(date +%s)
  for fam in conv rnn; do
    share=$(( cap - ($(date +%s) - start) ))
    [ "$fam" = conv ] && share=$(( cap * 55 / 100 ))
    if [ "$share" -lt 20 ]; then echo "kernels: $fam: not run: the step's time cap is spent"; continue; fi
    budget=$(( share - 45 )); [ "$budget" -lt 10 ] && budget=10
    TRITONNX_KERNELS=triton timeout -s INT -k 10 "$(( share - 5 ))" "$PY" -m tritonnx bench --kernels "$fam" \
      --out "$RESULTS" --format markdown --time-budget "$budget" $([ "$DRY" = 1 ] && echo --quick)
    rc=$?
    case $rc in
      0) ;;
      124|137) echo "kernels: $fam: killed at its ${share}s share (a hang, or one case far past its budget); its rows are lost" ;;
      *) status=$rc ;;
    esac
  done
  return $status
}

step_models() {
  local budget=$(( $(left) - 45 )) out_arg="--out"
  [ "$budget" -lt 10 ] && budget=10
  [ -f "$RESULTS/env.json" ] && out_arg="--resume"
  mkdir -p "$RESULTS"
  if [ "$DRY" = 1 ]; then
    TRITONNX_KERNELS=triton "$PY" -m tritonnx bench --models "$DRY_MODELS" --config tiny --batch 1 --dtype fp32 \
      --time-budget "$budget" "$out_arg" "$RESULTS" --format markdown --no-progress || return 1
  else
    "$PY" -m tritonnx bench --config paper --batch 1,64 --dtype fp16,fp32 \
      --time-budget "$budget" "$out_arg" "$RESULTS" --format markdown --no-progress || return 1
  fi
  # Done only when the sweep ran every row; otherwise the next call resumes it.
  "$PY" -c "import json, sys; sys.exit(3 if json.load(open(sys.argv[1]))['not_run'] else 0)" "$RESULTS/results.json"
}

step_gather() {
  local out="${OUT:-$STATEDIR/out}"
  mkdir -p "$out"
  {
    echo "on_gpu.sh $(date -u +%FT%TZ) boot $BOOT_ID dry_run=$DRY budget=$BUDGET"
    echo "== steps (time, step, status, seconds)"; cat "$STATEDIR/steps.tsv" 2>/dev/null
    echo "== done"; ls "$STATEDIR/steps"
    for f in "$STATEDIR"/logs/*.log; do echo "== tail of $(basename "$f")"; tail -n 40 "$f"; done
  } > "$out/summary.txt"
  tar -czf "$out/state.tgz" -C "$STATEDIR" --exclude=./results/models --exclude=./out --exclude='./state.tgz*' .
  for f in table.md kernels.md results.json speedup.png env.json; do
    [ -f "$RESULTS/$f" ] && cp "$RESULTS/$f" "$out/$f"
  done
  # A file over 16 MiB does not come back (results.json holds every timing sample): gzip it.
  for f in "$out"/*; do
    if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt $(( 15 * 1024 * 1024 )) ] && [ "${f%.gz}" = "$f" ] && [ "${f%.tgz}" = "$f" ]; then
      gzip -9 -f "$f" && echo "gzipped $(basename "$f") (over 15 MiB)"
    fi
  done
  for f in "$out"/*; do
    [ "$(stat -c %s "$f")" -gt $(( 16 * 1024 * 1024 )) ] && echo "WARNING: $(basename "$f") is over 16 MiB and will not come back"
  done
  ls -la "$out"
}

KERNELS_CAP=240
export REPO STATEDIR RESULTS ORT_DIR ORT_SITE BOOT_ID PY DRY HAS_GPU START BUDGET KERNELS_CAP
export DRY_MODELS="${DRY_MODELS:-}"
export -f say left step_env step_install step_ort step_tests step_kernels step_models

say "STATEDIR=$STATEDIR budget=${BUDGET}s dry_run=$DRY python=$PY gpu=$HAS_GPU steps=$STEPS"
status=0
for s in ${STEPS//,/ }; do
  case "$s" in
    env)     run_step env 60 machine -- step_env || status=1 ;;
    install) run_step install 180 machine -- step_install || status=1 ;;
    ort)     run_step ort 240 machine -- step_ort || status=1
             [ -d "$ORT_SITE/onnxruntime" ] && export PYTHONPATH="$ORT_SITE${PYTHONPATH:+:$PYTHONPATH}" ;;
    tests)   run_step tests 300 once -- step_tests || status=1 ;;
    kernels) run_step kernels "$KERNELS_CAP" once -- step_kernels || status=1 ;;
    models)  run_step models 100000 once -- step_models || status=1 ;;
    gather)  step_gather > "$STATEDIR/logs/gather.log" 2>&1 && say "gather: $(ls "${OUT:-$STATEDIR/out}" | wc -l) files in ${OUT:-$STATEDIR/out}: $(ls "${OUT:-$STATEDIR/out}" | tr '\n' ' ')" || status=1 ;;
  esac
done
say "finished in $(( $(date +%s) - START ))s (status $status)"
exit $status
