"""The `tritonnx` command line: one verb per module in `tritonnx.commands`.

Each verb module has `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
A new verb is one module and one entry in `VERBS` (or `register_verb` from a plugin/extra).

The rules every verb follows (`tritonnx.commands.common` has the shared helpers):

- Usage errors (a bad flag, a missing file, a missing output folder) are answered before
  torch is imported: parsing and file checks come first, the heavy imports after.
- Every error is one line on stderr, ``tritonnx VERB: error: ...``, and exit 2 (exit 1 for an
  unexpected failure, still one line; ``TRITONNX_TRACEBACK=1`` shows the traceback).
- Every warning is one line, ``tritonnx VERB: warning: ...`` (Python's warnings included).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from ._version import __version__
from .errors import TritonnxError

# Verb modules in help order: `tritonnx.commands.<verb>` each.
VERBS = ["zoo", "export", "run", "inspect", "bench", "kernels", "serve", "serve_bench"]
#: Verbs spelled as two words on the command line: ``tritonnx serve bench`` is the verb
#: ``serve-bench`` (its own module, so the `serve` verb's positional MODELs never see "bench").
TWO_WORD = {("serve", "bench"): "serve-bench"}


def register_verb(name: str) -> None:
    """Add a verb module (`tritonnx.commands.<name>`) to the CLI, after the built-in ones."""
    if name not in VERBS:
        VERBS.append(name)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``tritonnx VERB: error: ...``, exit 2), no usage dump."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The `tritonnx` parser with every verb in `VERBS` registered."""
    parser = Parser(
        prog="tritonnx",
        description="Export the classic networks to ONNX, run ONNX models with fused Triton "
        "kernels, and benchmark them against onnxruntime.",
    )
    parser.add_argument("--version", action="version", version=f"tritonnx {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=Parser)
    for verb in VERBS:
        importlib.import_module(f"tritonnx.commands.{verb}").register(subparsers)
    return parser


def _one_line(exc: BaseException) -> str:
    # One line, also for onnxruntime's multi-line wordings (e.g. "Got invalid dimensions ...").
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on `argv` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if tuple(argv[:2]) in TWO_WORD:
        argv = [TWO_WORD[tuple(argv[:2])], *argv[2:]]
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed (one line)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    spelled = {v: " ".join(k) for k, v in TWO_WORD.items()}
    prog = f"tritonnx {spelled.get(args.verb, args.verb)}"

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"{prog}: warning: {_one_line(message)}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        try:
            return int(args.func(args) or 0)
        except TritonnxError as exc:
            print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:  # `tritonnx zoo | head -1`: the reader left; no message, as cat does
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
            except (OSError, ValueError):
                pass
            return 141  # 128 + SIGPIPE
        except Exception as exc:  # noqa: BLE001 - never a traceback unless asked for
            if os.environ.get("TRITONNX_TRACEBACK"):
                raise
            print(f"{prog}: error: {type(exc).__name__}: {_one_line(exc)} (an internal error; "
                  "TRITONNX_TRACEBACK=1 shows where)", file=sys.stderr)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
