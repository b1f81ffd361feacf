"""Ahead-of-time compilation of the catalog's kernels for sm_90 / sm_80, on a machine without a GPU.

`run_jobs(catalog.plan(...))` compiles each job with `triton.compile(ASTSource(...),
target=GPUTarget("cuda", 90|80, 32))` in worker processes started with `TRITON_INTERPRET=0`
(`python -m tritonnx.triton_kernels.aot --worker`, jobs and results as JSON lines), in
parallel, and returns one row per job:

    kernel, config, dtype, flags, arch, status ("ok" | "error"), error, shared (bytes),
    smem_limit, regs, spill (STACK bytes per thread from cuobjdump: the stack frame, which is
    register spills unless the kernel has local arrays), local, tensor_core
    ("wgmma" | "mma" | "none" in the PTX), ptx_features (`PTX_FEATURES` found: cp.async,
    barrier atomics, ...), blocks_per_sm (occupancy bound), in_autotuner, compile_s, cached,
    sampled, and from the entry: matmul, expect_tensor_core, spill_reason, ptx_requires.

Results are cached as JSON under `$TRITONNX_CACHE_DIR/aot` (default `~/.cache/tritonnx/aot`),
keyed by the kernel module's source hash + the exact compile inputs (signature, constexprs,
options, divisibility attrs) + arch + Triton version: an edit to a kernel module recompiles
that kernel only, a catalog edit only the jobs whose inputs it changes. `gate_failures(rows)` lists what the CI gate
rejects. The parent process may run under the interpreter (`TRITON_INTERPRET=1`): kernels are
only compiled in the workers.
"""
from __future__ import annotations

import hashlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tritonnx.triton_kernels import catalog

#: Bump when the row format or the compile procedure (`compile_job`) changes: part of the cache
#: key, with the Triton version and the kernel's source hash.
AOT_FORMAT = 3
_MARK = "@@tritonnx-aot "
DEFAULT_JOB_TIMEOUT = 600.0
_STARTUP_TIMEOUT = 300.0


def cache_root() -> Path:
    """tritonnx's cache folder: `$TRITONNX_CACHE_DIR`, else `$XDG_CACHE_HOME/tritonnx`, else
    `~/.cache/tritonnx`."""
    root = os.environ.get("TRITONNX_CACHE_DIR")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "tritonnx"


def cache_dir() -> Path:
    """The compile results' cache: `cache_root() / "aot"`."""
    return cache_root() / "aot"


def _triton_version() -> str:
    import triton

    return triton.__version__


