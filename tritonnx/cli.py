"""The `tritonnx` command line: one verb per module in `tritonnx.commands`.

Each verb module has `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Errors that are the user's (our `TritonnxError` family) print one line and exit 2; nothing
else is swallowed.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from ._version import __version__
from .errors import TritonnxError

# Verb modules in help order; a new verb is one module here and one entry in this list.
VERBS = ("zoo", "export", "run", "inspect", "bench", "kernels")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tritonnx",
        description="Export the classic networks to ONNX, run ONNX models with fused Triton "
        "kernels, and benchmark them against onnxruntime.",
    )
    parser.add_argument("--version", action="version", version=f"tritonnx {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        importlib.import_module(f"tritonnx.commands.{verb}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except TritonnxError as exc:
        # One line, also for onnxruntime's multi-line wordings (e.g. "Got invalid dimensions ...").
        message = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        print(f"tritonnx {args.verb}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tritonnx {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
