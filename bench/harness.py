"""The model benchmark sweep: plan the rows, export, run every provider, record row by row.

Order of work (DESIGN.md, "Benchmarks"), most valuable first: dtypes as given (fp16 before
fp32 by default on a GPU); models in `MODEL_ORDER` then the rest of the zoo; each model at
every batch size with every provider in ``tritonnx, onnxruntime, tritonnx-unfused, torch``;
then all torch.compile rows last (its compiles are slow). Each finished row is appended to
``rows.jsonl`` at once; `--resume` skips the rows already there (except rows of a provider
that was missing: they are tried again); a time budget stops before the next row and lists
what did not run.

Every row of one (model, dtype, batch) uses the same ONNX file, the same feeds (on the device),
the same reference (onnxruntime's output), and torch rows the module with the same weights.

A model is a zoo name or the path of any ONNX file (`FileModel`): its rows have config "file",
the file's own dtype, feeds from `bench.feeds` (``--shapes``, random of the right dtype and
range, or ``--feeds``), and torch / torch.compile rows that say "not available": a file
carries no torch module (tritonnx has no ONNX -> torch converter, and timing one would
measure the converter, not the model's author's module).

Timing follows `bench.stats.measure`: `SAMPLING` gives each machine's minimum samples and
measured time (whichever first); every row records its n, measured time and timing label.
"""
from __future__ import annotations

import copy
import os
import gc
import json
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tritonnx.bench import devices, report
from tritonnx.bench.ort import timing_stream
from tritonnx.bench.providers import HOST_KEYS, Workload, make_provider
from tritonnx.bench.stats import Timing, max_rel_err, measure
from tritonnx.errors import InvalidArgument

#: DESIGN.md's model order for a lent GPU; the rest of the zoo follows in its own order.
MODEL_ORDER = (
    "lenet5", "alexnet", "vgg16", "resnet18", "googlenet",
    "char_lstm", "lstm_lm", "bilstm_speech", "gru_lm", "seq2seq",
)
#: `make bench` on a CPU: a subset whose fused Triton kernels run under the interpreter in about
#: a minute on 2 cores, covering every fused kernel: nothing to fuse (mlp), Conv+ReLU+MaxPool
#: (lenet5), Conv+Add+ReLU (resnet18), RNN (rnn_lm), LSTM (char_lstm), GRU (gru_lm).
CPU_DEFAULT_MODELS = ("mlp", "lenet5", "resnet18", "rnn_lm", "char_lstm", "gru_lm")


@dataclass
class BenchSettings:
    """What one `tritonnx bench` invocation runs."""

    models: list[str]
    out: Path
    config: str = "paper"
    batches: list[int] = field(default_factory=lambda: [1])
    dtypes: list[str] = field(default_factory=lambda: ["fp32"])
    providers: list[str] = field(default_factory=lambda: ["tritonnx", "onnxruntime"])
    time_budget: float | None = None
    seed: int = 0
    seq_len: int | None = None
    opset: int = 18
    quick: bool = False
    tf32: bool = True
    argv: list[str] | None = None
    model_dir: Path | None = None
    kernels: str | None = None  # the sessions' `kernels` setting; None = the runtime's default
    files: dict = field(default_factory=dict)  # model name -> FileModel, for ONNX files given by path
    shapes: dict = field(default_factory=dict)  # input name -> shape, for files (`--shapes`)
    feeds: dict | None = None  # input name -> array, for files (`--feeds`)


#: (warm-up runs, minimum samples, minimum measured seconds) per (device kind, quick); a row
#: stops at whichever of samples / seconds comes first (`bench.stats.measure`). A CPU always
#: runs quick (its interpreter rows take seconds a run: the 2 s bound stops them); its fast rows
#: (torch, onnxruntime, the unfused path: well under a millisecond) still take 100 samples, a
#: few milliseconds, so their medians and ratios are not read off 5 runs.
SAMPLING = {
    ("cuda", False): (10, 1000, 0.5), ("cuda", True): (5, 200, 0.2),
    ("cpu", False): (3, 100, 5.0), ("cpu", True): (1, 100, 2.0),
}
#: Profiled runs per tritonnx row for the host-overhead columns (quick, not quick).
HOST_RUNS = {True: 5, False: 21}


@dataclass(frozen=True)
class FileModel:
    """An ONNX file given by path: its row name, path, float dtype and batch sizes."""

    name: str
    path: Path
    dtype: str
    batches: tuple = (1,)
    source: str = ""  # the --models text that named it
    inputs: tuple = ()  # its feedable inputs' names


