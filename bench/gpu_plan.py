"""The plan of one 15-minute GPU lease (issue 18), the single owner of its facts.

`bench/on_gpu.sh` asks this module for the device calls (``plan``), for the `tritonnx bench`
arguments of each model phase (``args PHASE``), for the rows of a phase (``rows PHASE``), and
for what the plan did not run (``not-run RESULTS``). ``plan`` needs only the standard library,
so ``python3 bench/gpu_plan.py plan`` works where tritonnx is not installed.

    python3 bench/gpu_plan.py plan [--repo DIR]   # exit 1 when a call's payload does not fit
    python3 -m tritonnx.bench.gpu_plan args models [--dry-run]
    python3 -m tritonnx.bench.gpu_plan rows compile [--pending RESULTS] [--dry-run]
    python3 -m tritonnx.bench.gpu_plan cap compile
    python3 -m tritonnx.bench.gpu_plan not-run RESULTS [--dry-run]

Time figures are estimates until a lease measures them (none has run yet).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

#: The first two models of every phase: one CNN and one recurrent model, the answers that matter most.
FIRST_MODELS = ("lenet5", "char_lstm")


@dataclass(frozen=True)
class Phase:
    """One model-benchmark phase: a `tritonnx bench` sweep resumed into the lease's result set."""

    name: str
    dtypes: tuple[str, ...]
    providers: tuple[str, ...]
    what: str
    batches: tuple[int, ...] = (1, 64)
    per_row_cap: int | None = None  # seconds: each row in its own process, killed past the cap


#: The model phases in the order of work. Providers within a phase run in the harness's order.
PHASES = (
    Phase("models", ("fp16",), ("tritonnx", "tritonnx-unfused", "torch"),
          "zoo rows, paper configs, fp16, batch 1 and 64: tritonnx, tritonnx-unfused, torch eager"),
    Phase("models-ort", ("fp16",), ("onnxruntime",), "onnxruntime-gpu rows, fp16 (after its wheel is assembled)"),
    Phase("models-fp32", ("fp32",), ("tritonnx", "onnxruntime", "tritonnx-unfused", "torch"), "fp32 rows"),
    Phase("compile", ("fp16", "fp32"), ("torch.compile",), "torch.compile (max-autotune) rows, last",
          per_row_cap=90),
)
PHASE_NAMES = tuple(p.name for p in PHASES)


@dataclass(frozen=True)
class Call:
    """One device call: what `bench/on_gpu.sh` runs there, what it carries, its time."""

    steps: str
    carry: tuple[str, ...]
    seconds: int
    what: str
    budget: int | None = None


#: Seconds counted for starting the machine (the device README: a minute or more).
START_S = 75
#: Seconds between two back-to-back calls (the machine goes back after 30 s idle).
GAP_S = 3
PART_CALL_S = 15
CALLS = (
    Call("env,install,cache,barrier,graphs,smoke,kernels,models,gather", (".triton-cache",), 450,
         "environment, install, Triton cache check, GPU smoke tests (grid barrier under a 60 s timeout, "
         "one CUDA-graph session capture and replay, one case per kernel family and dtype), kernel rows "
         "vs cuDNN (fp16, quick), zoo rows fp16 batch 1,64 (lenet5 and char_lstm first); gather",
         budget=440),
    Call("ort", (".ortparts/part-00", ".ortparts/wheel.sha256"), PART_CALL_S, "onnxruntime-gpu part 1 of 5"),
    Call("ort", (".ortparts/part-01",), PART_CALL_S, "onnxruntime-gpu part 2 of 5"),
    Call("ort", (".ortparts/part-02",), PART_CALL_S, "onnxruntime-gpu part 3 of 5"),
    Call("ort", (".ortparts/part-03",), PART_CALL_S, "onnxruntime-gpu part 4 of 5"),
    Call("install,ort,models-ort,models,models-fp32,compile,gather", (".ortparts/part-04",), 180,
         "part 5 of 5: assemble and install onnxruntime-gpu, its fp16 rows (--resume), the rest of the "
         "fp16 rows, then fp32 rows, then torch.compile rows (90 s cap per row) as time allows; gather",
         budget=170),
)
#: Steps kept for a later lease (not in the 13-minute plan).
LATER_STEPS = (
    ("tests", "the rest of the GPU tests (bench paths, recurrent kernels on every shape, conv blocks autotuned)"),
    ("sweep", "exhaustive sweeps: every conv config, every conformance case on CUDA"),
    ("kernels-full", "the full kernel sweep (every block, batch 1 and 64, fp16 and fp32)"),
)
LIMIT_S = 13 * 60

#: What one device call may take along (working tree + carried paths) and bring back (GPU.md).
MIB = 2**20
CARRY_LIMIT = 64 * MIB
MAX_CARRY_PATHS = 8
RETURN_FILES = 8
RETURN_FILE_LIMIT = 16 * MIB
#: The files each call's gather step writes into $OUT (bench/on_gpu.sh, step_gather).
RETURNED = ("summary.txt", "state.tgz", "table.md", "kernels.md", "results.json", "speedup.png", "env.json",
            "not_run.txt")
