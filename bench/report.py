"""Result files and tables of a benchmark run.

A result set is one folder:

- ``env.json``: the environment (`bench.environment.collect`), plus every command that added rows.
- ``rows.jsonl``: one JSON object per row, appended as each row finishes (raw samples included).
- ``results.json``: environment, rows with the derived columns, what did not run, the summary.
- ``table.md``, ``table.csv``: the table; ``speedup.png``: speed-up over onnxruntime per model.
- ``kernels.jsonl`` / ``kernels.md``: kernel-benchmark rows (``--kernel-bench``).

Derived columns (computed here from the rows, so a resumed set is consistent): throughput,
speed-up over onnxruntime (its median over this row's, same model/batch/dtype, same run).
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import textwrap
from pathlib import Path
from typing import Iterable

import tabulate as _tabulate_module


def tabulate(cells, headers=(), tablefmt="simple", **kw) -> str:
    """`tabulate.tabulate`, with the terminal style's header padding off (narrower tables)."""
    saved = _tabulate_module.MIN_PADDING
    _tabulate_module.MIN_PADDING = 0 if tablefmt == "simple" else saved
    try:
        return _tabulate_module.tabulate(cells, headers=headers, tablefmt=tablefmt, **kw)
    finally:
        _tabulate_module.MIN_PADDING = saved

from tritonnx.bench.stats import geomean

ROWS_FILE = "rows.jsonl"
ENV_FILE = "env.json"
RESULTS_FILE = "results.json"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
CHART_PNG = "speedup.png"
KERNELS_FILE = "kernels.jsonl"
KERNELS_MD = "kernels.md"

CPU_BANNER = "CPU times, not performance figures"

#: (column title, row key) of the model table, in order: every column, as markdown, CSV and
#: ``--wide`` show them. A new column is one entry here (and one in `TERMINAL_PRIORITY` if it
#: matters at a glance).
COLUMNS = [
    ("model", "model"), ("config", "config"), ("batch", "batch"), ("dtype", "dtype"), ("provider", "provider"),
    ("median ms", "median_ms"), ("p90 ms", "p90_ms"), ("p99 ms", "p99_ms"), ("min ms", "min_ms"),
    ("max ms", "max_ms"), ("mean ms", "mean_ms"), ("n", "n"), ("measured s", "measured_s"),
    ("outliers", "outliers"), ("timing", "timing"),
    ("items/s", "throughput"), ("vs ORT", "speedup_vs_ort"), ("max rel err", "max_rel_err"),
    ("host ms", "host_ms"), ("steps", "steps"), ("host µs/step", "host_us_step"), ("planned", "planned"),
    ("peak MiB", "peak_mem_mib"), ("cold s", "compile_cold_s"), ("warm s", "compile_warm_s"),
    ("roofline", "roofline"), ("kernels", "kernels"), ("note", "note"),
]
#: The terminal table's columns, most important first: added while the table fits `WIDTH`
#: (`--wide`: all of `COLUMNS`); the note takes what width is left.
TERMINAL_PRIORITY = ["model", "provider", "median_ms", "n", "timing", "speedup_vs_ort", "batch", "dtype",
                     "host_us_step", "p90_ms", "max_rel_err", "throughput", "p99_ms", "config", "roofline",
                     "peak_mem_mib"]
#: The first CORE columns of the priority come before the note; the note keeps NOTE_MIN characters.
CORE, NOTE_MIN = 6, 20
#: Columns that move to the title line when every row has the same value.
UNIFORM_TO_TITLE = ("config", "dtype", "batch")
#: The terminal width tables keep to by default.
WIDTH = 100
#: Columns printed right-aligned in the terminal.
NUMERIC = {"batch", "median_ms", "p20_ms", "p80_ms", "p90_ms", "p99_ms", "min_ms", "max_ms", "mean_ms", "n",
           "measured_s", "outliers", "throughput", "speedup_vs_ort", "max_rel_err", "peak_mem_mib",
           "compile_cold_s", "compile_warm_s", "roofline", "a_median_ms", "b_median_ms", "a_n", "b_n", "ratio",
           "a_vs_ort", "b_vs_ort", "host_ms", "steps", "host_us_step", "ops_ms", "profiled_wall_ms",
           # tritonnx serve bench's columns
           "batch_wait_ms", "concurrency", "req_s", "p50_ms", "errors", "batch_text", "first_ok_s", "rss_mib",
           "queue_p50_ms", "run_p50_ms"}
