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

from tritonnx.bench.harness import CPU_DEFAULT_MODELS
from tritonnx.commands.common import (add_providers, add_seed, existing_file, output_path,
                                      positive_float, positive_int)
from tritonnx.errors import InvalidArgument

FORMATS = ("table", "markdown", "csv", "json")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="benchmark tritonnx against onnxruntime, torch and torch.compile",
        description="Run zoo models and ONNX files with every provider on the same ONNX file and print "
        "latency, throughput, speed-up over onnxruntime, agreement, memory, compile time and "
        "roofline fraction. Results are written row by row into --out.",
    )
    p.add_argument("--models", default=None,
                   help="'all' or NAME,... where a NAME is a zoo model or a path to an .onnx file; default: "
                   "all on a GPU (DESIGN's order), " + ",".join(CPU_DEFAULT_MODELS) + " on a CPU")
    p.add_argument("--shapes", default=None, metavar="NAME:DxD,...",
                   help="input shapes of ONNX files, trtexec's syntax (input:8x3x224x224,tokens:8x32); "
                   "a first dimension left symbolic takes each --batch")
    p.add_argument("--feeds", default=None, metavar="FILE.npz",
                   help="real inputs for ONNX files (np.savez, by input name) instead of random ones")
    p.add_argument("--config", choices=("paper", "tiny"), default=None,
                   help="zoo model sizes; default paper on a GPU, tiny on a CPU")
    p.add_argument("--batch", default=None, help="batch sizes, e.g. 1,64 (default: 1,64 on a GPU, 1 on a CPU)")
    p.add_argument("--dtype", default=None, help="fp32,fp16 (default: fp16,fp32 on a GPU, fp32 on a CPU)")
    add_providers(p, "default: all on a GPU; no torch.compile on a CPU")
    p.add_argument("--kernels", default=None, metavar="triton|torch|FAMILIES",
                   help="triton or torch: how fused nodes run (their Triton kernels, on a CPU under "
                   "Triton's interpreter, or their torch references; default: triton); kernel family "
                   "names (conv,rnn or 'all', as DESIGN.md spells the kernel benchmarks): the same "
                   "as --kernel-bench FAMILIES")
    p.add_argument("--kernel-bench", default=None, metavar="FAMILIES",
                   help="run the kernel benchmarks of these families (conv,rnn or 'all') instead of "
                   "the models (add --models to run both)")
    p.add_argument("--compare", nargs=2, default=None, metavar=("A", "B"),
                   help="print two result sets (results.json files or their folders) side by side with "
                   "ratios B/A, and run nothing")
    p.add_argument("--out", default=None, help="result folder (default bench-results/<UTC time>/; its parent must exist)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue a result folder, skipping rows done (sweep options not given again: the folder's own)")
    p.add_argument("--time-budget", type=positive_float, default=None, metavar="S",
                   help="stop starting rows after S seconds and list what did not run")
    p.add_argument("--format", choices=FORMATS, default="table", help="what to print (files get every format)")
    p.add_argument("--wide", action="store_true", help="every column in the terminal table (default: the "
                   "columns that matter, fitting 100 columns)")
    p.add_argument("--quick", action="store_true", help="fewer timing repetitions / kernel cases")
    p.add_argument("--seq-len", type=positive_int, default=None, help="sequence length for zoo sequence models")
    add_seed(p, "the weights and random inputs")
    p.add_argument("--opset", type=positive_int, default=18)
    p.add_argument("--no-tf32", action="store_true", help="fp32 matrix products without tf32 (all providers)")
    p.add_argument("--no-progress", action="store_true", help="no progress (bar on a terminal, else a line per row)")
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
                              "(bf16 works with --kernel-bench)")
    return list(dict.fromkeys(names))


