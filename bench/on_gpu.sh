#!/usr/bin/env bash
# One lent GPU machine's whole job in a 15-minute lease, phased and resumable (DESIGN.md
# "Benchmarks", GPU.md, issues 9, 18, 20).
#
#   bench/on_gpu.sh STATEDIR [--budget SECONDS] [--steps STEP,...] [--dry-run]
#   bench/on_gpu.sh --plan            # the lease's device calls: command, carry, payload, time
#                                     # (exit 1 when a call's payload is over 64 MiB)
#
# STATEDIR: a git-ignored folder of the repo (e.g. .gpu-state), NOT $OUT: it survives between
# commands while the machine is warm. Each step logs into STATEDIR/logs/<step>.log and leaves
# STATEDIR/steps/<step>.done when finished; a done step is skipped on the next call. Steps bound
# to the machine (env, install, cache, ort) are redone on a fresh machine (other boot id).
#   env          nvidia-smi, driver, GPU, Python and package versions, the commit
#   install      the project into python3 without touching its packages (--no-deps, editable);
#                fallbacks: the table form of project.license (old setuptools),
#                --break-system-packages (PEP 668), then no install at all: links
#                tritonnx/<sub> -> <folder> in this copy of the tree, the repo on PYTHONPATH
#   cache        the carried Triton cache (.triton-cache, TRITON_CACHE_DIR): its key parts
#                (bench/triton_cache.py) against this machine's; hits and misses are logged by
#                every later Python process (logs/triton-cache.tsv, summed in summary.txt)
#   ort          onnxruntime-gpu from carried .ortparts/part-NN (+ wheel.sha256), apart from the
#                preinstalled CPU build (PYTHONPATH=$ORT_SITE); one part per call (seconds each)
#   barrier      GPU test: the persistent kernel's grid barrier (60 s timeout: a hang ends here)
#   graphs       GPU tests: session CUDA-graph capture and replay, the session's CUDA paths
#   smoke        GPU tests: one case per kernel family and dtype at a zoo shape
#   kernels      kernel rows vs cuDNN, fp16, quick: one process per family, rows written per
#                block; a killed family is partial and resumes where it stopped
#   models       zoo rows fp16, batch 1,64: tritonnx, tritonnx-unfused, torch (lenet5 and
#                char_lstm first); models-ort: onnxruntime-gpu rows; models-fp32: fp32 rows;
#                compile: torch.compile rows, one process per row under a cap (bench/gpu_plan.py)
#   tests        the rest of the GPU tests; sweep: exhaustive sweeps (every conv config, every
#                conformance case); kernels-full: the full kernel sweep (later leases)
#   gather       at most 8 files into $OUT: summary.txt, state.tgz (STATEDIR without models; put
#                it back into STATEDIR to resume after a cold start), table.md, kernels.md,
#                results.json, speedup.png, env.json, not_run.txt (every planned row not run)
# A bench process that exits on a sticky CUDA error (75) or dies (signal) is resumed in a fresh
# process while time remains: the rows after it are retried, not recorded as errors.
# --budget: seconds for this call (default 540, under the 10-minute command limit); each step
# has its own cap and never runs past what is left. --dry-run: CPU, the current Python
# ($PYTHON or python3), installs nothing, tiny configs, "skipped: no GPU" for GPU-only parts.
set -uo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
ALL_STEPS="env,install,cache,ort,barrier,graphs,smoke,kernels,models,models-ort,models-fp32,compile,tests,sweep,kernels-full,gather"
usage() { sed -n '5,6p' "$0" | sed 's/^# \{0,1\}//'; echo "steps: $ALL_STEPS"; exit 2; }

STATEDIR=""; BUDGET=""; STEPS="$ALL_STEPS"; DRY=0; PLAN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --budget) BUDGET="${2:?--budget needs seconds}"; shift 2 ;;
    --budget=*) BUDGET="${1#*=}"; shift ;;
    --steps) STEPS="${2:?--steps needs a list}"; shift 2 ;;
    --steps=*) STEPS="${1#*=}"; shift ;;
    --dry-run) DRY=1; shift ;;
    --plan) PLAN=1; shift ;;
    -h|--help) usage ;;
    -*) echo "on_gpu.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$STATEDIR" ] || { echo "on_gpu.sh: one STATEDIR only" >&2; usage; }; STATEDIR="$1"; shift ;;
  esac
