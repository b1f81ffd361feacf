"""What every verb shares: one meaning per flag, the output-path rule, early file checks.

Nothing here imports torch, onnx or the runtime: these checks run before the heavy imports,
so a usage error is answered in a fraction of a second.

Flags that mean the same thing in every verb that has them:

- ``--providers A,B``: the benchmark's provider names (`PROVIDERS`: tritonnx, tritonnx-unfused,
  onnxruntime, torch, torch.compile, or ``all``).
- ``--kernels triton|torch``: how fused nodes run (their Triton kernels, on the CPU under
  Triton's interpreter, or their plain-torch references); the session's ``kernels`` setting.
- ``--seed N`` (N >= 0), ``--no-fusion``, ``--no-progress``, ``--format``.
- ``--wide``: terminal tables keep every column and cell whole (by default each verb's tables
  fit `WIDTH` columns, long cells cut with "...", in one style: `table`).

Output paths, one rule everywhere: the parent folder of an output (a file such as
``export -o m.onnx`` or ``run -o out.npz``, or a folder such as ``bench --out DIR``) must exist;
it is checked before any work, and only the output itself is created. Defaults chosen by
tritonnx (``bench-results/<UTC time>/``) are created whole.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from tritonnx.bench.providers import ALL_PROVIDERS as PROVIDERS
from tritonnx.errors import InvalidArgument, NoSuchFile

KERNEL_MODES = ("triton", "torch")
#: Terminal width every verb's tables keep to (``--wide``: no limit).
WIDTH = 100


# argparse value types (their errors are one line through `tritonnx.cli.Parser`) --------------
def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (``--seed``, ``--warmup``)."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An integer >= 1 (``--iterations``, ``--opset``)."""
    return _int_at_least(text, 1)


def positive_float(text: str) -> float:
    """A finite number > 0 (``--duration``, ``--time-budget``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


# shared flags -------------------------------------------------------------------------------
def add_providers(parser, default_help: str) -> None:
    parser.add_argument("--providers", default=None, metavar="A,B",
                        help=f"{','.join(PROVIDERS)} or 'all'; {default_help}")


def add_kernels(parser) -> None:
    parser.add_argument("--kernels", choices=KERNEL_MODES, default=None,
                        help="how fused nodes run: their Triton kernels (on a CPU under Triton's "
                        "interpreter) or their torch references (default: triton on a GPU, torch on a "
                        "CPU, or TRITONNX_KERNELS)")


def add_seed(parser, what: str) -> None:
    parser.add_argument("--seed", type=non_negative_int, default=0, help=f"seed of {what} (default 0)")


def add_wide(parser) -> None:
    parser.add_argument("--wide", action="store_true",
                        help=f"terminal tables with every cell whole (default: fit {WIDTH} columns)")


def cut(text, width: int, *, keep: str = "start") -> str:
    """`text` in at most `width` characters, "..." where it was cut (``keep="middle"``: the
    start and the end, for node names and paths)."""
    text = str(text)
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    if keep == "middle":
        head = (width - 3 + 1) // 2
        return text[:head] + "..." + text[len(text) - (width - 3 - head):]
    return text[: width - 3] + "..."


def table(rows, headers, *, wide: bool = False, shrink=(), keep: dict | None = None, wrap: bool = False,
          width: int = WIDTH, min_width: int = 12, **kw) -> str:
    """A terminal table in the one style of every verb (tabulate "simple", the benchmark's padding).

    Args:
        rows, headers: as for tabulate (cells are shown with `str`).
        wide: every cell whole, whatever the width.
        shrink: indices of the columns that may be cut to fit `width`, the first cut first.
        keep: column index -> "start" or "middle" (what a cut keeps; default the start).
        wrap: wrap the `shrink` columns' long cells over several lines (at spaces; a word longer
            than the column is broken) instead of cutting them.
        width: the width to fit (a table whose other columns are wider stays wider).
        min_width: no column is cut below this many characters.
    """
    from tritonnx.bench.report import tabulate

    keep = keep or {}
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    kw.setdefault("disable_numparse", True)

    def render(limits):
        import textwrap

        def fit(i, c):  # tabulate's own maxcolwidths fails on '1,234' cells (0.10)
            if i not in limits:
                return c
            return "\n".join(textwrap.fill(part, limits[i], break_on_hyphens=False)
                                  for part in c.splitlines()) if wrap else \
                cut(c, limits[i], keep=keep.get(i, "start"))
        shown = [[fit(i, c) for i, c in enumerate(row)] for row in cells]
        return tabulate(shown, headers=headers, tablefmt="simple", **kw)

    limits: dict[int, int] = {}
    text = render(limits)
    if wide:
        return text
    for col in shrink:
        over = max(len(line) for line in text.splitlines()) - width if text else 0
        if over <= 0:
            break
        longest = max([len(line) for r in cells if col < len(r) for line in r[col].splitlines()] + [0])
        header = len(str(headers[col])) if col < len(headers) else 0
        if longest <= max(min_width, header):
            continue
        limits[col] = max(min_width, header, longest - over)
        text = render(limits)
    return text


def split_list(text: str | None) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']."""
    return [x.strip() for x in (text or "").split(",") if x.strip()]


