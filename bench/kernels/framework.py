"""The kernel benchmarks' machinery (the family contract is `tritonnx.bench.kernels`' docstring):
rows, timing, budgets, onnxruntime runs, sticky-CUDA-error handling, running the families."""
from __future__ import annotations

import importlib
import inspect
import time
from typing import Callable

from tritonnx.bench.devices import canonical_dtype, current_device_name, roofline_fraction
from tritonnx.bench.stats import max_rel_err

#: Kernel families `tritonnx bench --kernel-bench` knows, in run order.
FAMILIES = ("conv", "rnn")

#: The keys of one kernel-benchmark row, in table order.
ROW_KEYS = (
    "family", "case", "dtype", "batch", "provider",
    "median_ms", "p20_ms", "p80_ms", "max_rel_err", "flops", "bytes", "note",
)

PROVIDERS = ("tritonnx", "torch", "onnxruntime")

#: The exit status of a bench process that stopped on a sticky CUDA error (bench/on_gpu.sh
#: resumes it in a fresh process).
STICKY_EXIT = 75


class StickyCudaError(RuntimeError):
    """The CUDA context is broken (every later launch would fail): exit and resume elsewhere."""


def cuda_broken() -> str | None:
    """None while the CUDA context works (or there is none), else the error it now raises
    (after an illegal address or a device-side assert every CUDA call fails the same way)."""
    import torch

    if not torch.cuda.is_available():
        return None
    try:
        torch.cuda.synchronize()
        (torch.ones(1, device="cuda") + 1).cpu()
    except Exception as exc:  # noqa: BLE001 - RuntimeError or torch.AcceleratorError, by version
        text = str(exc).strip().splitlines()
        return f"{type(exc).__name__}: {text[0] if text else ''}"
    return None


def finish_block(block_rows: list[dict], rows: list[dict], emit: Callable[[list[dict]], None] | None) -> None:
    """Add one block's rows to `rows`, hand them to `emit`, and raise `StickyCudaError` when a
    failed row left the CUDA context broken."""
    rows.extend(block_rows)
    if emit is not None:
        emit(block_rows)
    if any(r["median_ms"] is None for r in block_rows):
        broken = cuda_broken()
        if broken:
            raise StickyCudaError(f"{block_rows[0]['family']} {block_rows[0]['case']}: sticky CUDA error after this "
                                  f"block ({broken})")


def require_cuda() -> None:
    """Raise ``RuntimeError("needs a CUDA device")`` unless torch sees a CUDA device."""
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("needs a CUDA device")


def time_cuda(fn: Callable[[], object], *, warmup: int = 25, rep: int = 100) -> tuple[float, float, float]:
    """(median_ms, p20_ms, p80_ms) of `fn` timed on the device by `triton.testing.do_bench`."""
    import triton.testing

    median, p20, p80 = triton.testing.do_bench(fn, warmup=warmup, rep=rep, quantiles=[0.5, 0.2, 0.8])
    return float(median), float(p20), float(p80)