done
if [ "$PLAN" = 1 ]; then
  exec "${PYTHON:-python3}" "$REPO/bench/gpu_plan.py" plan --statedir "${STATEDIR:-.gpu-state}" --repo "$REPO"
fi
[ -n "$STATEDIR" ] || usage
for s in ${STEPS//,/ }; do
  case ",$ALL_STEPS," in *",$s,"*) ;;
    *) echo "on_gpu.sh: unknown step '$s' ($ALL_STEPS)" >&2; exit 2 ;;
  esac
done

cd "$REPO"
mkdir -p "$STATEDIR/logs" "$STATEDIR/steps"
STATEDIR="$(cd "$STATEDIR" && pwd)"
RESULTS="$STATEDIR/results"
ORT_DIR="${ORT_DIR:-/tmp/ort}"
ORT_SITE="${ORT_SITE:-/tmp/ortsite}"
BOOT_ID="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null || hostname)"
PY="${PYTHON:-python3}"
if [ "$DRY" = 1 ]; then BUDGET="${BUDGET:-120}"; else BUDGET="${BUDGET:-540}"; fi
DRY_MODELS="${ON_GPU_DRY_MODELS:-mlp}"
START=$(date +%s)
HAS_GPU=0
if [ "$DRY" = 0 ] && nvidia-smi -L >/dev/null 2>&1; then HAS_GPU=1; fi
prepend_path() { case ":${PYTHONPATH:-}:" in *":$1:"*) ;; *) export PYTHONPATH="$1${PYTHONPATH:+:$PYTHONPATH}" ;; esac; }
[ -d "$ORT_SITE/onnxruntime" ] && prepend_path "$ORT_SITE"
# The install step's last fallback (no install): the repo, its subpackages linked, on PYTHONPATH.
# The links are untracked files of this copy of the tree, which the next call's copy may lack:
# link again (link_tree, below) before anything imports tritonnx.
[ -f "$STATEDIR/pythonpath" ] && prepend_path "$(cat "$STATEDIR/pythonpath")"
# A carried Triton cache (bench/triton_cache.py build): every process compiles into it, and the
# listener of bench/gpu_site/sitecustomize.py logs each compile as a hit or a miss.
if [ -d "$REPO/.triton-cache" ]; then export TRITON_CACHE_DIR="$REPO/.triton-cache"; fi
export TRITONNX_TRITON_CACHE_LOG="$STATEDIR/logs/triton-cache.tsv"
prepend_path "$REPO/bench/gpu_site"

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