def parse_providers(text: str | None, default: list[str], *, allowed=PROVIDERS, flag="--providers",
                    why_not: str = "") -> list[str]:
    """A ``--providers`` value as names in run order; unknown names are an error listing the valid ones."""
    if not text:
        return list(default)
    if text.strip() == "all":
        return list(allowed)
    names = split_list(text)
    unknown = [n for n in names if n not in PROVIDERS]
    if unknown:
        raise InvalidArgument(f"{flag}: unknown provider {unknown[0]!r}: expected one of "
                              f"{', '.join(allowed)} (or all)")
    refused = [n for n in names if n not in allowed]
    if refused:
        raise InvalidArgument(f"{flag}: {refused[0]!r} cannot run here{f' ({why_not})' if why_not else ''}: "
                              f"expected one of {', '.join(allowed)}")
    return [p for p in PROVIDERS if p in names]


# files --------------------------------------------------------------------------------------
def existing_file(path: str | os.PathLike, what: str) -> Path:
    """`path` as a Path; NoSuchFile naming `what` when it is not an existing file."""
    p = Path(path)
    if p.is_dir():
        raise InvalidArgument(f"{what} {str(p)!r} is a folder, not a file")
    if not p.is_file():
        raise NoSuchFile(f"{what} {str(p)!r} does not exist")
    return p


def output_path(path: str | os.PathLike, flag: str, *, folder: bool = False) -> Path:
    """Check an output path before any work (the rule in this module's docstring).

    Args:
        path: the file (or, with `folder`, the folder) to write.
        flag: the option's name for the message (``-o``, ``--out``).
        folder: the output is a folder (it may exist already: it is added to).

    Raises:
        InvalidArgument: the parent folder is missing or not writable, or the path is of the
            other kind (a folder where a file is written, or a file where a folder is).
    """
    p = Path(path)
    parent = p.parent if str(p.parent) else Path(".")
    if folder and p.is_dir():
        if not os.access(p, os.W_OK):
            raise InvalidArgument(f"{flag} {p}: cannot write into this folder (permission denied)")
        return p
    if folder and p.exists():
        raise InvalidArgument(f"{flag} {p}: is a file, not a folder")
    if not folder and p.is_dir():
        raise InvalidArgument(f"{flag} {p}: is a folder; give a file name")
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise InvalidArgument(f"{flag} {p}: cannot write: the folder {str(parent)!r} {what} "
                              "(output folders are not created; make it first)")
    if not os.access(parent, os.W_OK):
        raise InvalidArgument(f"{flag} {p}: cannot write into {str(parent)!r} (permission denied)")
    return p
