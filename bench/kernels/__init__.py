"""Kernel benchmarks: one module per kernel family, run by ``tritonnx bench --kernels conv,rnn``.

Contract (every family module ``bench/kernels/<family>.py``, e.g. ``conv.py``, ``rnn.py``)::

    def benchmark(*, dtypes: list[str], quick: bool, time_budget: float | None = None) -> list[dict]

- `dtypes`: canonical names ("fp32", "fp16", "bf16"); run those, in that order.
- `quick`: a few representative cases only (seconds, for a smoke run); False = the full sweep.
- `time_budget`: seconds; stop starting new cases once it is spent (use `Budget`) and return
  what was measured. None = no limit.
- Returns one dict per row with exactly the keys of `ROW_KEYS` (build it with `make_row`):
  "family", "case", "dtype", "batch", "provider" ("tritonnx" | "torch" | "onnxruntime"),
  "median_ms", "p20_ms", "p80_ms", "max_rel_err" (`max_rel_err(out, ref)`: vs the float64
  reference), "flops", "bytes" (minimal traffic), "note" (free text: why a provider is
  missing, the config chosen, ...). A provider that cannot run is a row with None timings
  and the reason in "note", never a silent omission.
- Runs on CUDA only: call `require_cuda()` first (raises ``RuntimeError("needs a CUDA device")``).
- Times with `time_cuda(fn)` (``triton.testing.do_bench(fn, quantiles=[0.5, 0.2, 0.8])``,
  device-side), inputs already on the device; onnxruntime through `onnxruntime_runner`
  (IOBinding on torch tensors, CUDA execution provider at its best).

The harness adds the "roofline" fraction per row from `flops`, `bytes` and `bench.devices`.
"""
from __future__ import annotations

import importlib
import time
from typing import Callable

from tritonnx.bench.devices import canonical_dtype, current_device_name, roofline_fraction
from tritonnx.bench.stats import max_rel_err

#: Kernel families `tritonnx bench --kernels` knows, in run order.
FAMILIES = ("conv", "rnn")

#: The keys of one kernel-benchmark row, in table order.
ROW_KEYS = (
    "family", "case", "dtype", "batch", "provider",
    "median_ms", "p20_ms", "p80_ms", "max_rel_err", "flops", "bytes", "note",
)

PROVIDERS = ("tritonnx", "torch", "onnxruntime")

__all__ = [
    "FAMILIES", "ROW_KEYS", "PROVIDERS", "Budget", "make_row", "require_cuda", "time_cuda",
    "max_rel_err", "onnxruntime_runner", "load_family", "run_families",
]


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


def load_family(name: str):
    """The module `tritonnx.bench.kernels.<name>`, or raise ImportError naming what is missing."""
    if name not in FAMILIES:
        raise ValueError(f"unknown kernel family {name!r}: expected one of {', '.join(FAMILIES)}")
    return importlib.import_module(f"tritonnx.bench.kernels.{name}")


def run_families(
    families: list[str], *, dtypes: list[str], quick: bool, time_budget: float | None = None
) -> tuple[list[dict], list[str]]:
    """Run each family's `benchmark` and add "roofline" and "device" to its rows.

    Returns (rows, messages): a family that is missing or needs a GPU gives a message line
    ("conv: skipped: no GPU"), never an exception.
    """
    budget = Budget(time_budget)
    rows: list[dict] = []
    messages: list[str] = []
    device = current_device_name()
    for family in families:
        if budget.spent():
            messages.append(f"{family}: not run: time budget spent")
            continue
        try:
            module = load_family(family)
        except ImportError as exc:
            messages.append(f"{family}: not available: {exc}")
            continue
        left = None if time_budget is None else max(time_budget - budget.elapsed(), 0.0)
        try:
            family_rows = module.benchmark(dtypes=list(dtypes), quick=quick, time_budget=left)
        except RuntimeError as exc:
            if "needs a CUDA device" in str(exc):
                messages.append(f"{family}: skipped: no GPU")
                continue
            raise
        for row in family_rows:
            missing = [k for k in ROW_KEYS if k not in row]
            if missing:
                raise ValueError(f"kernel bench {family!r} row lacks keys {missing}: {row}")
            row = dict(row)
            row["device"] = device
            row["roofline"] = roofline_fraction(
                row["flops"], row["bytes"], row["median_ms"], row["dtype"], device_name=device
            )
            rows.append(row)
        messages.append(f"{family}: {len(family_rows)} rows")
    return rows, messages