#: Sizes assumed for carried paths not prepared in this checkout: one onnxruntime-gpu part (split at
#: 55 MiB; the 1.31.1 wheel, 255.6 MB, makes 4 of them and a 23.7 MiB fifth), the Triton cache
#: (the last build: 93 kernels, 38 MB).
PART_BYTES = 55 * MIB
EXPECTED_BYTES = {".triton-cache": 45 * 10**6, ".ortparts/wheel.sha256": 128}
#: Done here, before the lease: what the calls carry.
PREPARE = (
    ("bench/prepare_triton_cache.sh", ".triton-cache: the sm_90 cubins of the smoke tests and the quick kernel "
     "benchmark (Python 3.12 venv .venv-gpu312 with the GPU machine's cp312 triton 3.6.0; needs PyPI once)"),
    ("../shared/gpu/prepare_ort_parts.sh", ".ortparts/part-00..04 + wheel.sha256 (downloads onnxruntime-gpu "
     "1.31.1 cp312 once)"),
)


def plan_seconds() -> int:
    """The plan's device time: one start, every call, the gaps between them."""
    return START_S + sum(c.seconds for c in CALLS) + GAP_S * (len(CALLS) - 1)


def path_bytes(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.lstat(os.path.join(root, f)).st_size for f in files)
    return total


def tree_bytes(repo: Path) -> int:
    """The working tree as a device call copies it: tracked files and untracked ones git does not ignore."""
    names = subprocess.run(["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard", "-z"],
                           capture_output=True, check=True).stdout.split(b"\0")
    return sum(os.lstat(repo / n.decode()).st_size for n in names if n and os.path.lexists(repo / n.decode()))


def expected_bytes(carried: str) -> int:
    return PART_BYTES if carried.startswith(".ortparts/part-") else EXPECTED_BYTES.get(carried, 0)


def payload(repo: Path) -> list[dict]:
    """Per call: the tree's bytes, each carried path's (measured here, else expected), the total,
    and whether it fits `CARRY_LIMIT` and `MAX_CARRY_PATHS`."""
    repo = Path(repo)
    tree = tree_bytes(repo)
    calls = []
    for call in CALLS:
        carry = [(c, path_bytes(repo / c), True) if os.path.lexists(repo / c) else (c, expected_bytes(c), False)
                 for c in call.carry]
        total = tree + sum(b for _, b, _ in carry)
        calls.append({"tree": tree, "carry": carry, "total": total,
                      "fits": total <= CARRY_LIMIT and len(carry) <= MAX_CARRY_PATHS})
    return calls


def _mib(n: int) -> str:
    return f"{n / MIB:.1f} MiB"


def plan_text(statedir: str = ".gpu-state", repo: Path | None = None) -> str:
    """The lease as a numbered list of device calls (command, carry, payload, time) and its total."""
    lines = ["before the lease, here: " + "; ".join(f"{cmd} ({what})" for cmd, what in PREPARE),
             f"GPU lease plan: {len(CALLS)} device calls, back to back on one warm machine "
             f"(it goes back after 30 s idle; a cold start repeats the start and the parts from part-00)",
             f"  start of the machine: ~{START_S} s"]
    sizes = payload(repo) if repo is not None else None
    for i, call in enumerate(CALLS, 1):
        budget = f" --budget {call.budget}" if call.budget else ""
        lines.append(f"  call {i}: ~{call.seconds} s: {call.what}")
        lines.append(f"      command: bash bench/on_gpu.sh {statedir} --steps {call.steps}{budget}")
        lines.append(f"      carry:   {', '.join(call.carry)}")
        if sizes is not None:
            p = sizes[i - 1]
            parts = " + ".join(f"{c} {_mib(b)} ({'measured' if m else 'expected: not prepared here'})"
                               for c, b, m in p["carry"])
            lines.append(f"      payload: tree {_mib(p['tree'])} + {parts} = {_mib(p['total'])} of "
                         f"{_mib(CARRY_LIMIT)}: {'fits' if p['fits'] else 'DOES NOT FIT'}")
    if sizes is not None:
        lines.append(f"  returned by each call: at most {len(RETURNED)} of {RETURN_FILES} files "
                     f"({', '.join(RETURNED)}), each at most {_mib(RETURN_FILE_LIMIT)} (gather gzips a larger one)")
    total = plan_seconds()
    lines.append(f"  total: ~{total} s ({total / 60:.1f} min) of the 15-minute lease, limit {LIMIT_S // 60} min; "
                 f"gaps of {GAP_S} s between calls counted")
    lines.append("  cut rows: listed in RESULTS/not_run.txt (and summary.txt), never silently missing")
    lines.append("  later leases (steps kept): " + "; ".join(f"{s}: {w}" for s, w in LATER_STEPS))
    lines.append(f"  after a cold start: put the returned state.tgz into {statedir}/ and carry it")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- phases (need tritonnx)