class Budget:
    """Seconds left of a time budget: ``if budget.spent(): break`` before each new case."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.start = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def spent(self) -> bool:
        return self.seconds is not None and self.elapsed() >= self.seconds


def make_row(
    *,
    family: str,
    case: str,
    dtype: str,
    batch: int,
    provider: str,
    timing: tuple[float, float, float] | None = None,
    max_rel_err: float | None = None,
    flops: float | None = None,
    bytes: float | None = None,  # noqa: A002 - the contract's key
    note: str = "",
) -> dict:
    """One contract row. `timing` is `time_cuda`'s triple, or None for a provider that did not run.

    Raises:
        ValueError: unknown provider.
    """
    if provider not in PROVIDERS:
        raise ValueError(f"row provider must be one of {PROVIDERS}, got {provider!r}")
    median, p20, p80 = timing if timing is not None else (None, None, None)
    return {
        "family": family, "case": case, "dtype": canonical_dtype(dtype), "batch": int(batch),
        "provider": provider, "median_ms": median, "p20_ms": p20, "p80_ms": p80,
        "max_rel_err": max_rel_err, "flops": flops, "bytes": bytes, "note": note,
    }


def onnxruntime_runner(model, feeds: dict, **kwargs):
    """onnxruntime on the CUDA execution provider at its best, fed torch tensors in place.

    Args:
        model: an `onnx.ModelProto`, its serialized bytes, or a path.
        feeds: input name -> torch tensor (on the CUDA device for the CUDA provider).
        kwargs: passed to `tritonnx.bench.ort.OrtRunner` (e.g. ``cuda_graph=False``).
    Returns:
        An `OrtRunner`: call ``runner()`` to run (what to time), ``runner.outputs`` holds the
        output torch tensors, ``runner.note`` what was (not) enabled. Raises `RuntimeError`
        naming the missing piece when onnxruntime-gpu is not installed.
    """
    from tritonnx.bench.ort import OrtRunner

    return OrtRunner(model, feeds, **kwargs)


def _timing_stream():
    import contextlib

    import torch

    from tritonnx.bench.ort import timing_stream

    return timing_stream(torch.device("cuda")) if torch.cuda.is_available() else contextlib.nullcontext()


def load_family(name: str):
    """The module `tritonnx.bench.kernels.<name>`, or raise ImportError naming what is missing."""
    if name not in FAMILIES:
        raise ValueError(f"unknown kernel family {name!r}: expected one of {', '.join(FAMILIES)}")
    return importlib.import_module(f"tritonnx.bench.kernels.{name}")


def run_families(
    families: list[str], *, dtypes: list[str], quick: bool, time_budget: float | None = None,
    on_row: Callable[[dict], None] | None = None, done: frozenset = frozenset(),
    partial: list[str] | None = None,
) -> tuple[list[dict], list[str]]:
    """Run each family's `benchmark` and add "roofline" and "device" to its rows.

    Args:
        on_row: called with each finished row (device and roofline added) as soon as its block
            is measured, when the family emits per block (else when the family returns).
        done: (family, case, dtype, batch) of blocks already recorded, skipped by the families.
        partial: filled with the families that stopped on the time budget before their end.
    Returns (rows, messages): a family that is missing or needs a GPU gives a message line
    ("conv: skipped: no GPU"), never an exception. `StickyCudaError` and KeyboardInterrupt
    propagate (the rows emitted before them were handed to `on_row`).
    """
    budget = Budget(time_budget)
    rows: list[dict] = []
    messages: list[str] = []
    device = current_device_name()

    def finish(family: str, row: dict) -> dict:
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"kernel bench {family!r} row lacks keys {missing}: {row}")
        row = dict(row)
        row["device"] = device
        row["roofline"] = roofline_fraction(
            row["flops"], row["bytes"], row["median_ms"], row["dtype"], device_name=device
        )
        return row

    for family in families:
        if budget.spent():
            messages.append(f"{family}: not run: time budget spent")
            if partial is not None:
                partial.append(family)
            continue
        try:
            module = load_family(family)
        except ImportError as exc:
            messages.append(f"{family}: not available: {exc}")
            continue
        left = None if time_budget is None else max(time_budget - budget.elapsed(), 0.0)
        family_budget = Budget(left)
        params = inspect.signature(module.benchmark).parameters
        extra, emitted = {}, []
        if "done" in params:
            extra["done"] = frozenset(k[1:] for k in done if k[0] == family)
        if "emit" in params:
            def emit(block_rows, family=family):
                for row in block_rows:
                    row = finish(family, row)
                    emitted.append(row)
                    if on_row is not None:
                        on_row(row)
            extra["emit"] = emit
        try:
            with _timing_stream():  # onnxruntime's compute stream, and the one timed on
                family_rows = module.benchmark(dtypes=list(dtypes), quick=quick, time_budget=left, **extra)
        except RuntimeError as exc:
            if "needs a CUDA device" in str(exc):
                messages.append(f"{family}: skipped: no GPU")
                continue
            raise
        if "emit" in params:
            rows += emitted
        else:
            for row in family_rows:
                row = finish(family, row)
                rows.append(row)
                if on_row is not None:
                    on_row(row)
        stopped = family_budget.spent()
        if stopped and partial is not None:
            partial.append(family)
        messages.append(f"{family}: {len(family_rows)} rows" + ("; partial: time budget spent" if stopped else ""))
    return rows, messages