#: Options that define a sweep: `--resume DIR` without them continues the folder's own sweep.
SWEEP_OPTIONS = {"models": None, "config": None, "batch": None, "dtype": None, "providers": None,
                 "seq_len": None, "seed": 0, "opset": 18, "no_tf32": False, "shapes": None, "feeds": None,
                 "kernels": None}


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
    from tritonnx.cli import Parser

    parser = Parser(add_help=False)
    register(parser.add_subparsers(parser_class=Parser))
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
    from tritonnx.bench.feeds import load_feeds, parse_shapes
    from tritonnx.bench.harness import CPU_DEFAULT_MODELS, BenchSettings, is_file_model, order_models
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
    batches = _ints(args.batch or ("1,64" if on_gpu else "1"), "batch")
    from tritonnx.export.exporter import check_opset

    check_opset(args.opset)  # as export says it, before any row (was an error in every row)
    shapes = parse_shapes(getattr(args, "shapes", None))
    feeds = load_feeds(args.feeds) if getattr(args, "feeds", None) else None
    files = _file_models([m for m in requested if is_file_model(m) and m not in known_models], shapes, batches,
                         feeds, batch_given=args.batch is not None)
    requested = [files[m].name if m in files else m for m in requested]
    if "all" in requested and requested != ["all"]:
        zoo_all = order_models(["all"], known_models)
        requested = [x for m in requested for x in (zoo_all if m == "all" else [m])]
    models = order_models(requested, known_models, files={f.name for f in files.values()})
    if (shapes or feeds) and not files:
        raise InvalidArgument("--shapes and --feeds are for ONNX files given in --models (path/to/model.onnx); "
                              "zoo models take --batch and --seq-len")
    kernels = getattr(args, "kernels", None)
    if kernels is None and not on_gpu and not os.environ.get("TRITONNX_KERNELS"):
        # On a CPU, exercise the kernels themselves (under the interpreter), not their torch
        # references; an explicit --kernels or TRITONNX_KERNELS wins.
        kernels = "triton"
    return BenchSettings(
        models=models,
        out=out,
        config=args.config or ("paper" if on_gpu else "tiny"),
        batches=batches,
        dtypes=_dtypes(args.dtype or ("fp16,fp32" if on_gpu else "fp32")),
        providers=parse_providers(args.providers, on_gpu=on_gpu),
        time_budget=args.time_budget,
        seed=args.seed,
        seq_len=args.seq_len,
        opset=args.opset,
        quick=args.quick or not on_gpu,
        kernels=kernels,
        tf32=not args.no_tf32,
        files={f.name: f for f in files.values()},
        shapes=shapes,
        feeds=feeds,
    )


def _file_models(paths: list[str], shapes: dict, batches: list[int], feeds: dict | None = None, *,
                 batch_given: bool = False) -> dict:
    """`FileModel`s of the ONNX files in --models (read without their weights), by path text."""
    import onnx

    from tritonnx.bench.feeds import fixed_batch, input_specs, model_dtype
    from tritonnx.bench.harness import FileModel

    files, names = {}, {}
    for text in paths:
        path = existing_file(text, "--models: ONNX file")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - one line naming the file
            raise InvalidArgument(f"--models {text}: not an ONNX model ({type(exc).__name__})") from None
        name = path.name
        if name in names and names[name] != path.resolve():
            raise InvalidArgument(f"--models: two files named {name!r} ({names[name]}, {path}): rename one")
        names[name] = path.resolve()
        fixed = fixed_batch(proto, shapes, feeds)
        if fixed and batch_given and list(batches) != [fixed]:
            import warnings

            warnings.warn(f"--batch {','.join(map(str, batches))} does not apply to {text}: its batch is {fixed} "
                          "(fixed by the file, --shapes or --feeds); its rows are batch "
                          f"{fixed} only", UserWarning, stacklevel=2)
        files[text] = FileModel(name=name, path=path, dtype=model_dtype(proto),
                                batches=(fixed,) if fixed else tuple(batches), source=text,
                                inputs=tuple(s.name for s in input_specs(proto)))
    theirs = "theirs: " + "; ".join(f"{f.name}: {', '.join(f.inputs)}" for f in files.values())
    unknown = [n for n in shapes if not any(n in f.inputs for f in files.values())]
    if files and unknown:
        raise InvalidArgument(f"--shapes {unknown[0]}: no ONNX file in --models has an input {unknown[0]!r}; {theirs}")
    unknown = [n for n in (feeds or {}) if not any(n in f.inputs for f in files.values())]
    if files and unknown:  # else they were silently replaced by random values
        raise InvalidArgument(f"--feeds: array {unknown[0]!r} names no input of an ONNX file in --models; {theirs}")
    return files


def _families(text: str) -> list[str]:
    from tritonnx.bench.kernels import FAMILIES

    families = list(FAMILIES) if text == "all" else [f.strip() for f in text.split(",") if f.strip()]
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise InvalidArgument(f"--kernel-bench: unknown famil{'ies' if len(unknown) > 1 else 'y'} "
                              f"{', '.join(unknown) or repr(text)}: expected {', '.join(FAMILIES)} or all")
    return families