def model_order(known: list[str]) -> list[str]:
    """`FIRST_MODELS`, then DESIGN's `MODEL_ORDER`, then the rest of the zoo."""
    from tritonnx.bench.harness import MODEL_ORDER

    order = [m for m in FIRST_MODELS if m in known]
    order += [m for m in MODEL_ORDER if m in known and m not in order]
    return order + [m for m in known if m not in order]


def _phase(name: str) -> Phase:
    for phase in PHASES:
        if phase.name == name:
            return phase
    raise SystemExit(f"gpu_plan: unknown phase {name!r}: expected one of {', '.join(PHASE_NAMES)}")


@dataclass
class Sweep:
    models: list[str]
    config: str
    batches: list[int]
    dtypes: list[str]
    providers: list[str] = field(default_factory=list)


def sweep(phase: Phase, *, dry_run: bool, dry_models: str = "mlp") -> Sweep:
    """The phase's sweep; a dry run (CPU) uses `dry_models`, tiny configs, batch 1, fp32."""
    if dry_run:  # torch.compile's per-row processes exercised with torch eager rows of batch 2
        providers = [p for p in phase.providers if p != "torch.compile"] or ["torch"]
        return Sweep(dry_models.split(","), "tiny", [2] if phase.per_row_cap else [1], ["fp32"], providers)
    import tritonnx.zoo

    return Sweep(model_order(list(tritonnx.zoo.names())), "paper", list(phase.batches), list(phase.dtypes),
                 list(phase.providers))


def bench_args(s: Sweep) -> list[str]:
    """`tritonnx bench` arguments of a sweep (without --out/--resume and --time-budget)."""
    return ["--models", ",".join(s.models), "--config", s.config, "--batch", ",".join(map(str, s.batches)),
            "--dtype", ",".join(s.dtypes), "--providers", ",".join(s.providers)]


def planned_rows(s: Sweep) -> list:
    """The harness's `RowPlan`s of a sweep, in its order of work."""
    from tritonnx.bench.harness import BenchSettings, plan_rows

    return plan_rows(BenchSettings(models=s.models, out=Path("."), config=s.config, batches=s.batches,
                                   dtypes=s.dtypes, providers=s.providers))


def not_run(results: Path, *, dry_run: bool, dry_models: str = "mlp") -> list[str]:
    """Every planned row of every phase that has no row in `results` (rows.jsonl), by phase."""
    from tritonnx.bench import report

    have = {report.row_key(r) for r in report.load_rows(results) if r.get("status") != "missing"}
    lines, seen = [], set()
    for phase in PHASES:
        for row in planned_rows(sweep(phase, dry_run=dry_run, dry_models=dry_models)):
            if row.key in have or row.key in seen:
                continue
            seen.add(row.key)
            lines.append(f"not run: {row.label()} ({phase.name})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu_plan", description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("plan", "args", "rows", "cap", "not-run"))
    parser.add_argument("target", nargs="?", help="a phase (args, rows) or a result folder (not-run)")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--dry-models", default="mlp")
    parser.add_argument("--statedir", default=".gpu-state")
    parser.add_argument("--repo", type=Path, help="plan: measure each call's payload in this checkout")
    parser.add_argument("--pending", metavar="RESULTS", help="rows: only those not yet in this result folder")
    args = parser.parse_args(argv)
    if args.what == "plan":
        print(plan_text(args.statedir, args.repo))
        if args.repo is not None and not all(p["fits"] for p in payload(args.repo)):
            print(f"gpu_plan: a call's payload is over {_mib(CARRY_LIMIT)} or {MAX_CARRY_PATHS} paths (above)",
                  file=sys.stderr)
            return 1
        return 0
    if not args.target:
        parser.error(f"{args.what} needs a {'result folder' if args.what == 'not-run' else 'phase'}")
    if args.what == "not-run":
        results = Path(args.target)
        lines = not_run(results, dry_run=args.dry_run, dry_models=args.dry_models)
        text = "\n".join(lines) + ("\n" if lines else "")
        if results.is_dir():
            (results / "not_run.txt").write_text(text or "every planned row ran\n", encoding="utf-8")
        sys.stdout.write(text)
        return 0
    phase = _phase(args.target)
    s = sweep(phase, dry_run=args.dry_run, dry_models=args.dry_models)
    if args.what == "args":  # one argument a line (bash: mapfile -t)
        print("\n".join(bench_args(s)))
        return 0
    if args.what == "cap":
        print(phase.per_row_cap or "")
        return 0
    have = set()
    if args.pending:
        from tritonnx.bench import report

        have = {report.row_key(r) for r in report.load_rows(Path(args.pending)) if r.get("status") != "missing"}
    for row in planned_rows(s):  # rows: one line per row, "model batch dtype provider"
        if row.key not in have:
            print(row.model, row.batch, row.dtype, row.provider)
    return 0


if __name__ == "__main__":
    sys.exit(main())