def job_key(job: catalog.Job, source_hash: str, spec: catalog.CompileSpec) -> str:
    """The cache key: Triton version, the kernel's source hash, the exact compile inputs
    (signature, constexprs, options, attrs) and the arch."""
    payload = json.dumps([AOT_FORMAT, _triton_version(), source_hash, job.kernel, job.arch,
                          sorted(spec.signature.items()), sorted(spec.constexprs.items()),
                          sorted(spec.options.items()), sorted((list(k), v) for k, v in spec.attrs.items())],
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


# ----------------------------------------------------------------------------------------------
# Worker side (runs with TRITON_INTERPRET=0)
# ----------------------------------------------------------------------------------------------

def resolve_entry(ref: str) -> catalog.KernelEntry:
    """A catalog name, or "/path/file.py:ATTR" / "module:ATTR" naming a `KernelEntry`."""
    if ":" in ref:
        target, _, attr = ref.rpartition(":")
        entry = getattr(catalog._import(target), attr)
        if not isinstance(entry, catalog.KernelEntry):
            raise catalog.InvalidArgument(f"{ref} is not a KernelEntry")
        return entry
    return catalog.get(ref)


def _tool(name: str) -> str:
    import triton

    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


def _resource_usage(cubin: bytes) -> dict:
    """REG / STACK / SHARED / LOCAL of the kernel in a cubin, from the bundled cuobjdump."""
    import re

    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
        path = f.name
    try:
        out = subprocess.run([_tool("cuobjdump"), "--dump-resource-usage", path],
                             capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)
    usage = {}
    for key in ("REG", "STACK", "SHARED", "LOCAL"):
        m = re.search(rf"\b{key}:(\d+)", out.stdout)
        usage[key] = int(m.group(1)) if m else None
    if usage["REG"] is None:
        usage["error"] = (out.stderr or out.stdout).strip()[-300:]
    return usage


#: PTX features a row lists (`ptx_features`): name -> regex. Entries may require some
#: (`KernelEntry.ptx_requires`), e.g. the grid barrier's release/acquire atomics.
PTX_FEATURES = {
    "wgmma": r"wgmma\.mma_async",
    "mma.sync": r"\bmma\.sync",
    "cp.async": r"\bcp\.async\.c[ag]\b",
    "cp.async.bulk": r"\bcp\.async\.bulk",
    "atom.release": r"\batom\.[\w.]*\.release\.",
    "ld.acquire": r"\bld\.[\w.]*\.acquire\.",
    "bar.sync": r"\bbar\.sync\b",
    "local": r"\b(?:ld|st)\.local\b",
}


def ptx_features(ptx: str) -> list[str]:
    import re

    return [name for name, pattern in PTX_FEATURES.items() if re.search(pattern, ptx)]


def _tensor_core(ptx: str) -> str:
    if "wgmma.mma_async" in ptx:
        return "wgmma"
    if "mma.sync" in ptx:
        return "mma"
    return "none"


def blocks_per_sm(arch: str, num_warps: int, regs: int | None, shared: int | None) -> int | None:
    """How many blocks of this config fit on one SM at once (registers, shared memory,
    threads; allocation granularity ignored, so an upper bound)."""
    if regs is None or shared is None:
        return None
    a = catalog.ARCHS[arch]
    threads = 32 * num_warps
    limits = [a.max_threads_per_sm // threads, 32]
    if regs:
        limits.append(a.regs_per_sm // (regs * threads))
    if shared:
        limits.append(a.smem_per_sm // (shared + 1024))
    return max(0, min(limits))


def compile_job(job: catalog.Job) -> dict:
    """Compile one job in this process (which must have been started with TRITON_INTERPRET=0)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    row = _base_row(job)
    start = time.perf_counter()
    stage = "setup"
    try:
        entry = resolve_entry(job.entry_ref)
        fn = entry.load()
        if type(fn).__name__ == "InterpretedFunction":
            raise RuntimeError("the kernel was defined under TRITON_INTERPRET=1: compile it in a "
                               "process started with TRITON_INTERPRET=0")
        spec = entry.spec_for(job, fn)
        tuned = entry.autotuner_config_ids()  # this process is the GPU's view: TRITON_INTERPRET=0
        row["in_autotuner"] = None if tuned is None else job.config in tuned
        arch = catalog.ARCHS[job.arch]
        src = ASTSource(fn=fn, signature=spec.signature, constexprs=spec.constexprs,
                        attrs=spec.attrs)
        stage = "compile"
        compiled = triton.compile(src, target=GPUTarget("cuda", arch.capability, 32),
                                  options=dict(spec.options))
        usage = _resource_usage(compiled.asm["cubin"])
        shared = int(compiled.metadata.shared)
        row.update(
            status="ok" if "error" not in usage else "error",
            error=usage.get("error", ""),
            shared=shared,
            regs=usage["REG"],
            spill=usage["STACK"],
            local=usage["LOCAL"],
            tensor_core=_tensor_core(compiled.asm["ptx"]),
            ptx_features=ptx_features(compiled.asm["ptx"]),
            num_warps=int(compiled.metadata.num_warps),
            blocks_per_sm=blocks_per_sm(job.arch, int(compiled.metadata.num_warps),
                                        usage["REG"], shared),
        )
    except Exception as exc:  # noqa: BLE001 - every failure is a report row
        row.update(status="error", error=f"{type(exc).__name__}: {exc}".strip()[-4000:])
        # only the compiler's verdict is cached; a failure to set the job up is not
        row["cacheable"] = stage == "compile"
    row["compile_s"] = round(time.perf_counter() - start, 3)
    return row


def _identity(job: catalog.Job) -> dict:
    """The fields of a row that name its job (a cached result may come from an equal job)."""
    return {"kernel": job.kernel, "config": job.config, "config_index": job.config_index,
            "dtype": job.dtype, "flags": dict(job.flags), "arch": job.arch, "sampled": job.sampled}


def _base_row(job: catalog.Job) -> dict:
    return _identity(job) | {
        "status": "error", "error": "", "shared": None,
        "smem_limit": catalog.ARCHS[job.arch].smem_per_block, "regs": None, "spill": None,
        "local": None, "tensor_core": None, "num_warps": None, "blocks_per_sm": None,
        "compile_s": None, "cached": False, "in_autotuner": None, "ptx_features": None,
    }


def _worker_main() -> int:
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("the aot worker needs TRITON_INTERPRET=0", file=sys.stderr)
        return 2
    import triton.compiler  # noqa: F401 - the slow imports, before the first job's clock starts

    sys.stdout.write(_MARK + "ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        row = compile_job(catalog.Job.from_dict(json.loads(line)))
        sys.stdout.write(_MARK + json.dumps(row, default=str) + "\n")
        sys.stdout.flush()
    return 0


# ----------------------------------------------------------------------------------------------
# Parent side
# ----------------------------------------------------------------------------------------------

class _Worker:
    """One `python -m tritonnx.triton_kernels.aot --worker` process; a thread reads its stdout."""

    def __init__(self):
        env = dict(os.environ, TRITON_INTERPRET="0", PYTHONUNBUFFERED="1")
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tritonnx.triton_kernels.aot", "--worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            env=env, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.closed = False
        self.ready = False

    def _read(self) -> None:
        for line in self.proc.stdout:
            if line.startswith(_MARK):
                self.lines.put(line[len(_MARK):])
        self.lines.put(None)  # end of output: the worker exited

    def run(self, job: catalog.Job, timeout: float) -> dict:
        if not self.ready:  # the job's time starts once Triton is imported
            try:
                line = self.lines.get(timeout=_STARTUP_TIMEOUT)
            except queue.Empty:
                line = None
            if line is None or line.strip() != "ready":
                self.close(kill=True)
                raise RuntimeError(f"compile worker did not start: {self._stderr_tail()}")
            self.ready = True
        try:
            self.proc.stdin.write(json.dumps(job.as_dict(), default=str) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: the reader's end-of-output says how
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close(kill=True)
            raise TimeoutError(f"compile took longer than {timeout:.0f} s") from None
        if line is None:
            code = self.proc.wait()
            tail = self._stderr_tail()
            self.close()
            raise RuntimeError(f"compile worker died (exit code {code}): {tail}")
        return json.loads(line)

    def _stderr_tail(self) -> str:
        try:
            self.stderr.seek(0)
            return self.stderr.read()[-1500:].strip()
        except (OSError, ValueError):
            return ""

    def close(self, kill: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=5)
        self.stderr.close()


def run_jobs(jobs: list[catalog.Job], *, workers: int | None = None, use_cache: bool = True,
             cache: Path | None = None, timeout: float = DEFAULT_JOB_TIMEOUT,
             progress=False) -> list[dict]:
    """Compile `jobs` (cache first, the rest in `workers` parallel processes).

    Args:
        jobs: from `catalog.plan()`.
        workers: parallel compile processes (default: CPU count, at most the misses).
        use_cache: read and write the result cache (`cache_dir()` or `cache`).
        timeout: seconds one compile may take before its worker is killed.
        progress: True for a tqdm bar on stderr (a terminal), or a function called as
            ``progress(done, total, row)`` after each compile (a line per compile in a log).

    Returns:
        One row per job, in job order (see the module docstring); every row also carries
        `matmul` and `expect_tensor_core` from its entry.
    """
    cache = cache or cache_dir()
    rows: list[dict | None] = [None] * len(jobs)
    keys: list[str | None] = [None] * len(jobs)
    hashes: dict[str, str] = {}
    entries: dict[str, catalog.KernelEntry] = {}
    fns: dict[str, object] = {}
    config_lists: dict[tuple[str, str], list] = {}
    misses = []
    for i, job in enumerate(jobs):
        try:
            entry = entries.get(job.entry_ref) or resolve_entry(job.entry_ref)
            entries[job.entry_ref] = entry
            if job.entry_ref not in hashes:
                hashes[job.entry_ref] = entry.source_hash()
                fns[job.entry_ref] = entry.load()
            if (job.entry_ref, job.arch) not in config_lists:
                config_lists[(job.entry_ref, job.arch)] = entry.config_list(job.arch)
            spec = entry.spec_for(job, fns[job.entry_ref], config_lists[(job.entry_ref, job.arch)])
        except Exception as exc:  # noqa: BLE001 - a job that cannot be set up is an error row
            rows[i] = _base_row(job) | {"error": f"{type(exc).__name__}: {exc}"}
            continue
        keys[i] = job_key(job, hashes[job.entry_ref], spec)
        path = cache / keys[i][:2] / f"{keys[i]}.json"
        if use_cache and path.exists():
            try:
                rows[i] = json.loads(path.read_text()) | _identity(job) | {"cached": True}
                continue
            except (OSError, ValueError):
                pass
        misses.append(i)

    if misses:
        def store(i: int) -> None:  # each result is cached as soon as it comes
            row = rows[i]
            if not use_cache or row is None or row.get("worker_failure") or not row.get("cacheable", True):
                return
            path = cache / keys[i][:2] / f"{keys[i]}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps(row, default=str))
            os.replace(tmp, path)

        _compile_parallel(jobs, misses, rows, workers, timeout, progress, store)

    out = []
    for job, row in zip(jobs, rows):
        entry = entries.get(job.entry_ref)
        row = dict(row or _base_row(job) | {"error": "not compiled (interrupted)"})
        row["matmul"] = bool(entry and entry.matmul)
        row["expect_tensor_core"] = _expect_tc(entry, job)
        row["spill_reason"] = entry.spill_reason(row) if (entry and row.get("spill")) else None
        row["ptx_requires"] = list(entry.required_ptx(job.dtype, dict(job.flags), job.arch)) if entry else []
        out.append(row)
    return out


def _expect_tc(entry: catalog.KernelEntry | None, job: catalog.Job) -> bool | None:
    if entry is None or not entry.matmul or entry.expect_tensor_core is None:
        return None
    try:
        config = entry.config_list(job.arch)[job.config_index]
        return bool(entry.expect_tensor_core(config, job.dtype, dict(job.flags), job.arch))
    except Exception:  # noqa: BLE001 - the compile row reports the real problem
        return None


def _compile_parallel(jobs, misses, rows, workers, timeout, progress, on_done) -> None:
    n = max(1, min(workers or os.cpu_count() or 1, len(misses)))
    todo: queue.Queue = queue.Queue()
    for i in misses:
        todo.put(i)
    bar, report, count = None, progress if callable(progress) else None, [0]
    if progress and report is None:
        from tqdm import tqdm

        bar = tqdm(total=len(misses), desc="compiling", unit="kernel", file=sys.stderr)
    lock = threading.Lock()

    def drive():
        worker = None
        try:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                if worker is None:
                    worker = _Worker()
                try:
                    rows[i] = worker.run(jobs[i], timeout)
                except Exception as exc:  # noqa: BLE001 - a dead or confused worker is an error row
                    worker.close(kill=True)
                    worker = None
                    rows[i] = _base_row(jobs[i]) | {"error": f"{type(exc).__name__}: {exc}",
                                                    "worker_failure": True}
                on_done(i)
                with lock:
                    count[0] += 1
                    if bar is not None:
                        bar.update(1)
                    elif report is not None:
                        report(count[0], len(misses), rows[i])
        finally:
            if worker is not None:
                worker.close()

    threads = [threading.Thread(target=drive, daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if bar is not None:
        bar.close()


# ----------------------------------------------------------------------------------------------
# The gate and the report
# ----------------------------------------------------------------------------------------------

def gate_failures(rows: list[dict], spills: dict[str, dict[str, str]] | None = None) -> list[str]:
    """What the CI gate rejects in `rows`, one line each (empty: the gate passes).

    - a job that did not compile;
    - shared memory above the arch's per-block limit;
    - a config that spills (stack > 0) for which its entry gives no reason (`spills`);
    - a matmul kernel with no config reaching the arch's tensor-core instruction (wgmma on
      sm_90, mma on sm_80) for fp16/bf16;
    - a job its entry expects to reach the tensor cores (`expect_tensor_core`) that does not;
    - a PTX feature its entry requires (`ptx_requires`, names of `PTX_FEATURES`) missing;
    - a config of the catalog's list missing from the kernel's `@triton.autotune` list (the
      catalog must compile the configs the autotuner runs: contract 7).

    `spills`: kernel name -> {config id: reason}, replacing the catalog entries' own (tests).
    """
    failures = []

    def accepted(r):
        if spills is not None:
            return spills.get(r["kernel"], {}).get(r["config"])
        return r.get("spill_reason")

    where = lambda r: f"{r['kernel']} [{r['config']}] {r['dtype']} {_flags_str(r['flags'])} {r['arch']}"  # noqa: E731
    tc_seen: dict[tuple, bool] = {}
    for r in rows:
        if r["status"] != "ok":
            failures.append(f"{where(r)}: does not compile: {error_summary(r['error'])}")
            continue
        missing = [f for f in r.get("ptx_requires") or () if f not in (r.get("ptx_features") or ())]
        if missing:
            failures.append(f"{where(r)}: the PTX lacks {', '.join(missing)} (the entry requires "
                            f"it; found: {', '.join(r.get('ptx_features') or []) or 'none'})")
        if r.get("in_autotuner") is False:
            failures.append(f"{where(r)}: config not in the kernel's @triton.autotune list: the "
                            f"catalog's config function and the autotuner disagree")
        if r["shared"] is not None and r["shared"] > r["smem_limit"]:
            failures.append(f"{where(r)}: needs {r['shared']} B of shared memory, {r['arch']} "
                            f"gives {r['smem_limit']} B per block")
        if r["spill"] and not accepted(r):
            failures.append(f"{where(r)}: spills ({r['spill']} B stack, {r['regs']} registers): "
                            f"prune it in the config builder's keep() or list it in the catalog "
                            f"entry's spills with the reason")
        if r.get("matmul"):
            want = catalog.ARCHS[r["arch"]].tensor_core
            got = r["tensor_core"] == want or (want == "mma" and r["tensor_core"] == "wgmma")
            key = (r["kernel"], r["dtype"], r["arch"])
            tc_seen[key] = tc_seen.get(key, False) or got
            if r.get("expect_tensor_core") and not got:
                failures.append(f"{where(r)}: expected {want} in the PTX, found "
                                f"{r['tensor_core']}")
    for (kernel, dtype, arch), got in sorted(tc_seen.items()):
        if dtype in ("fp16", "bf16") and not got:
            want = catalog.ARCHS[arch].tensor_core
            failures.append(f"{kernel} {dtype} {arch}: no config reaches {want} (tensor cores)")
    return failures


def error_summary(error: str) -> str:
    """One line from an error text: for a Triton `CompilationError`, where and why."""
    lines = [ln for ln in (error or "").splitlines() if ln.strip()]
    if not lines:
        return "?"
    if len(lines) == 1:
        return lines[0]
    caret = next((i for i, ln in enumerate(lines) if ln.strip() == "^"), None)
    if caret:
        return f"{lines[0].rstrip(':')} `{lines[caret - 1].strip()}`: {lines[-1].strip()}"
    return f"{lines[0]} ... {lines[-1].strip()}"


def _flags_str(flags: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(flags.items())) or "-"


def _kb(n) -> str:
    return "-" if n is None else f"{n / 1024:.1f}"


REPORT_HEADERS = ["kernel", "config", "dtype", "flags", "arch", "status", "smem KB / limit",
                  "regs", "stack B", "tensor core", "blocks/SM"]


def table_rows(rows: list[dict]) -> list[list]:
    """The report's table rows (headers: `REPORT_HEADERS`)."""
    out = []
    for r in rows:
        if r["status"] == "ok":
            status = "ok"
        else:
            status = "ERROR: " + error_summary(r["error"])[:100]
        tc = (r["tensor_core"] or "-") if r.get("matmul") else "-"
        if r.get("expect_tensor_core") and r["tensor_core"] != catalog.ARCHS[r["arch"]].tensor_core:
            tc += " (expected " + catalog.ARCHS[r["arch"]].tensor_core + ")"
        out.append([r["kernel"], r["config"], r["dtype"], _flags_str(r["flags"]), r["arch"], status,
                    f"{_kb(r['shared'])} / {_kb(r['smem_limit'])}", _dash(r["regs"]),
                    _spill_text(r), tc, _dash(r["blocks_per_sm"])])
    return out


def _spill_text(r: dict) -> str:
    if not r.get("spill"):
        return _dash(r.get("spill"))
    return f"{r['spill']} (accepted)" if r.get("spill_reason") else f"{r['spill']} (NOT accepted)"


def _dash(v):
    return "-" if v is None else v


SUMMARY_HEADERS = ["kernel", "dtype", "arch", "compiled", "configs", "max smem KB / limit",
                   "max regs", "with stack (spills)", "tensor core", "min blocks/SM"]


def summary_rows(rows: list[dict]) -> list[dict]:
    """One dict per kernel x dtype x arch: compiled/total jobs, distinct configs, the largest
    shared memory and register count, how many jobs spill, and the tensor-core instruction
    counts (matmul kernels)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["kernel"], r["dtype"], r["arch"]), []).append(r)
    out = []
    for (kernel, dtype, arch), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        tc = {}
        for r in ok:
            tc[r["tensor_core"]] = tc.get(r["tensor_core"], 0) + 1
        out.append({
            "kernel": kernel, "dtype": dtype, "arch": arch, "compiled": len(ok), "jobs": len(rs),
            "configs": len({r["config"] for r in rs}), "sampled": any(r["sampled"] for r in rs),
            "max_shared": max((r["shared"] for r in ok), default=None),
            "smem_limit": rs[0]["smem_limit"],
            "max_regs": max((r["regs"] for r in ok if r["regs"] is not None), default=None),
            "spilling": sum(1 for r in ok if r["spill"]),
            "max_spill": max((r["spill"] or 0 for r in ok), default=0),
            "tensor_core": tc if rs[0].get("matmul") else None,
            "min_blocks_per_sm": min((r["blocks_per_sm"] for r in ok if r["blocks_per_sm"] is not None),
                                     default=None),
        })
    return out


def summary_table(rows: list[dict]) -> list[list]:
    """The summary's table rows (headers: `SUMMARY_HEADERS`)."""
    table = []
    for s in summary_rows(rows):
        tc = "-" if s["tensor_core"] is None else " ".join(f"{k}:{v}" for k, v in sorted(s["tensor_core"].items()))
        spill = f"{s['spilling']} (max {s['max_spill']} B)" if s["spilling"] else "0"
        table.append([s["kernel"], s["dtype"], s["arch"], f"{s['compiled']}/{s['jobs']}",
                      s["configs"],
                      f"{_kb(s['max_shared'])} / {_kb(s['smem_limit'])}", _dash(s["max_regs"]), spill, tc,
                      _dash(s["min_blocks_per_sm"])])
    return table


def format_summary(rows: list[dict], tablefmt: str = "github") -> str:
    from tabulate import tabulate

    return tabulate(summary_table(rows), headers=SUMMARY_HEADERS, tablefmt=tablefmt)


def format_table(rows: list[dict], tablefmt: str = "github") -> str:
    from tabulate import tabulate

    return tabulate(table_rows(rows), headers=REPORT_HEADERS, tablefmt=tablefmt)


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        raise SystemExit(_worker_main())
    print("usage: python -m tritonnx.triton_kernels.aot --worker (jobs as JSON lines on stdin); "
          "the report is `tritonnx kernels --report`", file=sys.stderr)
    raise SystemExit(2)
