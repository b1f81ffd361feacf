"""Kernel benchmarks: one module per kernel family, run by ``tritonnx bench --kernel-bench conv,rnn``.

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

Optional keywords (issue 20, items 2 and 6), passed when `benchmark` accepts them:
- `done`: the (case, dtype, batch) blocks already recorded (a resumed run): skip them;
- `emit(rows)`: call it with each block's rows as soon as the block is measured (use
  `finish_block`): they are written at once, so a family killed later keeps them;
- a block whose failure left the CUDA context broken (a sticky error: illegal address, ...)
  raises `StickyCudaError` after its rows are emitted (`finish_block` checks): the process
  exits and a fresh one resumes after the block.

The harness adds the "roofline" fraction per row from `flops`, `bytes` and `bench.devices`.
"""
from __future__ import annotations

from tritonnx.bench.kernels.framework import (
    Budget, FAMILIES, PROVIDERS, ROW_KEYS, STICKY_EXIT, StickyCudaError, cuda_broken, finish_block,
    load_family, make_row, max_rel_err, onnxruntime_runner, require_cuda, run_families, time_cuda,
)

__all__ = [
    "FAMILIES", "ROW_KEYS", "PROVIDERS", "Budget", "make_row", "require_cuda", "time_cuda",
    "max_rel_err", "onnxruntime_runner", "load_family", "run_families", "finish_block",
    "StickyCudaError", "STICKY_EXIT",
]
