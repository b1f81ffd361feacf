"""`tritonnx export`: a zoo model (or all of them) to ONNX, checked and verified against torch.

    tritonnx export lenet5 [-o FILE] [--config tiny|paper] [--dtype fp32|fp16] [--opset N]
    tritonnx export lstm_lm --weights trained.pt -o lm.onnx     # a trained state_dict
    tritonnx export --all [-o DIR] [...]    # then a verify table

One file-name scheme in every verb (`tritonnx.export.file_name`): ``<name>_<config>_<dtype>.onnx``
(the default of ``export NAME``, the files of ``export --all`` and of ``tritonnx bench``).
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

from tritonnx.commands.common import add_seed, add_wide, existing_file, output_path, positive_int, table
from tritonnx.errors import InvalidArgument

DEFAULT_ALL_DIR = "tritonnx-out"


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a zoo model (or --all) to ONNX, verified against torch",
        description="Export zoo models to ONNX (TorchScript exporter, dynamic batch and sequence axes), "
        "check the graph and verify it in onnxruntime against torch before the file is written.",
    )
    parser.add_argument("name", nargs="?", help="zoo model name (see `tritonnx zoo`)")
    parser.add_argument("--all", action="store_true", help="export every zoo model into the directory -o")
    parser.add_argument("-o", "--output", help="output file (default NAME_CONFIG_DTYPE.onnx, e.g. lenet5_paper_fp32.onnx); "
                        f"with --all a folder (default {DEFAULT_ALL_DIR}/); its parent folder must exist")
    parser.add_argument("--config", default="paper", help="paper (published sizes, default) or tiny")
    parser.add_argument("--dtype", default="fp32", help="fp32 (default) or fp16")
    parser.add_argument("--opset", type=positive_int, default=None, help="ONNX opset, 17..20 (default 18)")
    add_seed(parser, "the random weights and test inputs")
    parser.add_argument("--weights", metavar="FILE", help="a trained state_dict (torch.save) to export instead of random weights")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime-vs-torch check")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress with --all (a bar on a terminal, else a line per model)")
    add_wide(parser)
    parser.set_defaults(func=run)


def _size(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _err(value: float) -> str:
    return "-" if value != value else f"{value:.2e}"


def _check_weights(path: str | None) -> None:
    """A file torch.save wrote (a zip archive, or the legacy pickle format); checked before torch loads."""
    if path is None:
        return
    existing_file(path, "weights file")
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and not head.startswith(b"\x80"):
        raise InvalidArgument(f"cannot read weights {path!r}: not a file written by torch.save "
                              "(expected a state_dict: torch.save(model.state_dict(), path))")


def _load_weights(path: str | None):
    if path is None:
        return None
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as exc:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # torch's message carries terminal bold codes
        if "Weights only load failed" in text:
            raise InvalidArgument(f"cannot read weights {path!r}: it holds pickled Python objects (a whole "
                                  "module?), not a state_dict: save torch.save(model.state_dict(), path)") from None
        raise InvalidArgument(f"cannot read weights {path!r}: {type(exc).__name__}: "
                              f"{text.splitlines()[0] if text else ''}") from None
    if not isinstance(state, dict):
        raise InvalidArgument(f"weights {path!r} hold a {type(state).__name__}, not a state_dict")
    return state


def run(args) -> int:
    if args.all == bool(args.name):
        raise InvalidArgument("give one zoo model NAME or --all (see `tritonnx zoo` for the names)")
    if args.all and args.weights:
        raise InvalidArgument("--weights fits one model; it cannot be used with --all")
    if args.output:  # before the heavy imports, and before any work
        output_path(args.output, "-o", folder=args.all)
    _check_weights(args.weights)

    from tritonnx.export import DEFAULT_OPSET, export_all, export_model, file_name

    opset = DEFAULT_OPSET if args.opset is None else args.opset
    if not args.all:
        out = Path(args.output or file_name(args.name, args.config, args.dtype))
        r = export_model(args.name, out, config=args.config, dtype=args.dtype, opset=opset,
                         verify=not args.no_verify, seed=args.seed, state_dict=_load_weights(args.weights))
        check = (f"verified in onnxruntime at batch {', '.join(str(c['batch']) for c in r.checks)}: "
                 f"max rel err {_err(r.max_rel_err)} (tolerance {r.tolerance:g})" if r.verified else "not verified")
        print(f"wrote {r.path} ({_size(r.size_bytes)}, {r.config}, {r.dtype}, opset {r.opset}); {check}")
        return 0
    from tritonnx import zoo
    from tritonnx.bench.report import Progress

    progress = Progress(len(zoo.names()), "model", enabled=not args.no_progress)  # a bar on terminals only

    def done(r):
        progress.done(r.name, f"{'ok' if r.ok else 'FAIL'}, {r.seconds:.1f} s")

    try:
        results = export_all(args.output or DEFAULT_ALL_DIR, config=args.config, dtype=args.dtype, opset=opset,
                             verify=not args.no_verify, seed=args.seed, progress=False, on_done=done)
    finally:
        progress.close()
    rows = [(r.name, str(r.path) if r.path else "-", _size(r.size_bytes) if r.ok else "-", _err(r.max_rel_err),
             _err(r.max_abs_err), f"{r.seconds:.1f}", "ok" if r.ok else "FAIL") for r in results]
    print(table(rows, ("model", "file", "size", "max rel err", "max abs err", "seconds", "ok"), wide=args.wide,
                shrink=(1,), keep={1: "middle"}, colalign=("left", "left", "right", "right", "right", "right", "left")))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"{r.name}: {r.error}")
    print(f"{len(results) - len(failed)}/{len(results)} exported ({args.config}, {results[0].dtype if results else args.dtype}, "
          f"opset {opset}{'' if not args.no_verify else ', not verified'})")
    return 1 if failed else 0