def run_kernels(args, out: Path, on_gpu: bool, *, record_env: bool = True) -> int:
    """`--kernel-bench`: each family's contract-6 `benchmark`, rows into kernels.jsonl / kernels.md."""
    from tritonnx.bench import environment, report
    from tritonnx.bench.devices import canonical_dtype
    from tritonnx.bench.kernels import STICKY_EXIT, StickyCudaError, run_families

    families = _families(args.kernel_bench)
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
        print(report.render(all_rows, args.format, env=env, columns=report.KERNEL_COLUMNS, wide=args.wide))
        (out / report.KERNELS_MD).write_text(
            report.render(all_rows, "markdown", env=env, columns=report.KERNEL_COLUMNS), encoding="utf-8")
    return status


def run_compare(args) -> int:
    """`--compare A B`: two result sets side by side with ratios; runs nothing (no torch)."""
    from tritonnx.bench import report

    (a_env, a_rows), (b_env, b_rows) = (report.load_result_set(p) for p in args.compare)
    rows = report.compare_rows(a_rows, b_rows)
    if not rows:
        raise InvalidArgument(f"--compare: neither {args.compare[0]} nor {args.compare[1]} has rows")
    print(report.render_compare(a_env, b_env, rows, args.format, wide=args.wide))
    return 0


def _kernels_flag(args) -> None:
    """`--kernels` takes triton|torch, or kernel family names: then it is `--kernel-bench`
    (DESIGN.md's `tritonnx bench --kernels conv,rnn`); the two spellings may not disagree."""
    from tritonnx.commands.common import KERNEL_MODES

    text = args.kernels
    if text is None or text in KERNEL_MODES:
        return
    try:
        families = _families(text)
    except InvalidArgument:
        raise InvalidArgument(f"--kernels: expected {' or '.join(KERNEL_MODES)}, or kernel families "
                              f"(conv,rnn or all), got {text!r}") from None
    if args.kernel_bench is not None and _families(args.kernel_bench) != families:
        raise InvalidArgument(f"--kernels {text} and --kernel-bench {args.kernel_bench} name other families: give one")
    args.kernel_bench, args.kernels = text, None


def _check_early(args) -> None:
    """What can be refused before torch is imported: files, output folders, the compare mode."""
    from tritonnx.bench.harness import is_file_model

    _kernels_flag(args)
    if args.compare:
        others = [f"--{k.replace('_', '-')}" for k in ("models", "kernel_bench", "out", "resume", "shapes", "feeds")
                  if getattr(args, k)]
        if others:
            raise InvalidArgument(f"--compare runs nothing: drop {', '.join(others)}")
        return
    for text in (m.strip() for m in (args.models or "").split(",")):
        if text and is_file_model(text):
            existing_file(text, "--models: ONNX file")
    if args.feeds:
        existing_file(args.feeds, "--feeds")
    if args.out and not args.resume:
        output_path(args.out, "--out", folder=True)
    if args.kernel_bench is not None:
        _families(args.kernel_bench)


def run(args) -> int:
    _check_early(args)
    if args.compare:
        return run_compare(args)
    import torch

    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = not args.no_tf32
        torch.backends.cudnn.allow_tf32 = not args.no_tf32
    run_models = args.kernel_bench is None or args.models is not None
    if not run_models:
        out = Path(args.resume or args.out or Path("bench-results") / _stamp())
        out.mkdir(parents=True, exist_ok=True)
        return run_kernels(args, out, on_gpu)

    from tritonnx.bench import report
    from tritonnx.bench.harness import Harness

    settings = settings_from_args(args, on_gpu=on_gpu)
    if args.kernel_bench is not None:
        run_kernels(args, settings.out, on_gpu, record_env=False)
    harness = Harness(settings, progress=not args.no_progress)
    result = harness.run()
    if result.sticky:
        from tritonnx.bench.kernels import STICKY_EXIT

        print(f"sticky CUDA error ({result.sticky}): exiting; --resume {result.out} in a fresh process retries "
              f"the {len(result.not_run)} rows after it", file=sys.stderr)
        return STICKY_EXIT
    text = report.render(result.rows, args.format, env=result.env, wide=args.wide)
    print(text)
    print(f"results: {result.out} ({', '.join(p.name for p in result.written.values())})", file=sys.stderr)
    if result.not_run:
        print(f"{len(result.not_run)} rows not run (time budget): --resume {result.out} to continue",
              file=sys.stderr)
    return 0


def _stamp() -> str:
    from tritonnx.bench import environment

    return environment.utc_stamp()