# run_step NAME CAP KIND -- command...: skips done steps, caps the time with the script's own
# `timeout` (no pytest plugin needed), logs, marks done on rc 0; rc 3 = partial (resumes)
run_step() {
  local name="$1" cap="$2" kind="$3"; shift 4
  if is_done "$name" "$kind"; then say "$name: already done, skipped"; return 0; fi
  local rem; rem=$(left)
  if [ "$rem" -le 5 ]; then say "$name: not run: budget spent"; record "$name" "not-run" 0; return 1; fi
  [ "$cap" -gt "$rem" ] && cap=$rem
  say "$name: running (cap ${cap}s, log $STATEDIR/logs/$name.log)"
  local t0 rc; t0=$(date +%s)
  STEP_CAP=$cap timeout -s INT -k 20 "$cap" bash -c "$*" >> "$STATEDIR/logs/$name.log" 2>&1; rc=$?
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
  echo "nproc: $(nproc)"
  "$PY" - <<'EOF'
import importlib.metadata as md, platform, sys
print("python", platform.python_version(), sys.executable)
for d in ("torch", "triton", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "onnxruntime-gpu", "numpy", "tabulate", "tqdm", "matplotlib", "pytest", "pytest-xdist", "pytest-timeout", "setuptools", "wheel", "pip", "tritonnx"):
    try:
        print(f"{d} {md.version(d)}")
    except md.PackageNotFoundError:
        print(f"{d} -")
import torch
print("cuda available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
}

# The install's fallbacks, each tried when the one before fails (issue 20, item 7).
pip_editable() { "$PY" -m pip install -q --no-deps --no-build-isolation -e "$REPO" "$@"; }
link_tree() {  # no install: links tritonnx/<sub> -> <folder> (pyproject's package-dir) in this copy
  "$PY" - "$REPO" <<'EOF'
import os, sys
repo = sys.argv[1]
try:
    import tomllib
    with open(os.path.join(repo, "pyproject.toml"), "rb") as f:
        mapping = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
except ImportError:  # Python < 3.11
    mapping = {f"tritonnx.{d}": d for d in ("zoo", "export", "runtime", "triton_kernels", "bench")}
for package, folder in mapping.items():
    if package.count(".") == 1:  # tritonnx.X -> the repo's folder X
        link = os.path.join(repo, "tritonnx", package.split(".", 1)[1])
        if not os.path.lexists(link):
            os.symlink(os.path.join("..", folder), link)
print(repo)
EOF
}
if [ -f "$STATEDIR/pythonpath" ] && [ "$(cat "$STATEDIR/pythonpath")" = "$REPO" ]; then
  link_tree > /dev/null || say "could not link tritonnx/<subpackage> again (no-install fallback)"
fi
step_install() {
  rm -f "$STATEDIR/pythonpath"
  if [ "$DRY" = 1 ] && [ -z "${ON_GPU_TEST_INSTALL:-}" ]; then echo "dry run: installs nothing"
  else
    local log; log=$(mktemp)
    if pip_editable > "$log" 2>&1; then echo "installed: pip install --no-deps --no-build-isolation -e"
    else
      cat "$log"
      local done_=0
      if grep -qi "license" "$log"; then
        # setuptools < 77 rejects the SPDX string form of project.license (no network to upgrade
        # it): retry with the table form, in this machine's copy of pyproject.toml only.
        echo "retrying with the table form of project.license (setuptools $("$PY" -c 'import setuptools; print(setuptools.__version__)' 2>&1))"
        sed -i 's/^license = "\(.*\)"$/license = {text = "\1"}/' "$REPO/pyproject.toml"
        pip_editable > "$log" 2>&1 && done_=1 || cat "$log"
      fi
      if [ $done_ = 0 ] && grep -qi "externally-managed" "$log"; then
        echo "retrying with --break-system-packages (PEP 668: this Python is externally managed)"
        pip_editable --break-system-packages > "$log" 2>&1 && done_=1 || cat "$log"
      fi
      if [ $done_ = 0 ]; then
        echo "pip could not install tritonnx (above); no install: links tritonnx/<subpackage> -> <folder>, the repo on PYTHONPATH"
        link_tree > "$STATEDIR/pythonpath.new" && mv "$STATEDIR/pythonpath.new" "$STATEDIR/pythonpath" || return 1
        prepend_path "$(cat "$STATEDIR/pythonpath")"
      fi
    fi
    rm -f "$log"
  fi
  "$PY" -c "import tritonnx, tritonnx.bench, tritonnx.runtime; print('tritonnx', tritonnx.__version__, tritonnx.__file__)"
}

step_cache() {
  if [ -z "${TRITON_CACHE_DIR:-}" ]; then
    echo "no .triton-cache carried: every kernel compiles here (bench/triton_cache.py build prepares one)"
  else
    echo "TRITON_CACHE_DIR=$TRITON_CACHE_DIR: $(find "$TRITON_CACHE_DIR" -name '*.json' -not -name '__grp__*' 2>/dev/null | wc -l) kernels"
    # Tuned results of a compile-only build are fake timings: the autotuner would trust them.
    "$PY" "$REPO/bench/triton_cache.py" clean "$TRITON_CACHE_DIR"
  fi
  "$PY" "$REPO/bench/triton_cache.py" check ${TRITON_CACHE_DIR:+"$TRITON_CACHE_DIR"}
}

step_ort() {
  if [ "$HAS_GPU" = 0 ]; then
    echo "onnxruntime-gpu: skipped: no GPU"
    "$PY" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" || true
    return 0
  fi
  PY="$PY" bash "$REPO/bench/assemble_ort.sh" "$REPO/.ortparts" "$ORT_DIR" "$ORT_SITE"
  case $? in
    0) prepend_path "$ORT_SITE" ;;
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

# GPU test sub-steps, in order (issue 20, item 1): the riskiest first, the exhaustive sweeps last.
# Each is its own step (own done marker, own cap through run_step's timeout); tests run one by
# one (no pytest-xdist or pytest-timeout on that machine). Failing tests are a result (in the
# log), not a reason to spend the next call on them again: rc 0/1/5 mark the step done.
SMOKE=tests/bench/test_gpu_smoke.py
BARRIER_TESTS="$SMOKE::test_barrier_persistent_lstm"
GRAPHS_TESTS="$SMOKE::test_graphs_session_capture_and_replay tests/bench/test_gpu_capture.py \
tests/runtime/test_session_api.py tests/runtime/test_session_placement.py"
SMOKE_TESTS="$SMOKE::test_conv_per_dtype $SMOKE::test_recurrent_step_per_dtype"
TESTS_TESTS="tests/bench/test_bench_gpu.py tests/triton_kernels/test_rnn_kernels.py tests/triton_kernels/test_rnn_bench.py \
tests/triton_kernels/test_conv_gpu.py::test_blocks_autotuned tests/triton_kernels/test_conv_gpu.py::test_nchw_input"
SWEEP_TESTS="tests/triton_kernels/test_conv_gpu.py::test_every_config tests/runtime/test_conformance.py::test_cases_on_cuda"
gpu_pytest() {
  local args=(-m gpu -q -p no:cacheprovider -rfE --continue-on-collection-errors --durations=10 "$@")
  if [ "$HAS_GPU" = 0 ]; then
    echo "pytest -m gpu $*: skipped: no GPU"
    # They must at least import and collect here: on the lent machine one collection error
    # would otherwise cost the step. One collection of every sub-step's tests, shared by them.
    local all="$STATEDIR/logs/gpu-collect.txt" arg n total=0
    if [ ! -f "$all" ]; then
      # shellcheck disable=SC2086
      "$PY" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors --collect-only \
        $BARRIER_TESTS $GRAPHS_TESTS $SMOKE_TESTS $TESTS_TESTS $SWEEP_TESTS > "$all.new" 2>&1
      local crc=$?
      if [ $crc -ne 0 ] && [ $crc -ne 5 ]; then cat "$all.new"; rm -f "$all.new"; return 1; fi
      mv "$all.new" "$all"
    fi
    for arg in "$@"; do
      n=$(grep -cE "^${arg//./\\.}(::|\[|\$)" "$all")
      echo "  $arg: $n"; total=$((total + n))
    done
    echo "$total tests collected (one collection of every GPU sub-step's tests: $(tail -n 1 "$all"))"
    return 0
  fi
  echo "pytest ${args[*]}"
  "$PY" -m pytest "${args[@]}"
  local rc=$?
  [ $rc -le 1 ] || [ $rc -eq 5 ]
}
step_barrier() { gpu_pytest $BARRIER_TESTS; }
step_graphs() { gpu_pytest $GRAPHS_TESTS; }
step_smoke() { gpu_pytest $SMOKE_TESTS; }
step_tests() { gpu_pytest $TESTS_TESTS; }
step_sweep() { gpu_pytest $SWEEP_TESTS; }

# Kernel rows: one process per family, each with a share of the step's cap and a budget inside
# it. Rows are appended per block as they finish (kernels.jsonl) and a rerun skips them, so a
# family killed at its share is "partial" and the next call resumes it; a family killed twice
# (a hang in one block) is given up and said so. Exit 75 (sticky CUDA error): a fresh process.
run_family() {  # family cap quick(0/1) dtypes
  local fam="$1" share="$2" quick="$3" dtypes="$4" budget rc attempts
  local tries="$STATEDIR/steps/kernels-$fam.kills"
  attempts=$(cat "$tries" 2>/dev/null || echo 0)
  if [ "$attempts" -ge 2 ]; then echo "kernels: $fam: killed twice before: given up (see kernels.log)"; return 0; fi
  while :; do
    budget=$(( share - 30 )); [ "$budget" -lt 10 ] && budget=10
    local t0; t0=$(date +%s)
    TRITONNX_KERNELS=triton timeout -s INT -k 10 "$(( share - 5 ))" "$PY" -m tritonnx bench --kernel-bench "$fam" \
      --dtype "$dtypes" --out "$RESULTS" --format markdown --time-budget "$budget" $([ "$quick" = 1 ] && echo --quick)
    rc=$?
    share=$(( share - ($(date +%s) - t0) ))
    case $rc in
      0) return 0 ;;
      3) echo "kernels: $fam: partial (its time budget): resumes next call"; return 3 ;;
      75) echo "kernels: $fam: sticky CUDA error: resuming in a fresh process (${share}s left)"
          [ "$share" -ge 30 ] && continue; return 3 ;;
      124|137|130) echo $(( attempts + 1 )) > "$tries"
          echo "kernels: $fam: killed at its share (a hang, or one case far past its budget): partial, its finished blocks are kept"
          return 3 ;;
      *) if [ $rc -ge 128 ] && [ "$share" -ge 30 ]; then
           echo "kernels: $fam: the process died (rc $rc): resuming in a fresh process"; continue
         fi
         return $rc ;;
    esac
  done
}
kernels_step() {  # quick(0/1) dtypes
  mkdir -p "$RESULTS"
  local cap=${STEP_CAP:-240} start fam share status=0 rc
  start=$(date +%s)
  for fam in conv rnn; do
    share=$(( cap - ($(date +%s) - start) - 5 ))
    [ "$fam" = conv ] && share=$(( cap * 55 / 100 ))
    if [ "$share" -lt 20 ]; then echo "kernels: $fam: not run: the step's time cap is spent"; status=3; continue; fi
    run_family "$fam" "$share" "$1" "$2"; rc=$?
    if [ $rc -eq 3 ]; then [ $status -eq 0 ] && status=3; elif [ $rc -ne 0 ]; then status=$rc; fi
  done
  return $status
}
step_kernels() { if [ "$DRY" = 1 ]; then kernels_step 1 fp32; else kernels_step 1 fp16; fi; }
step_kernels_full() { kernels_step 0 fp16,fp32; }

