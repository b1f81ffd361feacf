"""`tritonnx kernels`: the kernel catalog, and its ahead-of-time compile report for sm_90 / sm_80.

    tritonnx kernels                         # the registered kernels, their configs and flags
    tritonnx kernels --report [--arch sm_90,sm_80] [--format table|json] [--kernel NAME]
                     [--dtype fp16] [--full] [--summary] [--check] [--jobs N] [--no-cache]

No GPU is needed: each kernel x config x dtype (x flag variant) is compiled with
`triton.compile` for the arch in worker processes (`tritonnx.triton_kernels.aot`).
"""
from __future__ import annotations

import json
import sys
import textwrap
import time

from tritonnx.commands.common import WIDTH, add_wide, table
from tritonnx.errors import InvalidArgument

FULL_LIMIT = 5000


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "kernels", help="list the Triton kernels; --report compiles them for sm_90/sm_80 (no GPU needed)",
        description="List the registered Triton kernels, or (--report) compile every kernel x config x "
        "dtype x flag variant for the GPU archs without a GPU and report shared memory, registers, "
        "spills and tensor-core instructions.")
    parser.add_argument("--report", action="store_true", help="compile and report (else: list the catalog)")
    parser.add_argument("--arch", default="sm_90,sm_80", help="comma-separated archs (default: sm_90,sm_80)")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("--kernel", default=None, help="comma-separated kernel names (default: all)")
    parser.add_argument("--dtype", default=None, help="comma-separated dtypes (default: each kernel's)")
    parser.add_argument("--full", action="store_true",
                        help="compile the full product configs x flag combinations (default: a sample "
                        "covering every config and every flag value per dtype and arch)")
    parser.add_argument("--summary", action="store_true",
                        help="one row per kernel x dtype x arch instead of one per compile")
    parser.add_argument("--check", action="store_true", help="exit 1 if the compile gate fails")
    parser.add_argument("--jobs", type=int, default=None, help="parallel compile processes (default: CPUs)")
    parser.add_argument("--no-cache", action="store_true", help="ignore and do not write the result cache")
    add_wide(parser)
    parser.set_defaults(func=run)