#: Timing labels, short in the terminal (the legend spells them out).
SHORT_TIMING = {"cuda-events": "events", "cpu-wall": "wall", "cpu-interpreter": "interp"}
KERNEL_COLUMNS = [
    ("family", "family"), ("case", "case"), ("dtype", "dtype"), ("batch", "batch"),
    ("provider", "provider"), ("median ms", "median_ms"), ("p20 ms", "p20_ms"), ("p80 ms", "p80_ms"),
    ("max rel err", "max_rel_err"), ("roofline", "roofline"), ("note", "note"),
]


def row_key(row: dict) -> tuple:
    """The identity of a model row: (model, config, batch, dtype, provider)."""
    return (row["model"], row["config"], int(row["batch"]), row["dtype"], row["provider"])


# files ------------------------------------------------------------------------------------
def append_row(out: Path, row: dict, name: str = ROWS_FILE) -> None:
    """Append one row to the JSON-lines file and flush it (a killed run keeps what finished)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / name, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=_json_default) + "\n")
        f.flush()


def load_rows(out: Path, name: str = ROWS_FILE) -> list[dict]:
    """Rows already in a result set (a truncated last line, from a kill, is ignored)."""
    path = Path(out) / name
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _json_default(obj):
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def _finite(x):
    """JSON has no inf/NaN: they are written as strings."""
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


# derived columns ----------------------------------------------------------------------------
def derive(rows: list[dict], baseline: str = "onnxruntime") -> list[dict]:
    """Rows with `throughput` and `speedup_vs_ort` filled in (copies; last row of a key wins)."""
    latest: dict[tuple, dict] = {}
    for row in rows:
        latest[row_key(row)] = row
    base = {
        (r["model"], r["config"], int(r["batch"]), r["dtype"]): r.get("median_ms")
        for r in latest.values() if r["provider"] == baseline and r.get("status") == "ok"
    }
    out = []
    for row in latest.values():
        row = dict(row)
        median = row.get("median_ms")
        row["throughput"] = int(row["batch"]) / (median * 1e-3) if median else None
        ref = base.get((row["model"], row["config"], int(row["batch"]), row["dtype"]))
        row["speedup_vs_ort"] = ref / median if ref and median else None
        out.append(row)
    return out


def summary(rows: list[dict], target: str = "tritonnx") -> list[str]:
    """Headline lines: per (dtype, batch) the geometric-mean speed-up of `target` over
    onnxruntime, its slowest model, and its ratio to torch.compile where measured."""
    lines = []
    groups = sorted({(r["dtype"], int(r["batch"])) for r in rows})
    for dtype, batch in groups:
        mine = {r["model"]: r for r in rows if r["provider"] == target and r["dtype"] == dtype
                and int(r["batch"]) == batch and r.get("speedup_vs_ort")}
        if not mine:
            continue
        g = geomean(r["speedup_vs_ort"] for r in mine.values())
        worst = min(mine.values(), key=lambda r: r["speedup_vs_ort"])
        line = (f"{target} vs onnxruntime, {dtype} batch {batch}: geomean {g:.3g}x over {len(mine)} models, "
                f"slowest {worst['model']} {worst['speedup_vs_ort']:.3g}x")
        compiled = {r["model"]: r["median_ms"] for r in rows if r["provider"] == "torch.compile"
                    and r["dtype"] == dtype and int(r["batch"]) == batch and r.get("median_ms")}
        ratios = [compiled[m] / r["median_ms"] for m, r in mine.items() if m in compiled and r.get("median_ms")]
        if ratios:
            line += f"; vs torch.compile geomean {geomean(ratios):.3g}x"
        if any(str(r.get("timing") or "").startswith("cpu") for r in mine.values()):
            line += f" ({CPU_BANNER})"
        else:
            line += "; targets (issue 5): " + _targets(g, worst["speedup_vs_ort"], geomean(ratios) if ratios else None)
        lines.append(line)
    return lines


#: The benchmark issue's targets: geomean over onnxruntime, no model slower, at least torch.compile.
TARGET_GEOMEAN = 1.5


def _targets(geo: float, slowest: float, vs_compile: float | None) -> str:
    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    parts = [f">= {TARGET_GEOMEAN}x geomean {mark(geo >= TARGET_GEOMEAN)}",
             f"no model slower {mark(slowest >= 1.0)}"]
    if vs_compile is not None:
        parts.append(f">= torch.compile {mark(vs_compile >= 1.0)}")
    return ", ".join(parts)


# formatting ---------------------------------------------------------------------------------
def _fmt(key: str, value) -> str:
    if value is None or value == "":
        if key == "roofline":
            return "no roofline"
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("batch", "n", "outliers", "concurrency", "errors", "batch_wait_ms", "steps"):
        return str(value)
    if key == "roofline":
        return f"{100 * value:.1f}%"
    if key == "speedup_vs_ort":  # never "0.00x": small ratios keep two significant digits
        return f"{value:.2f}x" if value >= 0.01 else f"{value:.2g}x"
    if key == "max_rel_err":
        return f"{value:.1e}" if math.isfinite(value) else str(value)
    if key in ("throughput", "req_s"):
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    if key in ("compile_cold_s", "compile_warm_s", "measured_s", "first_ok_s"):
        return f"{value:.2f}"
    if key == "host_us_step":
        return f"{value:.2f}" if value < 10 else f"{value:.1f}"
    if key in ("peak_mem_mib", "rss_mib"):
        return f"{value:.0f}"
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.1f}"
    return str(value)


def _status_note(row: dict) -> str:
    status = row.get("status", "ok")
    note = row.get("note") or ""
    if status == "ok":
        return note
    return f"{status.upper()}: {note}" if note else status.upper()


def _cell(row: dict, key: str, *, short_timing: bool = False) -> str:
    if key == "note":
        return _status_note(row)
    if key == "timing" and short_timing:
        return SHORT_TIMING.get(row.get("timing"), _fmt(key, row.get("timing")))
    return _fmt(key, row.get(key))


def table_rows(rows: list[dict], columns=COLUMNS, *, note_width: int | None = None,
               short_timing: bool = False) -> list[list[str]]:
    table = []
    for row in rows:
        cells = []
        for _, key in columns:
            cell = _cell(row, key, short_timing=short_timing)
            if key == "note" and note_width and len(cell) > note_width:
                cell = cell[: note_width - 3] + "..."
            cells.append(cell)
        table.append(cells)
    return table


def banner(rows: list[dict]) -> str | None:
    """The warning line a table with CPU times carries (each row's own label says which kind)."""
    if any(str(r.get("timing") or "").startswith("cpu") for r in rows):
        return CPU_BANNER
    return None


def timing_legend(rows: list[dict], short: bool = True) -> str:
    """What the timing labels of `rows` mean, one sentence (`short`: the terminal's labels)."""
    from tritonnx.bench.stats import TIMING_LABELS

    labels = [m for m in TIMING_LABELS if any(r.get("timing") == m for r in rows)]
    return "; ".join(f"{SHORT_TIMING[m] if short else m} = {TIMING_LABELS[m]}" for m in labels)


def _width(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def fit_columns(rows: list[dict], columns=COLUMNS, *, width: int = WIDTH, priority=None,
                short_timing: bool = True) -> tuple[list, int | None]:
    """The columns of a terminal table that fit `width`, in `columns` order, and the note's width.

    Columns are added by `priority` (default: `TERMINAL_PRIORITY`, else `columns` order) while
    the table fits; the note (if any) takes what is left, and is dropped below 12 characters.
    """
    by_key = dict((k, t) for t, k in columns)
    order = [k for k in (priority or TERMINAL_PRIORITY) if k in by_key] if columns is COLUMNS or priority \
        else [k for _, k in columns if k != "note"]
    chosen: list[str] = []

    def render(keys, note_width=None):
        cols = [(by_key[k], k) for _, k in columns if k in keys]
        cells = table_rows(rows, cols, note_width=note_width, short_timing=short_timing)
        return tabulate(cells, headers=[t for t, _ in cols], tablefmt="simple", disable_numparse=True,
                        colalign=_align(cols))

    longest_note = max((len(_status_note(r)) for r in rows), default=0) if "note" in by_key else 0
    has_note = longest_note > 0
    for i, key in enumerate(order):
        # After the first CORE columns, keep room for the note (a failed row's reason matters).
        reserve = min(NOTE_MIN, max(longest_note, 4)) + 2 if has_note and i >= CORE else 0
        if _width(render(chosen + [key])) + reserve <= width:
            chosen.append(key)
    note_width = None
    if has_note:
        left = width - _width(render(chosen)) - 2
        if left >= 12:
            chosen.append("note")
            note_width = left
    return [(by_key[k], k) for _, k in columns if k in chosen], note_width


def _align(columns) -> tuple:
    return tuple("right" if k in NUMERIC else "left" for _, k in columns)


def _uniform(rows: list[dict], columns) -> dict:
    """Title-line facts: the `UNIFORM_TO_TITLE` columns whose value is the same in every row."""
    keys = [k for _, k in columns]
    facts = {}
    for key in UNIFORM_TO_TITLE:
        values = {str(r.get(key)) for r in rows}
        if key in keys and len(rows) > 1 and len(values) == 1:
            facts[key] = values.pop()
    return facts


def render(rows: list[dict], fmt: str = "table", *, env: dict | None = None, columns=COLUMNS,
           wide: bool = False, width: int = WIDTH) -> str:
    """The rows as text: "table" (terminal), "markdown", "csv" or "json".

    The terminal table shows the columns that matter and fits `width` (``wide``: every column,
    notes cut at 100 characters); markdown, CSV and JSON keep every column. Every format has
    each row's own timing label.
    """
    if fmt == "json":
        return json.dumps({"env": env, "rows": [{k: _finite(v) for k, v in r.items()} for r in rows]},
                          indent=1, default=_json_default)
    keys = [key for _, key in columns]
    if fmt == "csv":
        extra = [k for k in ("status", "timing", "device", "source") if k not in keys]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(keys + extra)
        for row in rows:
            writer.writerow([_finite(row.get(key)) for key in keys] + [row.get(k) for k in extra])
        return buf.getvalue()
    warn = banner(rows)
    is_models = columns is COLUMNS
    if fmt == "markdown":
        cells = [[c.replace("|", "\\|") for c in r] for r in table_rows(rows, columns)]
        body = tabulate(cells, headers=[t for t, _ in columns], tablefmt="github", disable_numparse=True)
        lines = []
        if env:
            lines.append(header_markdown(env))
        if warn:
            lines.append(f"**{warn}.**\n")
        lines.append(body)
        legend = timing_legend(rows, short=False)
        extra = (summary(rows) if is_models else []) + ([f"timing: {legend}"] if legend else [])
        if extra:
            lines.append("")
            lines.extend(f"- {s}" for s in extra)
        return "\n".join(lines) + "\n"
    if wide:
        shown, note_width, title = list(columns), 100, {}
    else:
        title = _uniform(rows, columns)
        narrowed = [(t, k) for t, k in columns if k not in title]
        shown, note_width = fit_columns(rows, narrowed, width=width,
                                        priority=TERMINAL_PRIORITY if is_models else None)
    body = tabulate(table_rows(rows, shown, note_width=note_width, short_timing=not wide),
                    headers=[t for t, _ in shown], tablefmt="simple", disable_numparse=True, colalign=_align(shown))
    lines = []
    if warn:
        lines.append(f"*** {warn} ***")
    if title:
        lines.append("; ".join(f"{k} {v}" for k, v in title.items()))
    lines.append(body)
    legend = timing_legend(rows)
    foot = []
    if legend and not wide:
        foot.append(f"timing: {legend}.")
    sampling = (env or {}).get("sampling")
    if is_models and sampling:  # every row's n is its own; the rule that made it is stated once
        foot.append(f"n: {sampling.get('warmup')} warm-up run(s), then {sampling.get('min_samples')} samples or "
                    f"{sampling.get('min_time_s')} s measured per row, whichever first; every sample kept.")
    if is_models and any(k == "p90_ms" for _, k in shown):
        foot.append("pXX is shown where n >= 100/(100-XX) (p90: 10, p99: 100).")
    if len(shown) < len(columns) and not wide:
        foot.append("--wide (or table.md / table.csv) for every column.")
    if foot:
        lines.append(textwrap.fill(" ".join(foot), width=width))
    if is_models:
        lines.extend(textwrap.fill(s, width=width, subsequent_indent="  ") for s in summary(rows))
    return "\n".join(lines)


def header_markdown(env: dict) -> str:
    """The markdown lines naming device, driver, versions, commit and commands of a result set."""
    commit = env.get("commit") or "unknown"
    if env.get("dirty"):
        commit += " (with uncommitted changes)"
    commands = env.get("commands") or [env.get("command")]
    tf32 = env.get("tf32")
    tf32_text = "n/a (no GPU)" if tf32 is None else ("on" if tf32 else "off")
    kernels = env.get("kernels")
    kernels_text = ", ".join(kernels) if isinstance(kernels, list) else (kernels or "none ran")
    interp = env.get("interpreter")
    parts = [
        f"Device: **{env.get('device')}**, driver {env.get('driver') or '-'}, CUDA {env.get('cuda') or '-'}; "
        f"torch {env.get('torch')}, triton {env.get('triton')}, onnxruntime {env.get('onnxruntime')} "
        f"({', '.join(env.get('onnxruntime_providers') or []) or '-'}), onnx {env.get('onnx')}; "
        f"Python {env.get('python')}.",
        f"Commit `{commit}`, {env.get('time_utc')}; tf32 {tf32_text}; kernels that ran: {kernels_text}"
        + ("; Triton's interpreter ran" if interp else "") + f"; timing: {env.get('timing')}.",
        "Commands: " + "; ".join(f"`{c}`" for c in commands if c) + ".",
        "",
    ]
    sampling = env.get("sampling")
    if sampling:
        parts.insert(2, f"Sampling: {sampling.get('warmup')} warm-up run(s), then {sampling.get('min_samples')} "
                        f"samples or {sampling.get('min_time_s')} s measured per row, whichever first; "
                        "every sample kept.")
    return "\n".join(parts)


def row_result(row: dict) -> str:
    """One finished row in a few words (the progress line when output is not a terminal)."""
    if row.get("status") != "ok":
        return f"{row.get('status')}: {(row.get('note') or '')[:80]}"
    return f"median {_fmt('median_ms', row.get('median_ms'))} ms, n={row.get('n')}, {row.get('timing')}"


class Progress:
    """A tqdm bar on a terminal; anywhere else (a log, a pipe) one line per finished item."""

    def __init__(self, total: int, unit: str, enabled: bool = True, stream=None, log=None):
        self.stream = stream or sys.stderr
        self.total, self.count, self.enabled = total, 0, enabled
        self.log = log or (lambda msg: print(msg, file=self.stream, flush=True))
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, file=self.stream, dynamic_ncols=True)

    def start(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_description(label)

    def done(self, label: str, result: str = "") -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
        elif self.enabled:
            self.log(f"[{self.count}/{self.total}] {label}" + (f": {result}" if result else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# two result sets ------------------------------------------------------------------------------
def load_result_set(path: str | Path) -> tuple[dict, list[dict]]:
    """(env, derived rows) of a results.json file or a result folder (its rows.jsonl).

    Raises:
        NoSuchFile / InvalidArgument: not there, or not a result set.
    """
    from tritonnx.errors import InvalidArgument, NoSuchFile

    p = Path(path)
    if p.is_dir():
        if (p / RESULTS_FILE).is_file():
            p = p / RESULTS_FILE
        elif (p / ROWS_FILE).is_file():
            env = json.loads((p / ENV_FILE).read_text(encoding="utf-8")) if (p / ENV_FILE).is_file() else {}
            return env, derive(load_rows(p))
        else:
            raise InvalidArgument(f"--compare {path}: a folder without {RESULTS_FILE} or {ROWS_FILE}")
    if not p.is_file():
        raise NoSuchFile(f"--compare {path}: no such file or folder")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        rows = data["rows"]
        rows = derive([r for r in rows if {"model", "config", "batch", "dtype", "provider"} <= set(r)])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise InvalidArgument(f"--compare {path}: not a tritonnx bench result set (results.json)") from None
    return data.get("env") or {}, rows


def compare_rows(a: list[dict], b: list[dict]) -> list[dict]:
    """Rows matched by (model, config, batch, dtype, provider): A's and B's median, n, timing,
    and the ratio ``B / A`` of the medians (above 1: B is slower); unmatched rows have one side."""
    index_a = {row_key(r): r for r in a}
    index_b = {row_key(r): r for r in b}
    keys = list(index_a) + [k for k in index_b if k not in index_a]
    out = []
    for key in keys:
        ra, rb = index_a.get(key, {}), index_b.get(key, {})
        ma = ra.get("median_ms") if ra.get("status", "ok") == "ok" else None
        mb = rb.get("median_ms") if rb.get("status", "ok") == "ok" else None
        notes = ["only in A"] if not rb else (["only in B"] if not ra else
                                               [f"{s}: {r.get('status')}" for s, r in (("A", ra), ("B", rb))
                                                if r.get("status", "ok") != "ok"])
        differs = bool(ma and mb and ra.get("timing") != rb.get("timing"))
        if differs:  # e.g. CPU wall against the interpreter: a ratio of two different things
            notes.append("timing differs")
        out.append({
            "model": key[0], "config": key[1], "batch": key[2], "dtype": key[3], "provider": key[4],
            "a_median_ms": ma, "a_n": ra.get("n") or (len(ra["samples_ms"]) if ra.get("samples_ms") else None),
            "a_timing": ra.get("timing"), "b_median_ms": mb,
            "b_n": rb.get("n") or (len(rb["samples_ms"]) if rb.get("samples_ms") else None),
            "b_timing": rb.get("timing"), "ratio": (mb / ma) if ma and mb else None,
            "a_vs_ort": ra.get("speedup_vs_ort"), "b_vs_ort": rb.get("speedup_vs_ort"),
            "timing_differs": differs, "note": "; ".join(notes),
        })
    return out


COMPARE_COLUMNS = [
    ("model", "model"), ("config", "config"), ("batch", "batch"), ("dtype", "dtype"), ("provider", "provider"),
    ("A ms", "a_median_ms"), ("A n", "a_n"), ("B ms", "b_median_ms"), ("B n", "b_n"), ("B/A", "ratio"),
    ("A timing", "a_timing"), ("B timing", "b_timing"), ("A vs ORT", "a_vs_ort"), ("B vs ORT", "b_vs_ort"),
    ("note", "note"),
]
COMPARE_PRIORITY = ["model", "provider", "a_median_ms", "b_median_ms", "ratio", "a_n", "b_n", "note", "batch",
                    "dtype", "a_timing", "b_timing", "a_vs_ort", "b_vs_ort", "config"]


def render_compare(a_env: dict, b_env: dict, rows: list[dict], fmt: str = "table", *, labels=("A", "B"),
                   wide: bool = False, width: int = WIDTH) -> str:
    """Two result sets side by side (`compare_rows`), in the same styles as `render`."""
    def fmt_cell(row, key):
        value = row.get(key)
        if key == "ratio":
            return "-" if value is None else f"{value:.2f}x"
        if key in ("a_vs_ort", "b_vs_ort"):
            return _fmt("speedup_vs_ort", value)
        if key in ("a_median_ms", "b_median_ms"):
            return _fmt("median_ms", value)
        if key in ("a_timing", "b_timing") and fmt == "table" and not wide:
            return SHORT_TIMING.get(value, _fmt(key, value))
        return _fmt(key, value)

    def describe(label, env):
        return (f"{label}: {env.get('device') or '?'}, commit {(env.get('commit') or '?')[:10]}, "
                f"{env.get('time_utc') or '?'}")

    head = [describe(labels[0], a_env), describe(labels[1], b_env),
            "B/A = B's median over A's (above 1x: B is slower); rows are matched by model, config, batch, "
            "dtype and provider."]
    if a_env.get("device") != b_env.get("device"):
        head.append("The two sets were measured on different devices.")
    if fmt == "json":
        return json.dumps({"a": a_env, "b": b_env, "rows": [{k: _finite(v) for k, v in r.items()} for r in rows]},
                          indent=1, default=_json_default)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([k for _, k in COMPARE_COLUMNS])
        for r in rows:
            writer.writerow([_finite(r.get(k)) for _, k in COMPARE_COLUMNS])
        return buf.getvalue()
    if fmt == "markdown":
        cells = [[fmt_cell(r, k).replace("|", "\\|") for _, k in COMPARE_COLUMNS] for r in rows]
        body = tabulate(cells, headers=[t for t, _ in COMPARE_COLUMNS], tablefmt="github", disable_numparse=True)
        return "\n".join([f"- {h}" for h in head] + ["", body]) + "\n"
    columns = list(COMPARE_COLUMNS)
    title = {} if wide else _uniform(rows, columns)
    columns = [(t, k) for t, k in columns if k not in title]
    if not wide:
        chosen = []

        def render_keys(keys):
            cols = [(t, k) for t, k in columns if k in keys]
            return tabulate([[fmt_cell(r, k) for _, k in cols] for r in rows], headers=[t for t, _ in cols],
                            tablefmt="simple", disable_numparse=True, colalign=_align(cols))

        for key in COMPARE_PRIORITY:
            if key in ("b_timing", "b_vs_ort"):
                continue
            pair = {"a_timing": "b_timing", "a_vs_ort": "b_vs_ort"}  # both sides or neither
            keys = [key, pair[key]] if key in pair else [key]
            if key in dict((k, t) for t, k in columns) and _width(render_keys(chosen + keys)) <= width:
                chosen.extend(keys)
        columns = [(t, k) for t, k in columns if k in chosen]
    body = tabulate([[fmt_cell(r, k) for _, k in columns] for r in rows], headers=[t for t, _ in columns],
                    tablefmt="simple", disable_numparse=True, colalign=_align(columns))
    lines = [textwrap.fill(h, width=width) for h in head]
    if title:
        lines.append("; ".join(f"{k} {v}" for k, v in title.items()))
    lines.append(body)
    ratios = [r["ratio"] for r in rows if r.get("ratio") and not r.get("timing_differs")]
    differ = sum(1 for r in rows if r.get("ratio") and r.get("timing_differs"))
    if ratios or differ:
        text = f"geomean B/A over {len(ratios)} matched rows: {geomean(ratios):.3g}x" if ratios else \
            "no geomean: no matched rows with the same timing label"
        if differ:
            text += f" ({differ} row(s) whose timing labels differ left out)"
        lines.append(textwrap.fill(text, width=width))
    return "\n".join(lines)


# the chart -------------------------------------------------------------------------------------
def write_chart(rows: list[dict], path: Path, env: dict | None = None) -> Path | None:
    """Speed-up over onnxruntime: one panel per (dtype, batch), models on the vertical axis.

    Marks (not bars: a log axis has no floor) on a log axis, one colour per provider, each value
    printed beside its mark; the 1x line is labelled as onnxruntime with its provider; rows that
    ran under Triton's interpreter are hollow marks and say "interp."; the title names the
    device and date (and says when times are CPU times). Returns the path, or None when
    matplotlib is missing or there is nothing to plot.
    """
    plotted = [r for r in rows if r.get("speedup_vs_ort") and r["provider"] != "onnxruntime"]
    if not plotted:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    env = env or {}
    groups = sorted({(r["dtype"], int(r["batch"])) for r in plotted})
    providers = [p for p in ("tritonnx", "tritonnx-unfused", "torch", "torch.compile")
                 if any(r["provider"] == p for r in plotted)]
    colours = dict(zip(("tritonnx", "tritonnx-unfused", "torch", "torch.compile"),
                       ("#1f77b4", "#9ecae1", "#d62728", "#ff9896")))
    n_models = [len({r["model"] for r in plotted if (r["dtype"], int(r["batch"])) == g}) for g in groups]
    heights = [max(1.6, 0.3 * n * len(providers) + 1.0) for n in n_models]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, sum(heights) + 1.3), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, layout="constrained")
    for ax, (dtype, batch) in zip(axes[:, 0], groups):
        sub = [r for r in plotted if r["dtype"] == dtype and int(r["batch"]) == batch]
        models = list(dict.fromkeys(r["model"] for r in sub))
        values = [r["speedup_vs_ort"] for r in sub]
        step = 0.8 / max(len(providers), 1)
        for i, prov in enumerate(providers):
            for j, model in enumerate(models):
                row = next((r for r in sub if r["provider"] == prov and r["model"] == model), None)
                if row is None:
                    continue
                y = j + (i - (len(providers) - 1) / 2) * step
                value = row["speedup_vs_ort"]
                interp = bool(row.get("interpreter"))
                ax.plot([1.0, value], [y, y], color=colours[prov], linewidth=1.2, alpha=0.6)
                ax.plot(value, y, "o", markersize=7, color=colours[prov],
                        markerfacecolor="white" if interp else colours[prov], markeredgewidth=1.6)
                # The value on the mark's outer side, away from its line to 1x.
                left = value < 1.0
                ax.annotate(f"{value:.2g}x" + (" interp." if interp else ""), (value, y), xytext=(-7 if left else 7, 0),
                            textcoords="offset points", va="center", ha="right" if left else "left", fontsize=8)
        ort_provider = _ort_provider(rows, dtype, batch)
        ax.axvline(1.0, color="black", linewidth=1.0)
        ax.text(1.0, 1.01, f"1x = onnxruntime ({ort_provider})" if ort_provider else "1x = onnxruntime",
                transform=ax.get_xaxis_transform(), fontsize=8, va="bottom", ha="center")
        ax.set_xscale("log")
        lo, hi = min(values + [1.0]), max(values + [1.0])
        ax.set_xlim(lo / (8.0 if lo < 1 else 1.5), hi * (8.0 if hi > 1 else 1.5))  # room for the values
        ax.set_ylim(-0.6, len(models) - 0.4)
        ax.set_yticks(range(len(models)))
        ax.set_yticklabels(models)
        ax.invert_yaxis()
        ax.set_xlabel("speed-up over onnxruntime (log scale; right of the line is faster)")
        ax.set_title(f"{dtype}, batch {batch}", fontsize=10, loc="left")
        ax.grid(axis="x", which="both", alpha=0.25)
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[p], label=p) for p in providers]
    if any(r.get("interpreter") for r in plotted):
        handles.append(plt.Line2D([], [], marker="o", linestyle="", color="gray", markerfacecolor="white",
                                  label="hollow: Triton's interpreter (CPU)"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=8, ncol=len(handles), frameon=False)
    device = env.get("device") or (plotted[0].get("device") or "?")
    date = (env.get("time_utc") or "")[:10] or (plotted[0].get("time_utc") or "")[:10]
    title = f"tritonnx speed-up over onnxruntime - {device}, {date}"
    if banner(plotted):
        title += f"\n{CPU_BANNER}"
    fig.suptitle(title, x=0.01, ha="left", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _ort_provider(rows: list[dict], dtype: str, batch: int) -> str | None:
    """The execution provider onnxruntime's rows of (dtype, batch) ran with (from their notes)."""
    for r in rows:
        if r["provider"] == "onnxruntime" and r["dtype"] == dtype and int(r["batch"]) == batch and r.get("note"):
            return r["note"].split(";")[0].strip()
    return None


def write_all(out: Path, env: dict, rows: list[dict], not_run: Iterable[str] = (),
              kernel_rows: list[dict] | None = None) -> dict[str, Path]:
    """Write results.json, table.md, table.csv, speedup.png (and kernels.md) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = derive(rows)
    written = {}
    results = {
        "env": env,
        "rows": [{k: _finite(v) for k, v in r.items()} for r in rows],
        "not_run": list(not_run),
        "summary": summary(rows),
    }
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=1, default=_json_default), encoding="utf-8")
    written["json"] = out / RESULTS_FILE
    (out / TABLE_MD).write_text(render(rows, "markdown", env=env), encoding="utf-8")
    written["markdown"] = out / TABLE_MD
    (out / TABLE_CSV).write_text(render(rows, "csv"), encoding="utf-8")
    written["csv"] = out / TABLE_CSV
    chart = write_chart(rows, out / CHART_PNG, env)
    if chart:
        written["png"] = chart
    if kernel_rows:
        (out / KERNELS_MD).write_text(render(kernel_rows, "markdown", env=env, columns=KERNEL_COLUMNS),
                                      encoding="utf-8")
        written["kernels"] = out / KERNELS_MD
    return written