# One model phase (bench/gpu_plan.py): resumed into RESULTS; a sticky CUDA error (75) or a dead
# process is resumed in a fresh one while time remains (the harness retries the row in flight
# once, then records it). Done when the phase ran every row; else partial (rc 3).
plan_py() { "$PY" -m tritonnx.bench.gpu_plan "$@" $([ "$DRY" = 1 ] && echo --dry-run --dry-models "$DRY_MODELS"); }
bench_into_results() {  # budget args...: one `tritonnx bench` invocation into RESULTS
  local budget="$1"; shift
  local out_arg="--out"; [ -f "$RESULTS/env.json" ] && out_arg="--resume"
  mkdir -p "$RESULTS"
  TRITONNX_KERNELS="${TRITONNX_KERNELS:-$([ "$DRY" = 1 ] && echo triton)}" \
    "$PY" -m tritonnx bench "$@" --time-budget "$budget" "$out_arg" "$RESULTS" --format markdown --no-progress
}
models_phase() {
  local phase="$1" args cap rc budget tries=0
  mapfile -t args < <(plan_py args "$phase") || return 1
  [ ${#args[@]} -gt 0 ] || { echo "gpu_plan: no arguments for phase $phase"; return 1; }
  cap=$(plan_py cap "$phase")
  if [ -n "$cap" ]; then per_row "$phase" "$cap"; return; fi
  while :; do
    budget=$(( $(left) - 30 )); [ "$budget" -lt 10 ] && budget=10
    bench_into_results "$budget" "${args[@]}"; rc=$?
    tries=$(( tries + 1 ))
    if [ $rc -eq 75 ] || { [ $rc -ge 128 ] && [ $rc -ne 130 ]; }; then
      if [ "$(left)" -ge 40 ] && [ $tries -lt 5 ]; then
        echo "$phase: the bench process exited with rc $rc (75: sticky CUDA error): resuming in a fresh process"; continue
      fi
      return 3
    fi
    [ $rc -eq 0 ] || return $rc
    break
  done
  # Done only when the sweep ran every row; otherwise the next call resumes it.
  "$PY" -c "import json, sys; sys.exit(3 if json.load(open(sys.argv[1]))['not_run'] else 0)" "$RESULTS/results.json"
}
per_row() {  # phase cap: each row in its own process, killed past the cap (torch.compile)
  local phase="$1" cap="$2" model batch dtype provider rc c status=0 n=0 rows
  rows=$(plan_py rows "$phase" --pending "$RESULTS") || return 1
  while read -r model batch dtype provider; do
    [ -n "$model" ] || continue
    if [ "$(left)" -lt $(( cap / 2 + 20 )) ]; then echo "$phase: budget spent before $model b$batch $dtype $provider"; status=3; break; fi
    c=$cap; [ "$c" -gt $(( $(left) - 15 )) ] && c=$(( $(left) - 15 ))
    timeout -s INT -k 10 "$c" bash -c "bench_into_results $(( c - 5 )) --models $model --batch $batch --dtype $dtype \
      --providers $provider --config $([ "$DRY" = 1 ] && echo tiny || echo paper)"
    rc=$?; n=$((n + 1))
    case $rc in
      0) ;;
      124|137|130) echo "$phase: $model b$batch $dtype $provider: per-row cap of ${c}s hit: not run (listed in not_run.txt)"; status=3 ;;
      *) echo "$phase: $model b$batch $dtype $provider: rc $rc"; status=3 ;;
    esac
  done <<< "$rows"
  echo "$phase: $n rows run this call"
  return $status
}

