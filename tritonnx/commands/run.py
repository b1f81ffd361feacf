"""`tritonnx run MODEL.onnx`: run a model, measure its latency, show what ran, print or save outputs.

    tritonnx run model.onnx [--shapes input:8x3x224x224] [--feeds real.npz | -i NAME=x.npy]
                 [--iterations N] [--warmup K] [--duration S] [--providers tritonnx,onnxruntime]
                 [--kernels triton|torch] [--profile] [-o outputs.npz]

Latency follows `tritonnx.bench.stats` (the benchmark's rules): K warm-up runs, then timed runs
until N samples or S seconds measured, whichever first; min, p50, p90, p99, max, mean and n,
each percentile only where n supports it. Feeds not given are random, of the right dtype and
range (`tritonnx.bench.feeds`).
"""
from __future__ import annotations

import textwrap
import time

from tritonnx.commands.common import (add_kernels, add_providers, add_seed, add_wide, existing_file, non_negative_int,
                                      output_path, parse_providers, positive_float, positive_int, table)
from tritonnx.errors import InvalidArgument

#: Providers `run` can time on an ONNX file (torch rows need the torch module a file lacks).
RUN_PROVIDERS = ("tritonnx", "onnxruntime", "tritonnx-unfused")
#: Terminal width the output keeps to.
WIDTH = 100
#: Short timing labels for the terminal (the legend line spells them out).
SHORT_TIMING = {"cuda-events": "events", "cpu-wall": "wall", "cpu-interpreter": "interp"}


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run an ONNX model: latency, what ran, outputs",
        description="Run an ONNX model with tritonnx (and, with --providers, onnxruntime), measure "
        "its latency and print which providers and kernels ran and the outputs. Feeds not given "
        "are random, of the declared dtypes and shapes, token ids within the model's embedding.",
    )
    parser.add_argument("model", help="path of the .onnx file")
    parser.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                        help="an input from a .npy file (repeatable)")
    parser.add_argument("--feeds", metavar="FILE.npz", help="inputs from an .npz archive (np.savez), by name")
    parser.add_argument("--shapes", metavar="NAME:DxD,...",
                        help="shapes of random inputs in trtexec's syntax, e.g. input:8x3x224x224,tokens:8x32")
    parser.add_argument("--dim", "-d", action="append", default=[], metavar="NAME=VALUE",
                        help="value of a symbolic dimension for random inputs, e.g. --dim batch=4 "
                        "(repeatable; a first dimension nothing sets is 1)")
    parser.add_argument("--output", "-o", metavar="OUT.npz", help="save every output into this .npz file")
    parser.add_argument("--profile", action="store_true", help="time every node and show which kernel ran it")
    add_providers(parser, "default tritonnx (torch rows need a torch module: use tritonnx bench on a zoo model)")
    parser.add_argument("--no-fusion", action="store_true", help="run the unfused graph (tritonnx.fusion=0)")
    add_kernels(parser)
    add_seed(parser, "the random inputs")
    parser.add_argument("--iterations", type=positive_int, default=100, metavar="N",
                        help="timed runs (default 100; fewer when --duration is reached first)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, metavar="K",
                        help="untimed runs first (default 3)")
    parser.add_argument("--duration", type=positive_float, default=3.0, metavar="S",
                        help="stop timing after S seconds measured (default 3; whichever of N, S comes first)")
    add_wide(parser)
    parser.set_defaults(func=run)