def _split(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def run(args) -> int:
    from tritonnx.triton_kernels import catalog

    names = _split(args.kernel)
    selected = catalog.entries(names)
    archs = [catalog.canonical_arch(a) for a in _split(args.arch) or []]
    if not archs:
        raise InvalidArgument("--arch: expected at least one of " + ", ".join(catalog.ARCHS))
    dtypes = tuple(catalog.canonical_dtype(d) for d in _split(args.dtype)) if args.dtype else None
    if not args.report:
        return _list(selected, archs, args.format, args.wide)
    if args.jobs is not None and args.jobs < 1:
        raise InvalidArgument(f"--jobs: expected a positive number, got {args.jobs}")

    from tritonnx.triton_kernels import aot

    jobs = catalog.plan(selected, archs, full=args.full, dtypes=dtypes)
    if not jobs:
        raise InvalidArgument("nothing to compile: no registered kernel claims the selected dtypes")
    if args.full and len(jobs) > FULL_LIMIT:
        raise InvalidArgument(f"--full: {len(jobs)} compiles (about a second or more each); narrow it "
                              f"with --kernel, --dtype, --arch to at most {FULL_LIMIT}, or drop --full "
                              f"for the sample that covers every config and flag value")
    if args.format == "table":
        print(f"compiling {len(jobs)} kernel variants for {', '.join(archs)} (cached ones are instant)",
              file=sys.stderr)
    start = time.perf_counter()
    def line(done, total, row):  # not a terminal: one line per finished compile
        what = "ok" if row.get("status") == "ok" else f"{row.get('status')}: {str(row.get('error') or '')[:80]}"
        print(f"[{done}/{total}] {row.get('kernel')} {row.get('dtype')} {row.get('arch')}: {what}", file=sys.stderr,
              flush=True)

    rows = aot.run_jobs(jobs, workers=args.jobs, use_cache=not args.no_cache,
                        progress=(True if sys.stderr.isatty() else line) if args.format == "table" else False)
    elapsed = time.perf_counter() - start
    failures = aot.gate_failures(rows)
    if args.format == "json":
        import triton

        print(json.dumps({"triton": triton.__version__, "archs": archs, "full": args.full,
                          "rows": rows, "summary": aot.summary_rows(rows), "gate_failures": failures},
                         indent=1, default=str))
    else:
        if args.summary:
            print(_summary(rows, aot, args.wide))
        elif args.wide:
            print(table(aot.table_rows(rows), aot.REPORT_HEADERS, wide=True))
        else:
            print(_report_narrow(rows, aot))
        n_ok = sum(r["status"] == "ok" for r in rows)
        n_cached = sum(bool(r["cached"]) for r in rows)
        sampled = sorted({r["kernel"] for r in rows if r["sampled"]})
        width = None if args.wide else WIDTH
        say = (lambda text, **kw: print(text)) if width is None else \
            (lambda text, **kw: print(textwrap.fill(text, width, break_on_hyphens=False, **kw)))
        print()
        say(f"{n_ok}/{len(rows)} compiled ({n_cached} from the cache) in {elapsed:.1f} s; "
            f"shared memory per block: " + ", ".join(f"{a} {catalog.ARCHS[a].smem_per_block // 1024} KB"
                                                     for a in archs) + ".")
        if sampled:
            say("sampled (every config and every flag value per dtype and arch, not the full "
                f"product; --full for all): {', '.join(sampled)}")
        if failures:
            print(f"\ncompile gate: {len(failures)} problem(s):")
            for line in failures:
                say(f"  - {line}", subsequent_indent="    ")
        else:
            print("compile gate: pass")
    return 1 if (args.check and failures) else 0


def _summary(rows: list[dict], aot, wide: bool) -> str:
    """One row per kernel x dtype x arch; within WIDTH a table per kernel (``--wide``: one table)."""
    from itertools import groupby

    cells = aot.summary_table(rows)
    if wide:
        return table(cells, aot.SUMMARY_HEADERS, wide=True)
    parts = []
    for kernel, group in groupby(cells, key=lambda c: c[0]):
        parts.append(f"{kernel}:")
        headers = [h.replace(" KB", "\nKB", 1).replace(" (", "\n(").replace(" blocks", "\nblocks")
                   .replace("max regs", "max\nregs").replace("tensor core", "tensor\ncore") for h in aot.SUMMARY_HEADERS[1:]]
        parts.append(table([c[1:] for c in group], headers, shrink=(7, 4, 6), wrap=True, min_width=8) + "\n")
    return "\n".join(parts).rstrip("\n")


def _report_narrow(rows: list[dict], aot) -> str:
    """The compile report within WIDTH: a table per kernel x dtype x arch (named above it, with
    the arch's shared-memory limit), its config and flags wrapped at their commas."""
    from itertools import groupby

    headers = ["config", "flags", "status", "smem KB", "regs", "stack B", "tensor core", "blocks/SM"]
    parts = []
    pairs = zip(rows, aot.table_rows(rows))
    for (kernel, dtype, arch), group in groupby(pairs, key=lambda p: (p[0]["kernel"], p[0]["dtype"], p[0]["arch"])):
        group = list(group)
        limit = group[0][1][6].partition(" / ")[2]
        parts.append(f"{kernel} {dtype} {arch} (shared memory limit {limit} KB): {len(group)} compile(s)")
        body = [[c[1].replace(",", ", "), c[3].replace(",", ", "), c[5], c[6].partition(" / ")[0], c[7],
                 str(c[8]).replace(" (", "\n("), *c[9:]] for _, c in group]
        parts.append(table(body, headers, shrink=(0, 1, 2), wrap=True, min_width=18,
                           colalign=("left",) * 3 + ("right",) * 3 + ("left", "right")) + "\n")
    parts.append("(--wide: one table, a line per compile)")
    return "\n".join(parts)


def _flags_text(entry) -> str:
    """Every flag with the union of its values over the entry's dtypes."""
    values: dict[str, list] = {}
    for dtype in entry.dtypes:
        for k, vs in entry.flags_for(dtype).items():
            values.setdefault(k, [])
            values[k] += [v for v in vs if v not in values[k]]
    return "; ".join(f"{k}={'|'.join(map(str, v))}" for k, v in values.items()) or "-"


def _list(selected, archs, fmt: str, wide: bool = False) -> int:
    from tritonnx.triton_kernels import catalog

    rows = []
    for e in selected:
        counts = {a: len(e.config_list(a)) for a in archs}
        flags = {d: {k: list(v) for k, v in e.flags_for(d).items()} for d in e.dtypes}
        rows.append({"kernel": e.name, "function": e.kernel, "configs": counts, "dtypes": list(e.dtypes),
                     "flags": flags, "flag_combinations": {d: len(e.flag_values(d)) for d in e.dtypes},
                     "matmul": e.matmul, "note": e.note})
    if fmt == "json":
        print(json.dumps(rows, indent=1, default=str))
        return 0
    cells = [[r["kernel"], r["function"].rpartition(":")[2],
              " ".join(f"{a}:{n}" for a, n in r["configs"].items()), ",".join(r["dtypes"]),
              _flags_text(catalog.get(r["kernel"])),
              "yes" if r["matmul"] else "no", r["note"]] for r in rows]
    # one line per kernel in --wide; else the flags and notes wrap within the terminal width
    headers = ["kernel", "function", "configs", "dtypes", "flags", "matmul", "note"]
    if wide:
        print(table(cells, headers, wide=True))
        return 0
    for kernel, function, configs, dtypes, flags, matmul, note in cells:  # a block per kernel
        print(textwrap.fill(f"{kernel} ({function}): {note}", WIDTH, subsequent_indent="    "))
        print(textwrap.fill(f"configs {configs}; dtypes {dtypes}; matrix products: {matmul}", WIDTH,
                            initial_indent="  ", subsequent_indent="    "))
        print(textwrap.fill(f"flags: {flags.replace('|', ' | ')}", WIDTH, initial_indent="  ", subsequent_indent="    ",
                            break_on_hyphens=False))
    print("(--wide: one table row per kernel)")
    return 0
