"""Statistics of timing samples and agreement figures, shared by `tritonnx bench` and `tritonnx run`.

How a latency is measured (`measure`) and what is reported of it (`Timing`), the same rules
for every row and every verb:

- Warm-up runs first (not counted), then timed runs until the row has `min_samples` samples
  or `min_time` seconds of measured time, whichever comes first (both are stated with the
  row: its ``n`` and its ``measured_s``), or a deadline passes.
- Each sample is one run: CUDA events around it on a GPU (device time; no cache flush between
  runs, as in serving and trtexec), the host's wall clock (``time.perf_counter``) on a CPU.
- Every sample is kept. Nothing is dropped as an outlier; samples beyond Tukey's far fence
  (above Q3 + 3·IQR or below Q1 − 3·IQR) are counted in ``outliers`` so a noisy row shows it.
- The median, min, max and mean are always reported. A percentile pXX other than the median
  is reported only when ``n >= 100 / min(XX, 100 - XX)`` (p90 needs 10 samples, p99 needs
  100, p20 and p80 need 5): with fewer, that percentile would be an interpolation between the
  two most extreme samples, not a measurement. `percentile_min_n` is the rule.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

#: The timing labels a row can carry (its ``timing`` column), and what each means.
TIMING_LABELS = {
    "cuda-events": "device time from CUDA events",
    "cpu-wall": "CPU wall clock (indicative only, not a performance figure)",
    "cpu-interpreter": "CPU wall clock with Triton kernels under Triton's interpreter (not a performance figure)",
}


def quantile(samples: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default, and torch.quantile's) of `samples`, q in [0, 1]."""
    if not samples:
        raise ValueError("quantile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile q must be in [0, 1], got {q}")
    xs = sorted(float(x) for x in samples)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def percentile_min_n(q: float) -> int:
    """The fewest samples for which quantile `q` is reported (1 for the median).

    ``ceil(1 / min(q, 1 - q))``, up to rounding: p90 -> 10, p99 -> 100, p20/p80 -> 5.
    """
    if q == 0.5:
        return 1
    tail = min(q, 1.0 - q)
    if tail <= 0:
        return 1
    return math.ceil(round(1.0 / tail, 9))


def supported_quantile(samples: Sequence[float], q: float) -> float | None:
    """`quantile(samples, q)` when ``len(samples)`` supports it (`percentile_min_n`), else None."""
    if not samples or len(samples) < percentile_min_n(q):
        return None
    return quantile(samples, q)


def count_outliers(samples: Sequence[float]) -> int:
    """Samples beyond Tukey's far fences (Q1 - 3 IQR, Q3 + 3 IQR); 0 below 4 samples."""
    if len(samples) < 4:
        return 0
    q1, q3 = quantile(samples, 0.25), quantile(samples, 0.75)
    iqr = q3 - q1
    lo, hi = q1 - 3 * iqr, q3 + 3 * iqr
    return sum(1 for x in samples if x < lo or x > hi)


@dataclass(frozen=True)
class Timing:
    """The statistics of one timed run, in milliseconds (see the module's rules).

    `method` says how it was taken: "cuda-events" (device-side), "cpu-wall" (host wall
    clock), or "cpu-interpreter" (host wall clock of Triton kernels under the interpreter).
    Percentiles the sample count does not support are None.
    """

    median_ms: float
    samples_ms: tuple[float, ...]
    method: str
    measured_s: float = 0.0
    warmup: int = 0
    stop: str = ""  # why sampling stopped: "samples", "time" or "deadline"
    rule: dict = field(default_factory=dict)

    @classmethod
    def from_samples(cls, samples_ms: Iterable[float], method: str, **kw) -> "Timing":
        xs = tuple(float(x) for x in samples_ms)
        if not xs:
            raise ValueError("a timing needs at least one sample")
        kw.setdefault("measured_s", sum(xs) / 1e3)
        return cls(quantile(xs, 0.5), xs, method, **kw)

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    def percentile(self, q: float) -> float | None:
        return supported_quantile(self.samples_ms, q)

    @property
    def p20_ms(self) -> float | None:
        return self.percentile(0.2)

    @property
    def p80_ms(self) -> float | None:
        return self.percentile(0.8)

    @property
    def p90_ms(self) -> float | None:
        return self.percentile(0.9)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile(0.99)

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms)

    @property
    def max_ms(self) -> float:
        return max(self.samples_ms)

    @property
    def mean_ms(self) -> float:
        return sum(self.samples_ms) / len(self.samples_ms)

    @property
    def outliers(self) -> int:
        return count_outliers(self.samples_ms)

    def as_row(self) -> dict:
        """The row columns of this timing (raw samples included; every sample kept)."""
        return {
            "median_ms": self.median_ms, "p20_ms": self.p20_ms, "p80_ms": self.p80_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
            "min_ms": self.min_ms, "max_ms": self.max_ms, "mean_ms": self.mean_ms, "n": self.n,
            "measured_s": self.measured_s, "warmup": self.warmup, "stop": self.stop,
            "outliers": self.outliers, "timing": self.method, "samples_ms": list(self.samples_ms),
            "sampling": dict(self.rule),
        }


