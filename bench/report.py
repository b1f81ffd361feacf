"""Result files and tables of a benchmark run.

A result set is one folder:

- ``env.json``: the environment (`bench.environment.collect`), plus every command that added rows.
- ``rows.jsonl``: one JSON object per row, appended as each row finishes (raw samples included).
- ``results.json``: environment, rows with the derived columns, what did not run, the summary.
- ``table.md``, ``table.csv``: the table; ``speedup.png``: speed-up over onnxruntime per model.
- ``kernels.jsonl`` / ``kernels.md``: kernel-benchmark rows (``--kernels``).

Derived columns (computed here from the rows, so a resumed set is consistent): throughput,
speed-up over onnxruntime (its median over this row's, same model/batch/dtype, same run).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable

from tabulate import tabulate

from tritonnx.bench.stats import geomean

ROWS_FILE = "rows.jsonl"
ENV_FILE = "env.json"
RESULTS_FILE = "results.json"
TABLE_MD = "table.md"
TABLE_CSV = "table.csv"
CHART_PNG = "speedup.png"
KERNELS_FILE = "kernels.jsonl"
KERNELS_MD = "kernels.md"

CPU_BANNER = "CPU-interpreter times, not performance figures"

#: (column title, row key) of the model table, in order.
COLUMNS = (
    ("model", "model"), ("config", "config"), ("batch", "batch"), ("dtype", "dtype"), ("provider", "provider"),
    ("median ms", "median_ms"), ("p20 ms", "p20_ms"), ("p80 ms", "p80_ms"),
    ("items/s", "throughput"), ("vs ORT", "speedup_vs_ort"), ("max rel err", "max_rel_err"),
    ("peak MiB", "peak_mem_mib"), ("cold s", "compile_cold_s"), ("warm s", "compile_warm_s"),
    ("roofline", "roofline"), ("note", "note"),
)
KERNEL_COLUMNS = (
    ("family", "family"), ("case", "case"), ("dtype", "dtype"), ("batch", "batch"),
    ("provider", "provider"), ("median ms", "median_ms"), ("p20 ms", "p20_ms"), ("p80 ms", "p80_ms"),
    ("max rel err", "max_rel_err"), ("roofline", "roofline"), ("note", "note"),
)


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
        if any(r.get("timing") == "cpu-wall" for r in mine.values()):
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
    if isinstance(value, str):
        return value
    if key in ("batch",):
        return str(value)
    if key == "roofline":
        return f"{100 * value:.1f}%"
    if key == "speedup_vs_ort":  # never "0.00x": small ratios keep two significant digits
        return f"{value:.2f}x" if value >= 0.01 else f"{value:.2g}x"
    if key == "max_rel_err":
        return f"{value:.1e}" if math.isfinite(value) else str(value)
    if key == "throughput":
        return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
    if key in ("compile_cold_s", "compile_warm_s"):
        return f"{value:.2f}"
    if key == "peak_mem_mib":
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


def table_rows(rows: list[dict], columns=COLUMNS, *, note_width: int | None = None) -> list[list[str]]:
    table = []
    for row in rows:
        cells = []
        for _, key in columns:
            if key == "note":
                note = _status_note(row)
                if note_width and len(note) > note_width:
                    note = note[: note_width - 3] + "..."
                cells.append(note)
            else:
                cells.append(_fmt(key, row.get(key)))
        table.append(cells)
    return table


def banner(rows: list[dict]) -> str | None:
    """The warning line a table of CPU times carries."""
    if any(r.get("timing") == "cpu-wall" for r in rows):
        return CPU_BANNER
    return None


def render(rows: list[dict], fmt: str = "table", *, env: dict | None = None, columns=COLUMNS) -> str:
    """The rows as text: "table" (terminal), "markdown", "csv" or "json"."""
    if fmt == "json":
        return json.dumps({"env": env, "rows": [{k: _finite(v) for k, v in r.items()} for r in rows]},
                          indent=1, default=_json_default)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([key for _, key in columns] + ["status", "timing", "device"])
        for row in rows:
            writer.writerow([_finite(row.get(key)) for _, key in columns]
                            + [row.get("status"), row.get("timing"), row.get("device")])
        return buf.getvalue()
    headers = [title for title, _ in columns]
    tablefmt = "github" if fmt == "markdown" else "simple"
    # The terminal table keeps notes short (the files have them whole).
    cells = table_rows(rows, columns, note_width=None if fmt == "markdown" else 100)
    if fmt == "markdown":
        cells = [[c.replace("|", "\\|") for c in r] for r in cells]
    body = tabulate(cells, headers=headers, tablefmt=tablefmt, disable_numparse=True)
    lines = []
    warn = banner(rows)
    if fmt == "markdown":
        if env:
            lines.append(header_markdown(env))
        if warn:
            lines.append(f"**{warn}.**\n")
        lines.append(body)
        extra = summary(rows) if columns is COLUMNS else []
        if extra:
            lines.append("")
            lines.extend(f"- {s}" for s in extra)
        return "\n".join(lines) + "\n"
    if warn:
        lines.append(f"*** {warn} ***")
    lines.append(body)
    if columns is COLUMNS:
        lines.extend(summary(rows))
    return "\n".join(lines)


def header_markdown(env: dict) -> str:
    """The markdown lines naming device, driver, versions, commit and commands of a result set."""
    commit = env.get("commit") or "unknown"
    if env.get("dirty"):
        commit += " (with uncommitted changes)"
    commands = env.get("commands") or [env.get("command")]
    parts = [
        f"Device: **{env.get('device')}**, driver {env.get('driver') or '-'}, CUDA {env.get('cuda') or '-'}; "
        f"torch {env.get('torch')}, triton {env.get('triton')}, onnxruntime {env.get('onnxruntime')} "
        f"({', '.join(env.get('onnxruntime_providers') or []) or '-'}), onnx {env.get('onnx')}; "
        f"Python {env.get('python')}.",
        f"Commit `{commit}`, {env.get('time_utc')}; tf32 {'on' if env.get('tf32') else 'off'}; "
        f"kernels {env.get('kernels')}; timing: {env.get('timing')}.",
        "Commands: " + "; ".join(f"`{c}`" for c in commands if c) + ".",
        "",
    ]
    return "\n".join(parts)


def write_chart(rows: list[dict], path: Path) -> Path | None:
    """Bar chart of speed-up over onnxruntime per model, one panel per (dtype, batch).

    Returns the path, or None when matplotlib is missing or there is nothing to plot.
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
    groups = sorted({(r["dtype"], int(r["batch"])) for r in plotted})
    providers = [p for p in ("tritonnx", "tritonnx-unfused", "torch", "torch.compile")
                 if any(r["provider"] == p for r in plotted)]
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3.2 * len(groups)), squeeze=False)
    for ax, (dtype, batch) in zip(axes[:, 0], groups):
        sub = [r for r in plotted if r["dtype"] == dtype and int(r["batch"]) == batch]
        models = list(dict.fromkeys(r["model"] for r in sub))
        width = 0.8 / max(len(providers), 1)
        for i, prov in enumerate(providers):
            vals = {r["model"]: r["speedup_vs_ort"] for r in sub if r["provider"] == prov}
            xs = [j + i * width for j, m in enumerate(models) if m in vals]
            ax.bar(xs, [vals[m] for m in models if m in vals], width, label=prov)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")  # speed-ups and slow-downs read alike
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(models))])
        ax.set_xticklabels(models, rotation=30, ha="right")
        ax.set_ylabel("speed-up vs onnxruntime")
        ax.set_title(f"{dtype}, batch {batch}")
        ax.legend(fontsize="small")
    warn = banner(plotted)
    if warn:
        fig.suptitle(warn)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    chart = write_chart(rows, out / CHART_PNG)
    if chart:
        written["png"] = chart
    if kernel_rows:
        (out / KERNELS_MD).write_text(render(kernel_rows, "markdown", env=env, columns=KERNEL_COLUMNS),
                                      encoding="utf-8")
        written["kernels"] = out / KERNELS_MD
    return written
