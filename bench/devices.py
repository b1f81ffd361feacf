"""Peak throughput of the GPUs we may meet, for roofline fractions.

One table, keyed by the name torch reports (``torch.cuda.get_device_name()``), matched by a
regular expression because the same card reports itself in several spellings
("NVIDIA H100 80GB HBM3" is the SXM part, "NVIDIA H100 PCIe" the PCIe one). Figures are the
vendors' dense (no sparsity) datasheet peaks, FLOP/s and bytes/s:

- ``fp32``: plain FP32 (CUDA cores); ``tf32``: FP32 matrix products on tensor cores (what an
  fp32 row uses when tf32 is allowed); ``fp16`` / ``bf16``: tensor cores, fp32 accumulate.

The roofline fraction of a measured time ``t`` is ``max(flops / peak_flops, bytes / bandwidth) / t``:
1.0 means the run took as long as the slower of the two limits allows. A device missing from
the table gives ``None`` ("no roofline").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tritonnx import dtype_names
from tritonnx.errors import InvalidArgument

TERA = 1e12

#: Accepted dtype spellings -> canonical name: the one table, `tritonnx.dtype_names`.
DTYPE_ALIASES = dtype_names.ALIASES


def canonical_dtype(name: str) -> str:
    """'float16' -> 'fp16'; raises InvalidArgument naming the accepted spellings."""
    return dtype_names.canonical(name)


@dataclass(frozen=True)
class DeviceSpec:
    """Datasheet peaks of one GPU model (dense, no sparsity)."""

    name: str
    fp32_tflops: float
    tf32_tflops: float
    fp16_tflops: float
    bf16_tflops: float
    bandwidth_gbs: float
    source: str = ""

    def peak_flops(self, dtype: str, *, tf32: bool = True) -> float:
        """Peak FLOP/s for matrix products in `dtype` (fp32 uses tf32 when allowed)."""
        dtype = canonical_dtype(dtype)
        if dtype == "fp32":
            tflops = self.tf32_tflops if tf32 and self.tf32_tflops else self.fp32_tflops
        elif dtype == "fp16":
            tflops = self.fp16_tflops
        else:
            tflops = self.bf16_tflops
        return tflops * TERA

    @property
    def bandwidth(self) -> float:
        """Peak memory bandwidth in bytes/s."""
        return self.bandwidth_gbs * 1e9


# (pattern on torch's device name, spec). First match wins: more specific patterns first.
DEVICES: list[tuple[str, DeviceSpec]] = [
    (r"GH200", DeviceSpec("GH200", 67.0, 494.7, 989.4, 989.4, 4000, "NVIDIA GH200 datasheet (96 GB HBM3)")),
    (r"H200", DeviceSpec("H200 SXM", 67.0, 494.7, 989.4, 989.4, 4800, "NVIDIA H200 datasheet")),
    (r"H100.*NVL", DeviceSpec("H100 NVL", 60.0, 417.5, 835.0, 835.0, 3900, "NVIDIA H100 datasheet")),
    (r"H100.*PCIe", DeviceSpec("H100 PCIe", 51.2, 378.0, 756.0, 756.0, 2000, "NVIDIA H100 datasheet")),
    (r"H100", DeviceSpec("H100 SXM", 67.0, 494.7, 989.4, 989.4, 3350, "NVIDIA H100 datasheet")),
    (r"A100.*(80GB|80 GB).*PCIe|A100 80GB PCIe",
     DeviceSpec("A100 PCIe 80GB", 19.5, 156.0, 312.0, 312.0, 1935, "NVIDIA A100 datasheet")),
    (r"A100.*PCIE", DeviceSpec("A100 PCIe 40GB", 19.5, 156.0, 312.0, 312.0, 1555, "NVIDIA A100 datasheet")),
    (r"A100.*80GB", DeviceSpec("A100 SXM 80GB", 19.5, 156.0, 312.0, 312.0, 2039, "NVIDIA A100 datasheet")),
    (r"A100", DeviceSpec("A100 SXM 40GB", 19.5, 156.0, 312.0, 312.0, 1555, "NVIDIA A100 datasheet")),
    (r"L40S", DeviceSpec("L40S", 91.6, 183.0, 362.0, 362.0, 864, "NVIDIA L40S datasheet")),
    (r"L4\b", DeviceSpec("L4", 30.3, 60.0, 121.0, 121.0, 300, "NVIDIA L4 datasheet")),
    (r"A10\b", DeviceSpec("A10", 31.2, 62.5, 125.0, 125.0, 600, "NVIDIA A10 datasheet")),
    (r"T4\b", DeviceSpec("T4", 8.1, 0.0, 65.0, 0.0, 320, "NVIDIA T4 datasheet (no tf32/bf16)")),
]


def lookup(device_name: str | None) -> DeviceSpec | None:
    """The spec for a torch device name, or None when the device is not in the table."""
    if not device_name:
        return None
    for pattern, spec in DEVICES:
        if re.search(pattern, device_name):
            return spec
    return None


def current_device_name() -> str:
    """torch's name of CUDA device 0, or "cpu" when no CUDA device is visible."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "cpu"


def roofline_time_s(flops: float, nbytes: float, spec: DeviceSpec, dtype: str, *, tf32: bool = True) -> float:
    """The shortest time the device allows for `flops` and `nbytes`: the slower of the two limits."""
    peak = spec.peak_flops(dtype, tf32=tf32)
    t_flops = flops / peak if peak > 0 else 0.0
    return max(t_flops, nbytes / spec.bandwidth)


def roofline_fraction(
    flops: float | None,
    nbytes: float | None,
    median_ms: float | None,
    dtype: str,
    *,
    device_name: str | None = None,
    tf32: bool = True,
) -> float | None:
    """Achieved fraction of the roofline (0..1) for one timed run, or None ("no roofline").

    None when the device is unknown (or the CPU), or any figure is missing.
    """
    spec = lookup(device_name if device_name is not None else current_device_name())
    if spec is None or flops is None or nbytes is None or not median_ms or median_ms <= 0:
        return None
    return roofline_time_s(flops, nbytes, spec, dtype, tf32=tf32) / (median_ms * 1e-3)
