"""Statistics of timing samples and agreement figures, shared by model and kernel benchmarks."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence


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


@dataclass(frozen=True)
class Timing:
    """Median and spread of one timed run, in milliseconds.

    `method` says how it was taken: "cuda-events" (device-side, `triton.testing.do_bench`) or
    "cpu-wall" (host wall clock; a CPU-interpreter time, never a performance figure).
    """

    median_ms: float
    p20_ms: float
    p80_ms: float
    samples_ms: tuple[float, ...]
    method: str

    @classmethod
    def from_samples(cls, samples_ms: Iterable[float], method: str) -> "Timing":
        xs = tuple(float(x) for x in samples_ms)
        return cls(quantile(xs, 0.5), quantile(xs, 0.2), quantile(xs, 0.8), xs, method)


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
