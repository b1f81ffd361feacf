"""`tritonnx serve bench`: a bounded load on a served model, beside in-process `session.run`.

    tritonnx serve bench MODEL [MODEL ...] [--runtimes tritonnx,onnxruntime] [--requests N]
        [--concurrency 1,16,64] [--max-seconds S] [--batch-wait-ms 0,2,5,10] [--max-batch-size 16]
        [--servers ray,bare] [--url http://127.0.0.1:PORT --model-name NAME] [--out DIR]

For each model, runtime, server, batch wait and concurrency, one row: requests per second,
p50/p99/max latency (the `tritonnx.bench.stats` rules: n per row, p99 only from 100 samples),
errors, the batches the requests ran in (the response's ``batch_requests`` parameter), the time
to the first successful response, resident memory of the server processes (psutil), and the
CPU time per request of each server process role (Ray's proxy, replica, controller, raylet).
Servers: ``ray`` (the Ray Serve deployment of `tritonnx serve`), ``bare`` (the same session and
codec behind a stdlib HTTP server in one process, `tritonnx.serve.reference_server`: what HTTP
and the codec cost without Ray) or ``--url`` (any running KServe v2 endpoint on loopback). The
floor rows time ``session.run`` in this process at batch 1 and at the largest batch.

Traffic goes to 127.0.0.1 only (any other host is refused); every load is bounded by
``--requests`` and ``--max-seconds``; every process started is stopped.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from tritonnx.commands.common import (existing_file, non_negative_int, output_path, positive_float, positive_int,
                                      split_list)
from tritonnx.errors import InvalidArgument

RUNTIMES = ("tritonnx", "onnxruntime")
SERVERS = ("ray", "bare")
FORMATS = ("table", "markdown", "json")
WIDTH = 100

#: (column title, row key) of the table, in the terminal's priority order (`report.render`
#: adds columns while the table fits 100 characters; markdown and JSON keep every column).
COLUMNS = [
    ("model", "model"), ("runtime", "runtime"), ("server", "server"), ("wait", "batch_wait_ms"),
    ("conc", "concurrency"), ("n", "n"), ("req/s", "req_s"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
    ("max ms", "max_ms"), ("err", "errors"), ("batch", "batch_text"), ("RSS MiB", "rss_mib"),
    ("max rel err", "max_rel_err"), ("1st ok s", "first_ok_s"), ("queue ms", "queue_p50_ms"), ("run ms", "run_p50_ms"),
    ("timing", "timing"), ("note", "note"),
]

#: Ray's process titles -> the role a process plays (command lines of the server processes).
RAY_ROLES = (("ProxyActor", "proxy"), ("haproxy", "proxy"), ("ServeReplica", "replica"),
             ("ServeController", "controller"), ("ray::IDLE", "idle-worker"), ("dashboard", "ray-agent"),
             ("runtime_env", "ray-agent"), ("log_monitor", "ray-agent"), ("monitor.py", "ray-agent"),
             ("gcs_server", "gcs"), ("raylet", "raylet"), ("reference_server", "bare-server"))


def role_of(cmdline: str) -> str:
    """The role of a server process from its command line (Ray's titles, our reference server).

    A Serve replica's title is ``ray::ServeReplica:APP:DEPLOYMENT``: `tritonnx serve`'s
    ``ingress`` deployment (the KServe v2 routes) is "ingress", a model's is "replica".
    """
    match = re.search(r"ServeReplica:[^:\s]+:(\S+)", cmdline)
    if match:
        return "ingress" if match.group(1).split(".")[0] == "ingress" else "replica"
    for needle, role in RAY_ROLES:
        if needle in cmdline:
            return role
    return "ray-other" if "ray" in cmdline else "other"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve-bench", prog="tritonnx serve bench",
        description="Bounded load on served models (loopback only) beside in-process session.run: "
        "req/s, p50/p99/max latency, errors, batch sizes, time to first success, resident memory.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help="zoo names or .onnx files (default: mlp)")
    p.add_argument("--runtimes", default="tritonnx,onnxruntime", help="tritonnx,onnxruntime (default both)")
    p.add_argument("--servers", default="ray", help="ray,bare: the Ray Serve deployment and/or the one-process "
                   "reference server (default ray)")
    p.add_argument("--url", default=None, help="bench a running KServe v2 endpoint instead (loopback only; "
                   "with --model-name); no server is started")
    p.add_argument("--model-name", default=None, help="the model's name at --url")
    p.add_argument("--requests", type=positive_int, default=2000, help="at most N requests per row (default 2000)")
    p.add_argument("--concurrency", default="1,16,64", help="concurrent clients, e.g. 1,16,64")
    p.add_argument("--max-seconds", type=positive_float, default=10.0,
                   help="no request is issued after S seconds of a row (default 10)")
    p.add_argument("--batch-wait-ms", default="0,2,5,10", help="Ray Serve batch wait timeouts to sweep (ms)")
    p.add_argument("--max-batch-size", type=positive_int, default=16, help="largest dynamic batch (default 16)")
    p.add_argument("--warmup", type=non_negative_int, default=8, help="untimed requests before each row (default 8)")
    p.add_argument("--timeout-s", type=positive_float, default=30.0, help="one request's timeout (default 30)")
    p.add_argument("--start-timeout-s", type=positive_float, default=180.0,
                   help="a server that answers no request within S seconds of its start is an error row")
    p.add_argument("--no-floor", action="store_true", help="no in-process session.run rows")
    p.add_argument("--json-tensors", action="store_true", help="JSON tensors (default: binary, as tritonclient sends)")
    p.add_argument("--config", choices=("tiny", "paper"), default="tiny", help="zoo model sizes (default tiny)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the weights and inputs")
    p.add_argument("--out", default=None, help="result folder (default bench-results/<UTC time>-serve/)")
    p.add_argument("--format", choices=FORMATS, default="table", help="what to print (files get every format)")
    p.add_argument("--wide", action="store_true", help="every column in the terminal table")
    p.set_defaults(func=run)


def _ints(text: str, flag: str, *, zero: bool = False) -> list[int]:
    try:
        values = [int(x) for x in split_list(text)]
    except ValueError:
        raise InvalidArgument(f"{flag} expects comma-separated integers, got {text!r}") from None
    if not values or any(v < (0 if zero else 1) for v in values):
        raise InvalidArgument(f"{flag} expects integers >= {0 if zero else 1}, got {text!r}")
    return list(dict.fromkeys(values))


def _choices(text: str, allowed: tuple, flag: str) -> list[str]:
    names = split_list(text)
    bad = [n for n in names if n not in allowed]
    if bad or not names:
        raise InvalidArgument(f"{flag}: unknown {bad[0] if bad else repr(text)}: expected {', '.join(allowed)}")
    return [a for a in allowed if a in names]


def check_args(args) -> dict:
    """Everything refused before any heavy import: lists, the url, files, the output folder."""
    from tritonnx.serve.loadgen import loopback_url

    plan = {
        "runtimes": _choices(args.runtimes, RUNTIMES, "--runtimes"),
        "servers": _choices(args.servers, SERVERS, "--servers") if not args.url else ["url"],
        "concurrency": _ints(args.concurrency, "--concurrency"),
        "waits": _ints(args.batch_wait_ms, "--batch-wait-ms", zero=True),
    }
    if args.url:
        plan["url"] = loopback_url(args.url)[1]
        if not args.model_name:
            raise InvalidArgument("--url needs --model-name (the model's name at that endpoint)")
        if len(args.models) != 1:
            raise InvalidArgument("--url needs exactly one MODEL (its ONNX file or zoo name, for the inputs and "
                                  "the floor)")
    for text in args.models:
        if text.endswith(".onnx") or os.sep in text:
            existing_file(text, "MODEL")
    if args.out:
        output_path(args.out, "--out", folder=True)
    return plan


# models, sessions, floor ------------------------------------------------------------------------
def _model_file(text: str, folder: Path, config: str, seed: int) -> Path:
    if text.endswith(".onnx") or os.sep in text:
        return Path(text)
    import tritonnx.zoo

    if text not in tritonnx.zoo.names():
        raise InvalidArgument(f"MODEL {text!r}: not an .onnx file or a zoo model ({', '.join(tritonnx.zoo.names())})")
    from tritonnx.export import export_model

    return Path(export_model(text, folder / f"{text}-{config}.onnx", config=config, verify=False, seed=seed).path)


def _inputs(path: Path, batch: int, seed: int) -> dict:
    import onnx

    from tritonnx.bench.feeds import random_feeds

    feeds, _ = random_feeds(onnx.load(str(path), load_external_data=False), batch=batch, seed=seed)
    return feeds


def make_session(path: Path, runtime: str):
    """An in-process session of `runtime` on `path` (onnxruntime on the CPU provider)."""
    if runtime == "onnxruntime":
        try:
            import onnxruntime
        except ImportError:
            raise InvalidArgument("runtime onnxruntime needs the cpu extra: pip install -e .[cpu]") from None
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    import tritonnx

    return tritonnx.InferenceSession(str(path))


def reference_outputs(path: Path, feeds: dict) -> dict:
    """Outputs by name of onnxruntime (the reference; tritonnx where it is missing) on `feeds`."""
    try:
        sess = make_session(path, "onnxruntime")
    except InvalidArgument:
        sess = make_session(path, "tritonnx")
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def floor_rows(model: str, path: Path, runtime: str, batches: list[int], *, seed: int, max_seconds: float,
               requests: int) -> list[dict]:
    """``session.run`` in this process, one request after the other, per batch size."""
    import psutil

    from tritonnx.bench.stats import measure

    from tritonnx.bench.stats import max_rel_err

    sess = make_session(path, runtime)
    rows = []
    for batch in batches:
        feeds = _inputs(path, batch, seed)
        ref = reference_outputs(path, feeds)
        err = max(max_rel_err(o, ref[n]) for n, o in zip(ref, sess.run(list(ref), feeds)))
        timing = measure(lambda: sess.run(None, feeds), warmup=3, min_samples=min(requests, 1000),
                         min_time=max_seconds)
        t = timing.as_row()
        rows.append({
            "model": model, "runtime": runtime, "server": f"session b{batch}", "batch_wait_ms": None,
            "concurrency": 1, "n": t["n"], "req_s": batch * 1e3 / t["median_ms"], "p50_ms": t["median_ms"],
            "p90_ms": t["p90_ms"], "p99_ms": t["p99_ms"], "min_ms": t["min_ms"], "max_ms": t["max_ms"],
            "mean_ms": t["mean_ms"], "errors": 0, "batch_text": str(batch), "first_ok_s": None,
            "rss_mib": psutil.Process().memory_info().rss / 2**20, "timing": t["timing"], "status": "ok",
            "samples_ms": t["samples_ms"], "providers": list(sess.get_providers()), "note": "",
            "max_rel_err": err,
        })
    return rows


# servers -------------------------------------------------------------------------------------------
class Server:
    """A started server: its url, the model's name there, how to stop it (idempotent)."""

    def __init__(self, kind: str, url: str, model_name: str, stop=None, reconfigure=None, pids=None):
        self.kind, self.url, self.model_name = kind, url, model_name
        self._stop, self._reconfigure, self.pids = stop, reconfigure, pids

    def reconfigure(self, batch_wait_ms: int, max_batch_size: int) -> bool:
        if self._reconfigure is None:
            return False
        self._reconfigure(batch_wait_ms=batch_wait_ms, max_batch_size=max_batch_size)
        return True

    def stop(self) -> None:
        stop, self._stop = self._stop, None
        if stop is not None:
            stop()


def start_server(kind: str, path: Path, model: str, runtime: str, *, max_batch_size: int, batch_wait_ms: int,
                 start_timeout_s: float, folder: Path) -> Server:
    """Start `kind` ("ray": `tritonnx.serve`'s deployment; "bare": the reference server) on loopback."""
    if kind == "bare":
        from tritonnx.serve import reference_server

        proc, url = reference_server.spawn(path, model, runtime=runtime, max_seconds=3600,
                                           start_timeout_s=start_timeout_s)
        return Server("bare", url, model, stop=lambda: reference_server.stop(proc), pids=[proc.pid])
    from tritonnx.serve import api  # Ray-free import; Ray is imported inside start()

    import shutil
    import warnings

    # Ray's socket paths must stay under 107 bytes: a short private folder, removed at stop.
    ray_dir = tempfile.mkdtemp(prefix="tnx-ray-", dir="/tmp")
    try:
        with warnings.catch_warnings():  # Ray's own imports warn about pydantic (nothing of ours)
            warnings.simplefilter("ignore", DeprecationWarning)
            handle = api.start([str(path)], names=[model], runtime=runtime, max_batch_size=max_batch_size,
                               batch_wait_ms=float(batch_wait_ms), host="127.0.0.1", port=0,
                               start_timeout_s=start_timeout_s,
                               ray_options={"_temp_dir": ray_dir, "object_store_memory": 128 << 20})
    except BaseException as exc:
        shutil.rmtree(ray_dir, ignore_errors=True)
        if isinstance(exc, api.MissingExtra):
            raise InvalidArgument(f"--servers ray: {exc}") from None
        raise

    def stop() -> None:
        try:
            handle.stop()
        finally:
            shutil.rmtree(ray_dir, ignore_errors=True)

    # pids=None: the sampler reads every descendant of this process (Ray's workers start later).
    return Server("ray", handle.url, handle.models[0], stop=stop, reconfigure=handle.reconfigure)


# the sweep -------------------------------------------------------------------------------------------
def _batch_text(row: dict) -> str:
    if row.get("batch_mean") is None:
        return "-"
    return f"{row['batch_mean']:.1f}/{row['batch_max']}"


def load_row(server: Server, model: str, runtime: str, wait: int | None, concurrency: int, inputs: dict,
             args, first_ok_s: float | None, expected: dict | None = None) -> dict:
    """One bounded load on `server`, with the server processes' memory and CPU time per role."""
    from tritonnx.serve.loadgen import ProcessSampler, run_load

    sampler = ProcessSampler(role=role_of, pids=server.pids) if server.kind != "url" else None
    before = sampler.snapshot() if sampler else []
    result = run_load(server.url, server.model_name, inputs, requests=args.requests, concurrency=concurrency,
                      max_seconds=args.max_seconds, timeout_s=args.timeout_s, warmup=args.warmup,
                      binary=not args.json_tensors, expected=expected)
    after = sampler.snapshot() if sampler else []
    row = result.as_row()
    cpu = ProcessSampler.cpu_by_role(before, after)
    if result.client_cpu_s is not None:
        cpu["client"] = result.client_cpu_s
    row.update({
        "model": model, "runtime": runtime, "server": server.kind, "batch_wait_ms": wait,
        "batch_text": _batch_text(row), "first_ok_s": first_ok_s, "status": "ok" if result.ok else "failed",
        "rss_mib": sum(f.rss_mib for f in after) if after else None,
        "rss_by_role_mib": ProcessSampler.rss_by_role(after),
        "cpu_ms_per_request": {k: 1e3 * v / result.ok for k, v in sorted(cpu.items())} if result.ok else {},
    })
    notes = []
    if result.errors:
        kind, message = next(iter(result.error_messages.items()), ("", ""))
        notes.append(f"{result.errors} errors ({', '.join(f'{k}: {v}' for k, v in result.error_kinds.items())}"
                     f"; first {kind}: {message})")
    row["note"] = "; ".join(n for n in notes if n)
    return row


def sweep(args, plan: dict, folder: Path, out: Path, log) -> list[dict]:
    from tritonnx.bench import report
    from tritonnx.serve.loadgen import first_success

    rows: list[dict] = []

    def keep(row: dict) -> None:
        rows.append(row)
        report.append_row(out, row)
        log(f"{row['model']} {row['runtime']} {row['server']} wait={row.get('batch_wait_ms')} "
            f"c={row.get('concurrency')}: {_brief(row)}")

    for text in args.models or ["mlp"]:
        path = _model_file(text, folder, args.config, args.seed)
        model = Path(text).stem if text.endswith(".onnx") else text
        inputs = _inputs(path, 1, args.seed)
        expected = reference_outputs(path, inputs)  # answers are checked: the 1st and every 100th
        for runtime in plan["runtimes"]:
            if not args.no_floor:
                for row in floor_rows(model, path, runtime, sorted({1, args.max_batch_size}), seed=args.seed,
                                      max_seconds=min(args.max_seconds, 3.0), requests=args.requests):
                    keep(row)
            if plan.get("url"):
                if runtime != plan["runtimes"][0]:
                    continue  # one endpoint: its runtime is whatever serves it
                server = Server("url", plan["url"], args.model_name)
                for c in plan["concurrency"]:
                    keep(load_row(server, model, "?", None, c, inputs, args, None, expected))
                continue
            for kind in plan["servers"]:
                waits = plan["waits"] if kind == "ray" else [None]
                server = None
                try:
                    for i, wait in enumerate(waits):
                        t0, since = time.monotonic(), "reconfigure"
                        if server is None or not server.reconfigure(wait, args.max_batch_size):
                            since = "start"
                            if server is not None:
                                server.stop()
                            t0 = time.monotonic()
                            server = start_server(kind, path, model, runtime, max_batch_size=args.max_batch_size,
                                                  batch_wait_ms=wait or 0, start_timeout_s=args.start_timeout_s,
                                                  folder=folder)
                        ready = first_success(server.url, server.model_name, inputs, timeout_s=args.start_timeout_s)
                        first_ok_s = None if ready is None else time.monotonic() - t0
                        if ready is None:
                            keep(_failed(model, runtime, kind, wait, f"no successful answer within "
                                         f"{args.start_timeout_s:g} s of the start"))
                            break
                        for c in plan["concurrency"]:
                            keep(dict(load_row(server, model, runtime, wait, c, inputs, args, first_ok_s,
                                               expected), first_ok_since=since))
                except Exception as exc:  # noqa: BLE001 - one failed server is one failed row, the sweep goes on
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    keep(_failed(model, runtime, kind, None, f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
                finally:
                    if server is not None:
                        server.stop()
    return rows


def _failed(model, runtime, kind, wait, note) -> dict:
    return {"model": model, "runtime": runtime, "server": kind, "batch_wait_ms": wait, "concurrency": None,
            "n": 0, "status": "failed", "note": note}


def _brief(row: dict) -> str:
    if row.get("status") != "ok":
        return f"FAILED: {row.get('note')}"
    rate = row.get("req_s")
    return (f"{rate:,.0f} req/s, p50 {row.get('p50_ms') or 0:.2f} ms, n={row.get('n')}, "
            f"errors {row.get('errors', 0)}" if rate else f"n={row.get('n')}, errors {row.get('errors')}")


# where the time goes ----------------------------------------------------------------------------------
def breakdown(rows: list[dict]) -> list[str]:
    """Per served row at its highest concurrency: latency split (measured in the replica and by the
    client) and CPU ms per request by process role; the session.run floor beside it."""
    lines = []
    floors = {(r["model"], r["runtime"]): r for r in rows if r.get("server") == "session b1" and r.get("p50_ms")}
    served = [r for r in rows if r.get("status") == "ok" and r.get("server") in ("ray", "bare", "url")]
    for r in served:
        if r.get("concurrency") != max(x.get("concurrency") or 0 for x in served
                                       if (x["model"], x["runtime"], x["server"]) == (r["model"], r["runtime"], r["server"])):
            continue
        floor = floors.get((r["model"], r["runtime"]))
        wait = "" if r.get("batch_wait_ms") is None else f" wait {r['batch_wait_ms']} ms"
        head = f"{r['model']} {r['runtime']} {r['server']}{wait}, {r['concurrency']} concurrent: p50 {r['p50_ms']:.2f} ms"
        if r.get("outside_p50_ms") is not None:
            rest = r["outside_p50_ms"]
            outside = {"ray": "Ray's proxy, HTTP, routing to the replica, codec",
                       "bare": "HTTP, codec, threads"}.get(r["server"], "outside the server's run")
            head += (f"; medians per request: queue {r['queue_p50_ms']:.2f}, run {r['run_p50_ms']:.2f}, "
                     f"the rest ({outside}, client) {rest:.2f}")
        parts = [head]
        if floor:
            parts.append(f"vs session.run b1 in-process {floor['p50_ms']:.3f} ms")
        cpu = r.get("cpu_ms_per_request") or {}
        if cpu:
            parts.append("CPU ms per request: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                            sorted(cpu.items(), key=lambda kv: -kv[1])))
        lines.append("; ".join(parts))
    return lines


# output ------------------------------------------------------------------------------------------------
def write_chart(rows: list[dict], path: Path, env: dict) -> Path | None:
    """req/s and p50 latency against concurrency, one line per (runtime, server, wait); floors dashed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    served = [r for r in rows if r.get("status") == "ok" and r.get("req_s") and r.get("server") in ("ray", "bare", "url")]
    if not served:
        return None
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    series: dict[tuple, list] = {}
    for r in served:
        series.setdefault((r["model"], r["runtime"], r["server"], r.get("batch_wait_ms")), []).append(r)
    for (model, runtime, server, wait), rs in series.items():
        rs = sorted(rs, key=lambda r: r["concurrency"])
        label = f"{model} {runtime} {server}" + (f" wait {wait} ms" if wait is not None else "")
        style = "-" if runtime == "tritonnx" else "--"
        xs = [r["concurrency"] for r in rs]
        a.plot(xs, [r["req_s"] for r in rs], style, marker="o", label=label)
        b.plot(xs, [r["p50_ms"] for r in rs], style, marker="o", label=label)
    for r in rows:
        if r.get("server") == "session b1" and r.get("req_s"):
            a.axhline(r["req_s"], color="gray", linestyle=":", linewidth=1)
            a.annotate(f"{r['model']} {r['runtime']} session.run b1", (1, r["req_s"]), fontsize=7, va="bottom")
    from matplotlib.ticker import FuncFormatter

    levels = sorted({r["concurrency"] for r in served})
    for ax, what in ((a, "requests/s"), (b, "p50 latency, ms")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3, which="both")
    b.legend(fontsize=7)
    title = f"tritonnx serve bench - {env.get('device')}, {env.get('cpu_count')} cores, {(env.get('time_utc') or '')[:10]}"
    if not env.get("gpu"):
        from tritonnx.bench.report import CPU_BANNER

        title += f" ({CPU_BANNER})"
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render(rows: list[dict], fmt: str, env: dict, wide: bool = False) -> str:
    from tritonnx.bench import report

    if fmt == "json":
        return report.render(rows, "json", env=env)
    columns, title = COLUMNS, ""
    models = {r.get("model") for r in rows}
    if fmt == "table" and not wide and len(models) == 1:  # one model: named above the table, not in every row
        columns, title = [c for c in COLUMNS if c[1] != "model"], f"model {models.pop()}\n"
    text = report.render(rows, fmt, env=env if fmt == "markdown" else None, columns=columns, wide=wide, width=WIDTH)
    if title:
        first, _, rest = text.partition("\n")
        text = f"{first}\n{title}{rest}" if first.startswith("***") else title + text
    extra = ["wait: Ray Serve's batch wait timeout, ms; session bN: session.run in this process at batch N "
             "(req/s = N / median); batch: mean/max requests per run (from the response); "
             "1st ok s: server start (or reconfigure, for a new batch wait) to its first successful answer; "
             "RSS: the server processes' resident memory (psutil; in-process rows: this process); "
             "n below --requests: the row stopped at --max-seconds; p99 only where n >= 100; max rel err: "
             "against onnxruntime in this process (served rows: the 1st and every 100th answer)."]
    extra += breakdown(rows)
    if fmt == "markdown":
        return text + "\n" + "\n".join(f"- {line}" for line in extra) + "\n"
    return text + "\n" + "\n".join(textwrap.fill(line, width=WIDTH, subsequent_indent="  ") for line in extra)


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def run(args) -> int:
    plan = check_args(args)
    from tritonnx.bench import environment, report

    out = Path(args.out) if args.out else Path("bench-results") / f"{environment.utc_stamp()}-serve"
    out.mkdir(parents=True, exist_ok=True)
    env = environment.collect(["tritonnx", "serve", "bench", *sys.argv[3:]] if sys.argv[1:3] == ["serve", "bench"]
                              else None)
    # How loaded the machine was (CPU rows share its cores with whatever else runs) and the serving stack.
    env.update(load_average_start=list(os.getloadavg()), ray=_version("ray"), tritonclient=_version("tritonclient"))
    env = environment.record(out, env)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="tritonnx-serve-bench-") as tmp:
        rows = sweep(args, plan, Path(tmp), out, log)
    env["load_average_end"] = list(os.getloadavg())
    # Every request's latency stays in rows.jsonl; results.json keeps the statistics (small enough to commit).
    results = {"env": env, "rows": [{k: v for k, v in r.items() if k != "samples_ms"} for r in rows],
               "breakdown": breakdown(rows)}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    (out / "table.md").write_text(render(rows, "markdown", env), encoding="utf-8")
    chart = write_chart(rows, out / "serve.png", env)
    print(render(rows, args.format, env, args.wide))
    print(f"results: {out} (results.json, table.md{', serve.png' if chart else ''})", file=sys.stderr)
    return 0 if all(r.get("status") == "ok" for r in rows) else 1