def measure(fn: Callable[[], object], device=None, *, method: str | None = None, warmup: int = 3,
            min_samples: int = 100, min_time: float = 3.0, deadline: float | None = None) -> Timing:
    """Time `fn` by the module's rules: `warmup` runs, then samples until `min_samples` samples
    or `min_time` seconds measured, whichever first (or `deadline`, a ``time.monotonic()`` value).

    Args:
        fn: runs the model once (its outputs are not used).
        device: a ``torch.device``; CUDA events on ``cuda``, the wall clock otherwise.
        method: the label for CPU timings ("cpu-wall" or "cpu-interpreter"); CUDA is "cuda-events".
    """
    if min_samples < 1 or not min_time > 0:
        raise ValueError(f"measure needs min_samples >= 1 and min_time > 0, got {min_samples}, {min_time}")
    on_cuda = getattr(device, "type", None) == "cuda"
    rule = {"warmup": warmup, "min_samples": min_samples, "min_time_s": min_time}
    if on_cuda:
        import torch

        for _ in range(warmup):
            fn()
        torch.cuda.synchronize(device)
        pairs, measured, stop = [], 0.0, "samples"
        while len(pairs) < min_samples:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            pairs.append((start, end))
            if len(pairs) % 10 == 0 or len(pairs) == min_samples:  # sync now and then to know the time
                end.synchronize()
                measured = sum(s.elapsed_time(e) for s, e in pairs) / 1e3
                if measured >= min_time:
                    stop = "time"
                    break
            if deadline is not None and time.monotonic() > deadline:
                stop = "deadline"
                break
        torch.cuda.synchronize(device)
        samples = [s.elapsed_time(e) for s, e in pairs]
        return Timing.from_samples(samples, "cuda-events", warmup=warmup, stop=stop, rule=rule)
    for _ in range(warmup):
        fn()
    samples, measured, stop = [], 0.0, "samples"
    while len(samples) < min_samples:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        samples.append(dt * 1e3)
        measured += dt
        if measured >= min_time:
            stop = "time"
            break
        if deadline is not None and time.monotonic() > deadline:
            stop = "deadline"
            break
    return Timing.from_samples(samples, method or "cpu-wall", warmup=warmup, stop=stop, rule=rule,
                               measured_s=measured)


def geomean(values: Iterable[float]) -> float | None:
    """Geometric mean of the positive finite values, or None when there are none."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if not xs:
        return None
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def max_rel_err(out, ref) -> float:
    """Largest absolute difference scaled by the reference's largest magnitude.

    ``max|out - ref| / max|ref|``, computed in float64 on the CPU. Element-wise relative error
    is meaningless where the reference crosses zero, so every row and every kernel benchmark
    uses this one scaled figure. Accepts torch tensors or numpy arrays of the same shape;
    a NaN or Inf anywhere gives ``inf``.

    Raises:
        ValueError: shapes differ.
    """
    import numpy as np

    a = _to_f64(out)
    b = _to_f64(ref)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: output {tuple(a.shape)} vs reference {tuple(b.shape)}")
    if a.size == 0:
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    scale = float(np.abs(b).max())
    diff = float(np.abs(a - b).max())
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


def _to_f64(x):
    import numpy as np

    if hasattr(x, "detach"):  # torch.Tensor
        return x.detach().to("cpu").double().numpy()
    return np.asarray(x, dtype=np.float64)
