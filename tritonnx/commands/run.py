"""`tritonnx run MODEL.onnx`: run a model once (given or random inputs), print or save outputs."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tritonnx.errors import InvalidArgument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "run", help="run an ONNX model once (inputs from .npy files, or random)",
        description="Run an ONNX model with tritonnx. Inputs not given with --input are random, "
        "of the declared shapes (symbolic dims from --dim, else 1).",
    )
    parser.add_argument("model", help="path of the .onnx file")
    parser.add_argument("--input", "-i", action="append", default=[], metavar="NAME=FILE.npy",
                        help="an input from a .npy file (repeatable)")
    parser.add_argument("--dim", "-d", action="append", default=[], metavar="NAME=VALUE",
                        help="value of a symbolic dimension for random inputs, e.g. --dim batch=4 (repeatable)")
    parser.add_argument("--output", "-o", metavar="OUT.npz", help="save every output into this .npz file")
    parser.add_argument("--profile", action="store_true",
                        help="time every node and show which kernel ran it")
    parser.add_argument("--provider", action="append", default=None, metavar="NAME",
                        help="execution provider (repeatable; default: CUDA if present, else CPU)")
    parser.add_argument("--no-fusion", action="store_true", help="run the unfused graph (tritonnx.fusion=0)")
    parser.add_argument("--kernels", choices=("triton", "torch"), help="how fused nodes run (default: per device)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
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


def load_npy(name: str, path: str) -> np.ndarray:
    try:
        value = np.load(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"--input {name}={path}: cannot read a .npy array: {exc}") from None
    if not isinstance(value, np.ndarray):  # an .npz archive
        keys = list(value.keys())
        value.close()
        raise InvalidArgument(f"--input {name}={path}: a .npz archive (arrays {keys}); give one .npy file "
                              "per input (np.save)")
    return value


def random_input(arg, dims: dict[str, int], rng: np.random.Generator) -> np.ndarray:
    """A random array for a `NodeArg` (symbolic dims from `dims`, unknown ones 1)."""
    from tritonnx.runtime import dtypes

    shape = []
    for d in arg.shape or []:
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif isinstance(d, str) and d in dims:
            shape.append(dims[d])
        else:
            shape.append(1)
    kind = arg.type[len("tensor("):-1]
    if kind == "bool":
        return rng.random(shape) < 0.5
    if kind.startswith(("int", "uint")):
        return rng.integers(0, 10, size=shape).astype(kind)
    if kind in ("float", "double", "float16"):
        return rng.standard_normal(shape).astype({"float": np.float32, "double": np.float64, "float16": np.float16}[kind])
    elem = next((k for k in dtypes.ONNX_TO_TORCH if dtypes.ort_type_string(k) == arg.type), None)
    if elem is None:
        raise InvalidArgument(f"input {arg.name!r}: no random values for type {arg.type}; give it with --input")
    return dtypes.to_numpy(dtypes.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(dtypes.torch_dtype(elem)))


def _summary(name: str, a: np.ndarray) -> list:
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    stats = ["", "", ""]
    if a.size and a.dtype.kind in "fiub" and finite.size:
        f = finite.astype(np.float64)
        stats = [f"{f.min():.6g}", f"{f.max():.6g}", f"{f.mean():.6g}"]
    return [name, list(a.shape), str(a.dtype), *stats]


def run(args) -> int:
    from tabulate import tabulate

    from tritonnx.runtime import InferenceSession

    files = parse_pairs(args.input, "--input")
    dims = parse_dims(args.dim)
    options = {}
    if args.no_fusion:
        options["fusion"] = False
    if args.kernels:
        options["kernels"] = args.kernels
    t0 = time.perf_counter()
    sess = InferenceSession(args.model, providers=args.provider, **options)
    load_s = time.perf_counter() - t0

    known = {a.name: a for a in sess.get_inputs()} | {a.name: a for a in sess.get_overridable_initializers()}
    for name in files:
        if name not in known:
            raise InvalidArgument(f"--input {name}: the model has no input {name!r}; its inputs: {list(known)}")
    symbolic = {d for a in sess.get_inputs() for d in (a.shape or []) if isinstance(d, str)}
    unknown = sorted(set(dims) - symbolic)
    if unknown:
        raise InvalidArgument(f"--dim {unknown[0]}: the model's inputs have no symbolic dimension {unknown[0]!r}; "
                              f"theirs: {sorted(symbolic) or 'none'}")
    rng = np.random.default_rng(args.seed)
    feed = {}
    for arg in sess.get_inputs():
        feed[arg.name] = load_npy(arg.name, files[arg.name]) if arg.name in files else random_input(arg, dims, rng)
    for name, path in files.items():
        if name not in feed:
            feed[name] = load_npy(name, path)

    device = "CPU" if sess.device.type == "cpu" else str(sess.device)
    print(f"model: {args.model}  device: {device}  providers: {', '.join(sess.get_providers())}  "
          f"(session created in {load_s:.2f}s)")
    print(tabulate([[n, list(v.shape), str(v.dtype), "file" if n in files else "random"] for n, v in feed.items()],
                   headers=["input", "shape", "dtype", "source"]))
    names = [o.name for o in sess.get_outputs()]
    if args.profile:
        outs, rows = sess.run_profiled(None, feed)
        from tritonnx.runtime import dtypes

        outputs = [dtypes.to_numpy(t, copy=True) for t in outs]
        label = "device ms" if sess.device.type == "cuda" else "CPU wall ms (not a performance figure)"
        table = [[r.node, r.op_type if not r.domain else f"{r.domain}::{r.op_type}", r.kernel, f"{r.ms:.3f}"] for r in rows]
        table.append(["total", "", "", f"{sum(r.ms for r in rows):.3f}"])
        print()
        print(tabulate(table, headers=["node", "op", "kernel", label]))
    else:
        outputs = sess.run(None, feed)
    print()
    print(tabulate([_summary(n, a) for n, a in zip(names, outputs)], headers=["output", "shape", "dtype", "min", "max", "mean"]))
    if args.output:
        out = Path(args.output)
        try:
            with open(out, "wb") as f:  # exactly this path (np.savez would append .npz to a bare name)
                np.savez(f, **dict(zip(names, outputs)))
        except OSError as exc:
            raise InvalidArgument(f"--output {out}: cannot write: {exc}") from None
        print(f"\nsaved {len(outputs)} output(s) to {out}")
    return 0
