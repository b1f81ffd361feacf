"""`tritonnx bench`: tritonnx vs onnxruntime (and torch, torch.compile) per model, batch, dtype.

Defaults follow the machine: on a GPU, paper configs, batch 1 and 64, fp16 then fp32, every
provider, every zoo model; on a CPU (`make bench`), tiny configs, batch 1, fp32, the models of
`bench.harness.CPU_DEFAULT_MODELS`, no torch.compile, fused kernels under Triton's interpreter
(sessions get ``kernels="triton"`` unless ``TRITONNX_KERNELS`` is set), and the table says its
times are not performance figures.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tritonnx.errors import InvalidArgument

FORMATS = ("table", "markdown", "csv", "json")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark tritonnx against onnxruntime, torch and torch.compile",
        description="Run the zoo's models with every provider on the same ONNX file and print "
        "latency, throughput, speed-up over onnxruntime, agreement, memory, compile time and "
        "roofline fraction. Results are written row by row into --out.",
    )
    p.add_argument("--models", default=None,
                   help="'all' or NAME,...; default: all on a GPU (DESIGN's order), "
                   "mlp,lenet5,resnet18,rnn_lm,char_lstm,gru_lm on a CPU")
    p.add_argument("--config", choices=("paper", "tiny"), default=None,
                   help="model sizes; default paper on a GPU, tiny on a CPU")
    p.add_argument("--batch", default=None, help="batch sizes, e.g. 1,64 (default: 1,64 on a GPU, 1 on a CPU)")
    p.add_argument("--dtype", default=None, help="fp32,fp16 (default: fp16,fp32 on a GPU, fp32 on a CPU)")
    p.add_argument("--providers", default=None,
                   help="tritonnx,onnxruntime,tritonnx-unfused,torch,torch.compile or 'all' "
                   "(default: all on a GPU; no torch.compile on a CPU)")
    p.add_argument("--out", default=None, help="result folder (default bench-results/<UTC time>/)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue a result folder, skipping rows done (sweep options not given again: the folder's own)")
    p.add_argument("--time-budget", type=float, default=None, metavar="S",
                   help="stop starting rows after S seconds and list what did not run")
    p.add_argument("--format", choices=FORMATS, default="table", help="what to print (files get every format)")
    p.add_argument("--kernels", default=None, metavar="FAMILIES",
                   help="run the kernel benchmarks of these families (conv,rnn or 'all') instead of "
                   "the models (add --models to run both)")
    p.add_argument("--quick", action="store_true", help="fewer timing repetitions / kernel cases")
    p.add_argument("--seq-len", type=int, default=None, help="sequence length for sequence models")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--no-tf32", action="store_true", help="fp32 matrix products without tf32 (all providers)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidArgument(f"--{what} expects comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise InvalidArgument(f"--{what} expects positive integers, got {text!r}")
    return values


def _dtypes(text: str) -> list[str]:
    from tritonnx.bench.devices import canonical_dtype

    names = [canonical_dtype(x) for x in text.split(",") if x.strip()]
    if "bf16" in names:
        raise InvalidArgument("bf16 is a kernel dtype, not an export dtype: use --dtype fp32,fp16 "
                              "(bf16 works with --kernels)")
    return list(dict.fromkeys(names))


#: Options that define a sweep: `--resume DIR` without them continues the folder's own sweep.
SWEEP_OPTIONS = {"models": None, "config": None, "batch": None, "dtype": None, "providers": None,
                 "seq_len": None, "seed": 0, "opset": 18, "no_tf32": False}


def _original_sweep(out: Path) -> dict:
    """The sweep options of the command that started result folder `out` (from its env.json)."""
    import json
    import shlex

    try:
        env = json.loads((out / "env.json").read_text(encoding="utf-8"))
        argv = shlex.split((env.get("commands") or [env.get("command")])[0] or "")
    except (OSError, ValueError):
        return {}
    if argv[1:2] != ["bench"]:
        return {}
    parser = argparse.ArgumentParser(add_help=False)
    register(parser.add_subparsers())
    try:
        original, _ = parser.parse_known_args(argv[1:])
    except SystemExit:
        return {}
    return {k: getattr(original, k, None) for k in SWEEP_OPTIONS}


def settings_from_args(args, *, on_gpu: bool, known_models: list[str] | None = None):
    """`BenchSettings` from parsed arguments and the machine's defaults.

    With `--resume DIR`, a sweep option left at its default takes the value of the command that
    started DIR, so ``--resume DIR`` alone continues that sweep rather than the default one.
    """
    from tritonnx.bench import environment
    from tritonnx.bench.harness import CPU_DEFAULT_MODELS, BenchSettings, order_models
    from tritonnx.bench.providers import parse_providers

    if args.resume and args.out and Path(args.resume) != Path(args.out):
        raise InvalidArgument("give either --out or --resume (the folder to continue), not both")
    if args.resume:
        out = Path(args.resume)
        if not out.is_dir():
            raise InvalidArgument(f"--resume {out}: no such result folder")
        original = _original_sweep(out)
        args = argparse.Namespace(**vars(args))
        for key, default in SWEEP_OPTIONS.items():
            if getattr(args, key, default) == default and original.get(key, default) != default:
                setattr(args, key, original[key])
    else:
        out = Path(args.out) if args.out else Path("bench-results") / environment.utc_stamp()
    if args.time_budget is not None and args.time_budget <= 0:
        raise InvalidArgument(f"--time-budget expects a positive number of seconds, got {args.time_budget}")
    models_text = args.models or ("all" if on_gpu else ",".join(CPU_DEFAULT_MODELS))
    requested = [m.strip() for m in models_text.split(",") if m.strip()]
    if known_models is None:
        import tritonnx.zoo

        known_models = list(tritonnx.zoo.names())
    if args.models is None and not on_gpu:
        requested = [m for m in requested if m in known_models]
    models = order_models(requested, known_models)
    return BenchSettings(
        models=models,
        out=out,
        config=args.config or ("paper" if on_gpu else "tiny"),
        batches=_ints(args.batch or ("1,64" if on_gpu else "1"), "batch"),
        dtypes=_dtypes(args.dtype or ("fp16,fp32" if on_gpu else "fp32")),
        providers=parse_providers(args.providers, on_gpu=on_gpu),
        time_budget=args.time_budget,
        seed=args.seed,
        seq_len=args.seq_len,
        opset=args.opset,
        quick=args.quick or not on_gpu,
        # On a CPU, exercise the kernels themselves (under the interpreter), not their torch
        # references; an explicit TRITONNX_KERNELS wins.
        kernels=None if on_gpu or os.environ.get("TRITONNX_KERNELS") else "triton",
        tf32=not args.no_tf32,
    )


def run_kernels(args, out: Path, on_gpu: bool, *, record_env: bool = True) -> int:
    """`--kernels`: each family's contract-6 `benchmark`, rows into kernels.jsonl / kernels.md."""
    from tritonnx.bench import environment, report
    from tritonnx.bench.devices import canonical_dtype
    from tritonnx.bench.kernels import FAMILIES, STICKY_EXIT, StickyCudaError, run_families

    text = args.kernels
    families = list(FAMILIES) if text == "all" else [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise InvalidArgument(f"--kernels: unknown famil{'ies' if len(unknown) > 1 else 'y'} "
                              f"{', '.join(unknown)}: expected {', '.join(FAMILIES)} or all")
    dtypes = [canonical_dtype(x) for x in (args.dtype or ("fp16,fp32" if on_gpu else "fp32")).split(",") if x.strip()]
    env = environment.collect(tf32=not args.no_tf32)
    if record_env:  # else the model sweep that follows records it
        env = environment.record(out, env)
    # Each row is appended as its block finishes (a killed run keeps them) and a rerun into the
    # same folder skips the blocks already there; a sticky CUDA error exits STICKY_EXIT.
    done = frozenset((r["family"], r["case"], r["dtype"], int(r["batch"]))
                     for r in report.load_rows(out, report.KERNELS_FILE))
    partial: list[str] = []
    status = 0
    try:
        _, messages = run_families(families, dtypes=dtypes, quick=args.quick, time_budget=args.time_budget,
                                   on_row=lambda row: report.append_row(out, row, report.KERNELS_FILE),
                                   done=done, partial=partial)
    except StickyCudaError as exc:
        messages, status = [f"{exc}: exiting (a fresh process resumes after this block)"], STICKY_EXIT
    for msg in messages:
        print(f"kernels: {msg}", file=sys.stderr)
    if partial and not status:
        status = 3  # a family stopped on its time budget: resume into the same folder
    all_rows = report.load_rows(out, report.KERNELS_FILE)
    if all_rows:
        print(report.render(all_rows, args.format, env=env, columns=report.KERNEL_COLUMNS))
        (out / report.KERNELS_MD).write_text(
            report.render(all_rows, "markdown", env=env, columns=report.KERNEL_COLUMNS), encoding="utf-8")
    return status


def run(args) -> int:
    import torch

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
    run_models = args.kernels is None or args.models is not None
    if not run_models:
        out = Path(args.resume or args.out or Path("bench-results") / _stamp())
        out.mkdir(parents=True, exist_ok=True)
        return run_kernels(args, out, on_gpu)

    from tritonnx.bench import report
    from tritonnx.bench.harness import Harness

    settings = settings_from_args(args, on_gpu=on_gpu)
    if args.kernels is not None:
        run_kernels(args, settings.out, on_gpu, record_env=False)
    harness = Harness(settings, progress=not args.no_progress)
    result = harness.run()
    if result.sticky:
        from tritonnx.bench.kernels import STICKY_EXIT

        print(f"sticky CUDA error ({result.sticky}): exiting; --resume {result.out} in a fresh process retries "
              f"the {len(result.not_run)} rows after it", file=sys.stderr)
        return STICKY_EXIT
    text = report.render(result.rows, args.format, env=result.env)
    print(text)
    print(f"results: {result.out} ({', '.join(p.name for p in result.written.values())})", file=sys.stderr)
    if result.not_run:
        print(f"{len(result.not_run)} rows not run (time budget): --resume {result.out} to continue",
              file=sys.stderr)
    return 0


def _stamp() -> str:
    from tritonnx.bench import environment

    return environment.utc_stamp()