def parse_pairs(items: list[str], what: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise InvalidArgument(f"{what} {item!r}: expected NAME=VALUE")
        pairs[name] = value
    return pairs


def parse_dims(items: list[str]) -> dict[str, int]:
    dims = {}
    for name, value in parse_pairs(items, "--dim").items():
        try:
            dims[name] = int(value)
        except ValueError:
            raise InvalidArgument(f"--dim {name}={value}: expected a non-negative integer") from None
        if dims[name] < 0:
            raise InvalidArgument(f"--dim {name}={value}: expected a non-negative integer")
    return dims


def _summary(name: str, a) -> list:
    import numpy as np

    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    stats = ["", "", ""]
    if a.size and a.dtype.kind in "fiub" and finite.size:
        f = finite.astype(np.float64)
        stats = [f"{f.min():.6g}", f"{f.max():.6g}", f"{f.mean():.6g}"]
    return [name, list(a.shape), str(a.dtype), *stats]


def _count(n: int, noun: str) -> str:
    """(1, "run") -> "1 run"; (3, "run") -> "3 runs"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 100 else f"{value:.1f}"


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def run(args) -> int:
    # Usage errors first, before torch is imported (a missing file is answered in ~0.2 s).
    model_path = existing_file(args.model, "model file")
    files = parse_pairs(args.input, "--input")
    dims = parse_dims(args.dim)
    from tritonnx.bench import feeds as feeds_mod
    from tritonnx.bench.feeds import load_feeds, load_npy, parse_shapes

    shapes = parse_shapes(args.shapes)
    out_path = output_path(args.output, "--output") if args.output else None
    providers = parse_providers(args.providers, ["tritonnx-unfused" if args.no_fusion else "tritonnx"],
                                allowed=RUN_PROVIDERS, why_not="torch rows need the model's torch module: "
                                "tritonnx bench --models ZOO_NAME has them")
    if args.no_fusion and args.providers:
        raise InvalidArgument("--no-fusion is --providers tritonnx-unfused: give one of the two")
    proto = _load_proto(model_path)  # onnx only: names are checked before any file is read
    if proto is not None:
        known = [s.name for s in feeds_mod.input_specs(proto)] + [i.name for i in proto.graph.initializer]
        for name in files:
            if name not in known:
                raise InvalidArgument(f"--input {name}: the model has no input {name!r}; its inputs: "
                                      f"{[s.name for s in feeds_mod.input_specs(proto)]}")
    given = load_feeds(args.feeds) if args.feeds else {}
    if proto is not None:
        for name in given:
            if name not in known:
                raise InvalidArgument(f"--feeds {args.feeds}: array {name!r} names no input of the model; its "
                                      f"inputs: {[s.name for s in feeds_mod.input_specs(proto)]}")
    for name, path in files.items():
        given[name] = load_npy(path, f"--input {name}={path}")

    import torch

    from tritonnx.bench.report import tabulate

    from tritonnx.bench.stats import TIMING_LABELS, max_rel_err, measure
    from tritonnx.runtime import InferenceSession, dtypes

    options = {"kernels": args.kernels} if args.kernels else {}
    main_name = next((p for p in providers if p.startswith("tritonnx")), "tritonnx")
    t0 = time.perf_counter()
    sess = InferenceSession(str(model_path), fusion=main_name == "tritonnx", **options)
    load_s = time.perf_counter() - t0

    known = {a.name: a for a in sess.get_inputs()} | {a.name: a for a in sess.get_overridable_initializers()}
    for name in given:
        if name not in known:
            flag = f"--input {name}" if name in files else f"--feeds {args.feeds}: array {name!r}"
            raise InvalidArgument(f"{flag}: the model has no input {name!r}; its inputs: {list(known)}")
    proto = proto if proto is not None else _load_proto(model_path)
    symbolic = {d for s in feeds_mod.input_specs(proto) for d in (s.shape or ()) if isinstance(d, str)}
    unknown = sorted(set(dims) - symbolic)
    if unknown:
        raise InvalidArgument(f"--dim {unknown[0]}: the model's inputs have no symbolic dimension {unknown[0]!r}; "
                              f"theirs: {sorted(symbolic) or 'none'}")
    feed, sources = feeds_mod.random_feeds(proto, shapes=shapes, dims=dims, batch=1, seed=args.seed, given=given)
    for name, value in given.items():  # overridden initializers
        if name not in feed:
            feed[name], sources[name] = value, "file"

    device = sess.device
    device_text = "CPU" if device.type == "cpu" else f"{device} ({torch.cuda.get_device_name(device)})"
    print(f"model: {args.model}  device: {device_text}  (session created in {load_s:.2f} s)")
    print(table([[n, list(v.shape), str(v.dtype), sources[n]] for n, v in feed.items()],
                ["input", "shape", "dtype", "source"], wide=args.wide, shrink=(0, 3, 1)))
    tensors = {k: dtypes.from_numpy(v).to(device) if not isinstance(v, torch.Tensor) else v.to(device)
               for k, v in feed.items()}
    batch = next((int(v.shape[0]) for v in tensors.values() if v.dim() > 0), 1)

    names = [o.name for o in sess.get_outputs()]
    rows, ran, outputs, reference = [], [], None, None
    for provider in providers:
        fn, what = _prepare(provider, sess, model_path, tensors, options, args, InferenceSession)
        if fn is None:
            rows.append([provider] + ["-"] * 9)
            ran.append(f"{provider}: not run: {what}")
            continue
        interp = device.type == "cpu" and "TritonExecutionProvider" in what.get("providers", [])
        timing = measure(fn, device, method="cpu-interpreter" if interp else "cpu-wall", warmup=args.warmup,
                         min_samples=args.iterations, min_time=args.duration)
        result = [t.detach() for t in fn()]
        if provider == "onnxruntime":
            reference = result
        elif outputs is None:
            outputs = result
        rows.append([provider, timing.n, _ms(timing.min_ms), _ms(timing.median_ms), _ms(timing.p90_ms),
                     _ms(timing.p99_ms), _ms(timing.max_ms), _ms(timing.mean_ms),
                     _rate(batch * 1e3 / timing.median_ms), SHORT_TIMING[timing.method]])
        ran.append(f"{provider}: {what['text']}; {timing.outliers} outlier(s), kept")
    print()
    print(f"latency, ms ({_count(args.warmup, 'warm-up run')}, then {_count(args.iterations, 'run')} or "
          f"{args.duration:g} s "
          "measured, whichever first; all samples kept):")
    print(tabulate(rows, headers=["provider", "n", "min", "p50", "p90", "p99", "max", "mean", "items/s", "timing"],
                   disable_numparse=True, colalign=("left",) + ("right",) * 8 + ("left",)))
    legend = "; ".join(f"{short} = {TIMING_LABELS[m]}" for m, short in SHORT_TIMING.items()
                       if any(r[-1] == short for r in rows))
    note = (f"timing: {legend}. " if legend else "") + \
        f"pXX needs n >= 100/(100-XX) (p90: 10, p99: 100). items/s at batch {batch}."
    print(textwrap.fill(note, width=WIDTH))
    for line in ran:
        print(textwrap.fill(line, width=WIDTH, subsequent_indent="  "))
    if outputs is None:
        outputs = reference
    if outputs is None:
        return 0
    if args.profile and main_name in providers:
        outs, prof = sess.run_profiled(None, tensors)
        label = "device time (CUDA events)" if device.type == "cuda" else "CPU wall ms (not a performance figure)"
        cells = [[r.node, r.op_type if not r.domain else f"{r.domain}::{r.op_type}", _short_kernel(r.kernel),
                  f"{r.ms:.3f}"] for r in prof]
        cells.append(["total", "", "", f"{sum(r.ms for r in prof):.3f}"])
        print(f"\nper node, one profiled run; {label}:")
        print(table(cells, ["node", "op", "kernel", "ms"], wide=args.wide, shrink=(0, 2, 1), keep={0: "middle"},
                    colalign=("left", "left", "left", "right")))
        print(_host_line(prof))
    arrays = [dtypes.to_numpy(t, copy=True) for t in outputs]
    print()
    headers = ["output", "shape", "dtype", "min", "max", "mean"]
    summary = [_summary(n, a) for n, a in zip(names, arrays)]
    if reference is not None and outputs is not reference:
        headers.append("max rel err vs onnxruntime")
        for line, out, ref in zip(summary, outputs, reference):
            try:
                line.append(f"{max_rel_err(out, ref):.1e}")
            except ValueError as exc:
                line.append(str(exc))
    print(table(summary, headers, wide=args.wide, shrink=(0, 1), colalign=("left",) * 3 + ("right",) * 4))
    if out_path is not None:
        import numpy as np

        try:
            with open(out_path, "wb") as f:  # exactly this path (np.savez would append .npz to a bare name)
                np.savez(f, **dict(zip(names, arrays)))
        except OSError as exc:
            raise InvalidArgument(f"--output {out_path}: cannot write: {exc}") from None
        print(f"\nsaved {len(arrays)} output(s) to {out_path}")
    return 0


def _load_proto(path):
    """The model's graph without its weights (None when onnx cannot parse it: the session says why)."""
    import onnx

    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - InferenceSession reports a bad file in its own words
        return None


def _host_line(prof) -> str:
    """The profiled run's host overhead: wall - ops = host ms, steps, host µs per step, planned."""
    steps = getattr(prof, "steps", 0)
    per_step = f"{prof.host_us_per_step:.2f} µs per step" if steps else "no steps"
    plan = "planned" if prof.planned else "walked (no run plan)"
    return textwrap.fill(f"host: {prof.host_ms:.3f} ms per run = wall {prof.wall_ms:.3f} - ops {prof.ops_ms:.3f}; "
                         f"{steps} steps, {per_step}; {plan}", width=WIDTH)


def _short_kernel(label: str) -> str:
    """"triton (tritonnx.runtime.ops.fused_conv.ConvReluPool)" -> "triton (ConvReluPool)"."""
    head, sep, rest = label.partition(" (")
    return f"{head} ({rest.rstrip(')').rpartition('.')[2]})" if sep else label


def _fused_ops(sess) -> str:
    from collections import Counter

    from tritonnx.runtime.registry import CUSTOM_DOMAIN

    counts = Counter(n.op_type for n in sess.rewritten_model().graph.node if n.domain == CUSTOM_DOMAIN)
    return ", ".join(f"{op} x{n}" for op, n in sorted(counts.items())) or "none"


def _prepare(provider, sess, model_path, tensors, options, args, session_cls):
    """(run fn returning torch tensors, {"text": what ran, "providers": [...]}) or (None, why not)."""
    if provider.startswith("tritonnx"):
        fused = provider == "tritonnx"
        if sess.context.fusion != fused:
            sess = session_cls(str(model_path), fusion=fused, **options)
        ctx = sess.context
        eps = sess.get_providers()
        report = sess.fusion_report()
        if "TritonExecutionProvider" in eps:
            kernels = "triton" + (" (under Triton's interpreter)" if ctx.interpret else "")
        elif fused and report.fused:
            kernels = "torch references of the fused nodes"
        else:
            kernels = "torch ops only"
        text = f"providers: {', '.join(eps)}; kernels: {kernels}"
        if fused:
            text += f"; fused nodes: {_fused_ops(sess)}; declined candidates: {len(report.declined)}"

        def fn():
            return sess.run_torch(None, tensors)
        return fn, {"text": text, "providers": eps}
    if provider == "onnxruntime":
        try:
            from tritonnx.bench.ort import OrtRunner

            runner = OrtRunner(model_path, tensors)
        except ImportError:
            return None, "onnxruntime is not installed (tritonnx[cpu] or tritonnx[gpu])"
        except Exception as exc:  # noqa: BLE001 - the row says why
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return None, f"onnxruntime failed: {type(exc).__name__}: {first}"
        return runner, {"text": f"providers: {runner.provider}" + (f"; {runner.note}" if runner.note else ""),
                        "providers": [runner.provider]}
    return None, "needs a torch module"