step_gather() {
  local out="${OUT:-$STATEDIR/out}"
  mkdir -p "$out"
  [ -f "$RESULTS/rows.jsonl" ] && plan_py not-run "$RESULTS" > /dev/null 2>&1
  {
    echo "on_gpu.sh $(date -u +%FT%TZ) boot $BOOT_ID dry_run=$DRY budget=$BUDGET"
    echo "== steps (time, step, status, seconds)"; cat "$STATEDIR/steps.tsv" 2>/dev/null
    echo "== done"; ls "$STATEDIR/steps"
    echo "== Triton cache (hits and misses of this machine's compiles)"
    "$PY" "$REPO/bench/triton_cache.py" summary "$TRITONNX_TRITON_CACHE_LOG" 2>&1
    echo "== not run (of the whole plan)"; cat "$RESULTS/not_run.txt" 2>/dev/null | head -n 200
    for f in "$STATEDIR"/logs/*.log; do echo "== tail of $(basename "$f")"; tail -n 40 "$f"; done
  } > "$out/summary.txt"
  tar -czf "$out/state.tgz" -C "$STATEDIR" --exclude=./results/models --exclude=./out \
    --exclude='./state.tgz*' .
  for f in table.md kernels.md results.json speedup.png env.json not_run.txt; do
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

export REPO STATEDIR RESULTS ORT_DIR ORT_SITE BOOT_ID PY DRY HAS_GPU START BUDGET DRY_MODELS SMOKE \
  BARRIER_TESTS GRAPHS_TESTS SMOKE_TESTS TESTS_TESTS SWEEP_TESTS
export -f say left prepend_path step_env pip_editable link_tree step_install step_cache step_ort gpu_pytest \
  step_barrier step_graphs step_smoke step_tests step_sweep run_family kernels_step step_kernels \
  step_kernels_full plan_py bench_into_results models_phase per_row

say "STATEDIR=$STATEDIR budget=${BUDGET}s dry_run=$DRY python=$PY gpu=$HAS_GPU steps=$STEPS"
status=0
for s in ${STEPS//,/ }; do
  case "$s" in
    env)     run_step env 60 machine -- step_env || status=1 ;;
    install) run_step install 180 machine -- step_install || status=1
             [ -f "$STATEDIR/pythonpath" ] && prepend_path "$(cat "$STATEDIR/pythonpath")" ;;
    cache)   run_step cache 30 machine -- step_cache || status=1 ;;
    ort)     run_step ort 240 machine -- step_ort || status=1
             [ -d "$ORT_SITE/onnxruntime" ] && prepend_path "$ORT_SITE" ;;
    barrier) run_step barrier 60 once -- step_barrier || status=1 ;;
    graphs)  run_step graphs 120 once -- step_graphs || status=1 ;;
    smoke)   run_step smoke 150 once -- step_smoke || status=1 ;;
    kernels) run_step kernels 120 once -- step_kernels || status=1 ;;
    models|models-ort|models-fp32|compile)
             run_step "$s" 100000 once -- models_phase "$s" || status=1 ;;
    tests)   run_step tests 420 once -- step_tests || status=1 ;;
    sweep)   run_step sweep 540 once -- step_sweep || status=1 ;;
    kernels-full) run_step kernels-full 540 once -- step_kernels_full || status=1 ;;
    gather)  step_gather > "$STATEDIR/logs/gather.log" 2>&1 && say "gather: $(ls "${OUT:-$STATEDIR/out}" | wc -l) files in ${OUT:-$STATEDIR/out}: $(ls "${OUT:-$STATEDIR/out}" | tr '\n' ' ')" || status=1 ;;
  esac
done
say "finished in $(( $(date +%s) - START ))s (status $status)"
exit $status