def is_file_model(text: str) -> bool:
    """A ``--models`` item that names a file (a path, a name ending in .onnx, or an existing file),
    not a zoo model (where a zoo name is also a file here, the callers take the zoo model)."""
    return text.endswith(".onnx") or "/" in text or "\\" in text or os.path.isfile(text)


@dataclass(frozen=True)
class RowPlan:
    model: str
    config: str
    batch: int
    dtype: str
    provider: str

    @property
    def key(self) -> tuple:
        return (self.model, self.config, self.batch, self.dtype, self.provider)

    def label(self) -> str:
        return f"{self.model} b{self.batch} {self.dtype} {self.provider}"


@dataclass
class BenchResult:
    out: Path
    env: dict
    rows: list[dict]
    not_run: list[str]
    written: dict
    ran: int
    sticky: str | None = None  # a sticky CUDA error stopped the sweep (rows after it not run)


def order_models(requested: list[str], known: list[str], files=()) -> list[str]:
    """'all' -> MODEL_ORDER then the rest of `known`; a list -> validated, in the user's order
    (names in `files` are ONNX files, already checked)."""
    if requested == ["all"]:
        first = [m for m in MODEL_ORDER if m in known]
        return first + [m for m in known if m not in first]
    unknown = [m for m in requested if m not in known and m not in files]
    if unknown:
        raise InvalidArgument(f"unknown model(s) {', '.join(unknown)}: the zoo has {', '.join(known)}")
    return list(dict.fromkeys(requested))


def plan_rows(settings: BenchSettings) -> list[RowPlan]:
    """Every row of the sweep, in the order of work; torch.compile rows last."""
    main = [p for p in settings.providers if p != "torch.compile"]
    late = [p for p in settings.providers if p == "torch.compile"]
    rows = []
    for providers in (main, late):
        for dtype in settings.dtypes:
            for model in settings.models:
                file = settings.files.get(model)
                if file is not None and dtype != settings.dtypes[0]:
                    continue  # a file has one dtype, its own: its rows come once
                for batch in (file.batches if file else settings.batches):
                    for provider in providers:
                        rows.append(RowPlan(model, "file" if file else settings.config, int(batch),
                                            file.dtype if file else dtype, provider))
    return rows


def time_fn(fn: Callable[[], object], device, *, quick: bool, deadline: float | None = None,
            method: str = "cpu-wall") -> Timing:
    """`bench.stats.measure` with this machine's `SAMPLING` (CPU times are labelled `method`)."""
    warmup, min_samples, min_time = SAMPLING[("cuda" if device.type == "cuda" else "cpu", bool(quick))]
    return measure(fn, device, method=method, warmup=warmup, min_samples=min_samples, min_time=min_time,
                   deadline=deadline)


def _sync(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


class RowError(RuntimeError):
    """A failure shared by several rows (an export, a workload), told without a type name."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0][:300] if text else ""
    return first if isinstance(exc, RowError) else f"{type(exc).__name__}: {first}"


def compare(outputs: list, reference: list | None) -> tuple[float | None, str]:
    """Max of `max_rel_err` over the outputs matched by position, and a note on mismatches."""
    if reference is None:
        return None, ""
    errs, notes = [], []
    if len(outputs) != len(reference):
        notes.append(f"{len(outputs)} outputs vs reference's {len(reference)}")
    for i, (out, ref) in enumerate(zip(outputs, reference)):
        if tuple(out.shape) != tuple(ref.shape):
            notes.append(f"output {i} shape {tuple(out.shape)} vs reference {tuple(ref.shape)}")
            continue
        errs.append(max_rel_err(out, ref))
    return (max(errs) if errs else None), "; ".join(notes)


class Harness:
    """Runs a `BenchSettings` sweep into its result folder.

    `zoo` (with ``names()`` and ``get(name)``) and `export_fn` (``export_model``'s signature) are
    the zoo and exporter by default; tests pass small fakes.
    """

    def __init__(self, settings: BenchSettings, *, zoo=None, export_fn=None, device=None,
                 progress: bool = True, log=None):
        import torch

        self.s = settings
        if zoo is None:
            import tritonnx.zoo as zoo
        if export_fn is None:
            from tritonnx.export import export_model as export_fn
        self.zoo = zoo
        self.export_fn = export_fn
        self.device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        self.device_name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        self.progress = progress
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        self.out = Path(settings.out)
        self.model_dir = Path(settings.model_dir) if settings.model_dir else self.out / "models"
        self._exports: dict[tuple, Path | BaseException] = {}
        self._protos: dict[tuple, object] = {}  # (model, dtype) -> onnx.ModelProto, loaded once
        self._modules: dict[str, object] = {}  # model -> its fp32 CPU nn.Module, built once
        self._works: dict[tuple, Workload | BaseException] = {}
        self._refs: dict[tuple, tuple[list | None, str]] = {}
        self._costs: dict[tuple, object] = {}

    # environment --------------------------------------------------------------------------
    def _env(self) -> dict:
        from tritonnx.bench import environment

        return environment.record(self.out, environment.collect(self.s.argv, tf32=self.s.tf32,
                                                                kernels=self.s.kernels, sampling=self._sampling()))

    def _sampling(self) -> dict:
        warmup, min_samples, min_time = SAMPLING[(self.device.type if self.device.type == "cuda" else "cpu",
                                                  bool(self.s.quick))]
        return {"warmup": warmup, "min_samples": min_samples, "min_time_s": min_time,
                "rule": "each row stops at min_samples samples or min_time_s seconds measured, whichever "
                        "first; every sample kept; pXX reported when n >= 100/min(XX, 100-XX)"}

    # per model / dtype / batch ------------------------------------------------------------
    def _export(self, model: str, dtype: str) -> Path:
        if model in self.s.files:
            return self.s.files[model].path
        key = (model, dtype)
        if key not in self._exports:
            from tritonnx.export import file_name

            path = self.model_dir / file_name(model, self.s.config, dtype)
            try:
                if not path.exists():
                    # Export into a side folder, then move: a killed export leaves no half file.
                    partial = self.model_dir / ".partial"
                    partial.mkdir(parents=True, exist_ok=True)
                    self.export_fn(model, partial / path.name, config=self.s.config, dtype=dtype,
                                   opset=self.s.opset, verify=False, seed=self.s.seed)
                    for f in partial.glob(path.name + "*"):  # the model and any external-data file
                        f.replace(self.model_dir / f.name)
                self._exports[key] = path
            except Exception as exc:  # noqa: BLE001 - recorded in every row of this model
                self._exports[key] = exc
        result = self._exports[key]
        if isinstance(result, BaseException):
            raise RowError(f"export failed: {_first_line(result)}") from result
        return result

    def _workload(self, model: str, dtype: str, batch: int) -> Workload:
        key = (model, dtype, batch)
        if key not in self._works:
            try:
                self._works[key] = self._make_workload(model, dtype, batch)
            except Exception as exc:  # noqa: BLE001 - recorded in every row of this workload
                self._works[key] = exc
        result = self._works[key]
        if isinstance(result, BaseException):
            raise result
        return result

    def _proto(self, model: str, dtype: str):
        """The exported file of (model, dtype), parsed once for its inputs and the cost count."""
        key = (model, dtype)
        if key not in self._protos:
            import onnx

            self._protos[key] = onnx.load(str(self._export(model, dtype)), load_external_data=False)
        return self._protos[key]

    def _make_workload(self, model: str, dtype: str, batch: int) -> Workload:
        from tritonnx.bench.providers import torch_dtype
        from tritonnx.runtime.dtypes import ONNX_TO_TORCH

        if model in self.s.files:
            return self._file_workload(self.s.files[model], batch)
        path = self._export(model, dtype)
        entry = self.zoo.get(model)
        inputs = list(entry.example_inputs(self.s.config, batch=batch, seq_len=self.s.seq_len, seed=self.s.seed))
        graph = self._proto(model, dtype).graph
        init = {i.name for i in graph.initializer}
        graph_inputs = [vi for vi in graph.input if vi.name not in init]
        if len(graph_inputs) != len(inputs):
            raise InvalidArgument(
                f"{model}: the ONNX file has {len(graph_inputs)} inputs, example_inputs gave {len(inputs)}"
            )
        names, feeds = [], []
        float_dtype = torch_dtype(dtype)
        for vi, x in zip(graph_inputs, inputs):
            names.append(vi.name)
            want = ONNX_TO_TORCH.get(vi.type.tensor_type.elem_type)
            if want is None:
                want = float_dtype if x.is_floating_point() else x.dtype
            feeds.append(x.to(device=self.device, dtype=want).contiguous())
        return Workload(
            model=model, config=self.s.config, dtype=dtype, batch=batch, onnx_path=path,
            build_module=lambda: self._module(model), input_names=names, inputs=feeds,
            device=self.device, seq_len=self.s.seq_len,
            options=self._session_options(),
        )

    def _file_workload(self, file: FileModel, batch: int) -> Workload:
        """Feeds for an ONNX file: `--feeds`, else random of the right dtype, range and shape."""
        from tritonnx.bench.feeds import random_feeds
        from tritonnx.runtime import dtypes

        shapes = {k: v for k, v in self.s.shapes.items() if k in file.inputs}  # --shapes covers every file
        feeds, _ = random_feeds(self._proto(file.name, file.dtype), shapes=shapes, batch=batch,
                                seed=self.s.seed, given=self.s.feeds)
        tensors = [dtypes.from_numpy(v).to(self.device) for v in feeds.values()]

        def no_module():
            raise RowError("an ONNX file has no torch module")

        return Workload(
            model=file.name, config="file", dtype=file.dtype, batch=batch, onnx_path=file.path,
            build_module=no_module, input_names=list(feeds), inputs=tensors, device=self.device,
            options=self._session_options(),
        )

    def _module(self, model: str):
        """A fresh copy of the model's torch module (fp32, CPU, the exported weights): built
        (random init, seconds for the paper configs) once per model, not once per torch row.
        A copy, because a provider moves and casts its module in place (`nn.Module.to`)."""
        if model not in self._modules:
            self._modules[model] = self.zoo.get(model).build(self.s.config, seed=self.s.seed)
        return copy.deepcopy(self._modules[model])

    def _session_options(self) -> dict:
        options = {} if self.s.tf32 else {"tf32": False}
        if self.s.kernels:
            options["kernels"] = self.s.kernels
        return options

    def _reference(self, work: Workload) -> tuple[list | None, str]:
        """onnxruntime's outputs for the workload (CUDA provider when there is one, else CPU);
        fp16 falls back to the fp32 file when onnxruntime cannot run the fp16 one."""
        key = (work.model, work.dtype, work.batch)
        if key in self._refs:
            return self._refs[key]
        from tritonnx.bench.ort import OrtRunner

        result: tuple[list | None, str] = (None, "no reference")
        try:
            feeds = work.feeds
            if self.device.type == "cuda":
                try:
                    runner = OrtRunner(work.onnx_path, feeds, cuda_graph=False, exhaustive=False)
                except RuntimeError:
                    feeds = {k: v.cpu() for k, v in feeds.items()}
                    runner = OrtRunner(work.onnx_path, feeds)
            else:
                runner = OrtRunner(work.onnx_path, feeds)
            outs = [o.detach().cpu().clone() for o in runner()]
            result = (outs, f"onnxruntime {runner.provider} {work.dtype}")
            del runner
        except Exception as exc:  # noqa: BLE001 - try fp32, else rows say why
            if work.dtype != "fp32" and work.model not in self.s.files:
                try:
                    path32 = self._export(work.model, "fp32")
                    feeds = {k: (v.float() if v.is_floating_point() else v).cpu() for k, v in work.feeds.items()}
                    runner = OrtRunner(path32, feeds)
                    outs = [o.detach().cpu().clone() for o in runner()]
                    result = (outs, f"onnxruntime {runner.provider} fp32 (fp16 failed: {_first_line(exc)[:80]})")
                except Exception as exc32:  # noqa: BLE001
                    result = (None, f"no reference: {_first_line(exc32)}")
            else:
                result = (None, f"no reference: {_first_line(exc)}")
        self._refs[key] = result
        return result

    def _cost(self, work: Workload):
        key = (work.model, work.dtype, work.batch)
        if key not in self._costs:
            try:
                from tritonnx.bench.counting import count

                self._costs[key] = count(self._proto(work.model, work.dtype),
                                         {n: list(x.shape) for n, x in zip(work.input_names, work.inputs)})
            except Exception:  # noqa: BLE001 - no roofline then
                self._costs[key] = None
        return self._costs[key]

    # one row --------------------------------------------------------------------------------
    def new_row(self, plan: RowPlan) -> dict:
        """A row of `plan` with nothing measured yet (status "ok")."""
        return {
            "model": plan.model, "config": plan.config, "batch": plan.batch, "dtype": plan.dtype,
            "provider": plan.provider, "status": "ok", "note": "", "device": self.device_name,
            "median_ms": None, "p20_ms": None, "p80_ms": None, "p90_ms": None, "p99_ms": None,
            "min_ms": None, "max_ms": None, "mean_ms": None, "n": None, "measured_s": None, "outliers": None,
            "samples_ms": None, "timing": None,
            "max_rel_err": None, "reference": None, "peak_mem_mib": None, "compile_cold_s": None,
            "compile_warm_s": None, **dict.fromkeys(HOST_KEYS), "flops": None, "bytes": None, "roofline": None, "input_shapes": None,
            # tf32 is a GPU setting: a CPU row makes no claim about it
            "tf32": self.s.tf32 if self.device.type == "cuda" else None,
            "source": str(self.s.files[plan.model].path) if plan.model in self.s.files else "zoo",
        }

    def run_row(self, plan: RowPlan, deadline: float | None = None) -> dict:
        row = self.new_row(plan)
        provider = make_provider(plan.provider)
        reason = provider.missing(self.device)
        if not reason and plan.model in self.s.files and plan.provider in ("torch", "torch.compile"):
            reason = "not available: an ONNX file has no torch module (torch rows need a zoo model)"
        if reason:
            row.update(status="missing", note=reason)
            return row
        try:
            work = self._workload(plan.model, plan.dtype, plan.batch)
        except Exception as exc:  # noqa: BLE001 - the row says it
            row.update(status="error", note=_first_line(exc))
            return row
        row["input_shapes"] = {n: list(x.shape) for n, x in zip(work.input_names, work.inputs)}
        cost = self._cost(work)
        if cost is not None:
            row["flops"], row["bytes"] = cost.flops, cost.bytes
        with timing_stream(self.device):  # one non-default stream: onnxruntime's and the timing's
            return self._measure_row(row, plan, provider, work, cost, deadline)

    def _measure_row(self, row: dict, plan: RowPlan, provider, work: Workload, cost, deadline) -> dict:
        reference, ref_note = self._reference(work)
        row["reference"] = ref_note
        fn = None
        try:
            fn, row["compile_cold_s"], mem = self._prepare(provider, work)
            row["peak_mem_mib"] = mem()  # before a second session exists
            if self.device.type == "cuda":
                fn2, row["compile_warm_s"], _ = self._prepare(make_provider(plan.provider), work)
                del fn2
            facts = provider.facts()
            row.update(facts)
            timing = time_fn(fn, self.device, quick=self.s.quick, deadline=deadline,
                             method="cpu-interpreter" if facts.get("interpreter") else "cpu-wall")
            row.update(timing.as_row())
            row.update(provider.host_overhead(HOST_RUNS[bool(self.s.quick)]))
            outputs = [o.detach().cpu() for o in fn()]
            _sync(self.device)
            err, cmp_note = compare(outputs, reference)
            row["max_rel_err"] = err
            row["note"] = "; ".join(x for x in (provider.note(), cmp_note) if x)
            row["roofline"] = devices.roofline_fraction(
                row["flops"], row["bytes"], row["median_ms"], plan.dtype,
                device_name=self.device_name, tf32=self.s.tf32,
            ) if self.device.type == "cuda" else None
        except Exception as exc:  # noqa: BLE001 - a failing provider is a visible row, the sweep goes on
            row.update(status="error", note=_first_line(exc), traceback=traceback.format_exc(limit=8))
        finally:
            del fn
            self._free()
        return row

    def _prepare(self, provider, work: Workload):
        """(run fn, seconds to create + first run, peak-memory reader in MiB or None)."""
        import torch

        on_cuda = self.device.type == "cuda"
        if on_cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            base_alloc = torch.cuda.memory_allocated(self.device)
            free_before = torch.cuda.mem_get_info(self.device)[0]
        t0 = time.perf_counter()
        fn = provider.prepare(work)
        fn()
        _sync(self.device)
        seconds = time.perf_counter() - t0

        def mem():
            if not on_cuda:
                return None
            if provider.memory == "device":
                return (free_before - torch.cuda.mem_get_info(self.device)[0]) / 2**20
            return (torch.cuda.max_memory_allocated(self.device) - base_alloc) / 2**20

        return fn, seconds, mem

    def _forget_other_workloads(self, model: str, dtype: str) -> None:
        """Drop feeds, references and parsed files of other (model, dtype) pairs: memory stays flat."""
        for cache in (self._works, self._refs, self._protos):
            for key in [k for k in cache if k[:2] != (model, dtype)]:
                del cache[key]
        for key in [k for k in self._modules if k != model]:
            del self._modules[key]

    def _cuda_broken(self) -> str | None:
        """The error a broken (sticky) CUDA context raises now, or None (`kernels.cuda_broken`)."""
        if self.device.type != "cuda":
            return None
        from tritonnx.bench.kernels import cuda_broken

        return cuda_broken()

    def _free(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    # the sweep ------------------------------------------------------------------------------
    def run(self) -> BenchResult:
        env = self._env()
        # A "missing" provider may be there now (e.g. onnxruntime-gpu installed since): retried.
        done = {report.row_key(r) for r in report.load_rows(self.out) if r.get("status") != "missing"}
        plans = plan_rows(self.s)
        # The row a killed run was in (time cap, Ctrl-C, or a kill after a hang): tried once
        # more first, then recorded as an error so that a row that hangs cannot take every call.
        marker = self.out / INFLIGHT_FILE
        stale = _read_marker(marker)
        if stale is not None and (stale["key"] in done or stale["attempts"] >= MAX_ATTEMPTS):
            plan = next((p for p in plans if p.key == stale["key"]), None)
            if plan is not None and plan.key not in done:
                row = self.new_row(plan)
                row.update(status="error", time_utc=_utc(),
                           note=f"killed while running, {stale['attempts']} times (a hang or the time cap); "
                                "--resume does not try it again")
                report.append_row(self.out, row)
                done.add(plan.key)
                self.log(f"{plan.label()}: killed while running {stale['attempts']} times: recorded as an error")
            marker.unlink(missing_ok=True)
            stale = None
        pending = [p for p in plans if p.key not in done]
        skipped = len(plans) - len(pending)
        if skipped:
            self.log(f"resuming {self.out}: {skipped} rows already there, {len(pending)} to run")
        start = time.monotonic()
        deadline = start + self.s.time_budget if self.s.time_budget is not None else None
        not_run: list[str] = []
        ran = 0
        bar = report.Progress(len(pending), "row", enabled=self.progress, log=self.log)
        interrupted = False
        sticky = None
        i = 0
        try:
            for i, plan in enumerate(pending):
                if deadline is not None and time.monotonic() >= deadline:
                    not_run = [p.label() for p in pending[i:]]
                    break
                bar.start(plan.label())
                self._forget_other_workloads(plan.model, plan.dtype)
                attempts = stale["attempts"] + 1 if stale is not None and stale["key"] == plan.key else 1
                self.out.mkdir(parents=True, exist_ok=True)
                marker.write_text(json.dumps({"key": list(plan.key), "attempts": attempts}))
                row = self.run_row(plan, deadline)
                row["time_utc"] = _utc()
                sticky = self._cuda_broken() if row["status"] == "error" else None
                if sticky:  # every later row would fail the same way: stop, a fresh process resumes
                    row["note"] += f"; sticky CUDA error after this row ({sticky})"
                report.append_row(self.out, row)
                marker.unlink(missing_ok=True)
                ran += 1
                bar.done(plan.label(), report.row_result(row))
                if sticky:
                    not_run = [p.label() for p in pending[i + 1:]]
                    break
        except KeyboardInterrupt:  # Ctrl-C, or `timeout -s INT`: keep what finished, write the files
            interrupted = True
            not_run = [p.label() for p in pending[i:]]
        finally:
            bar.close()
        if not_run:
            why = ("interrupted" if interrupted else f"sticky CUDA error ({sticky})" if sticky
                   else f"time budget of {self.s.time_budget:g} s spent")
            self.log(f"{why}: {len(not_run)} rows not run (run again with --resume {self.out}):")
            for label in not_run:
                self.log(f"  not run: {label}")
        rows = report.load_rows(self.out)
        from tritonnx.bench import environment

        env = environment.record_effective(self.out, rows)
        kernel_rows = report.load_rows(self.out, report.KERNELS_FILE)
        written = report.write_all(self.out, env, rows, not_run, kernel_rows=kernel_rows)
        if interrupted:
            raise KeyboardInterrupt
        return BenchResult(self.out, env, report.derive(rows), not_run, written, ran, sticky)


#: The row being run, written before it starts and removed once it is recorded.
INFLIGHT_FILE = "inflight.json"
#: Runs of one row that a kill may interrupt before the row is recorded as an error.
MAX_ATTEMPTS = 2


def _read_marker(path: Path) -> dict | None:
    """The in-flight marker as {"key": tuple, "attempts": int}, or None (absent, unreadable)."""
    try:
        data = json.loads(path.read_text())
        return {"key": tuple(data["key"]), "attempts": int(data.get("attempts", 1))}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _utc() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
