"""Window functions: HannWindow, HammingWindow, BlackmanWindow (opset 17)."""
from __future__ import annotations

import math

import torch

from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import scalar
from tritonnx.runtime.registry import register


def _window(size, output_datatype, periodic, coeffs, ctx):
    n = int(scalar(size))
    denom = n if periodic else n - 1
    dev = getattr(ctx, "device", None) or (size.device if isinstance(size, torch.Tensor) else "cpu")
    k = torch.arange(n, dtype=torch.float64, device=dev)
    w = torch.zeros_like(k)
    for i, c in enumerate(coeffs):
        w = w + c * torch.cos(2 * math.pi * i * k / denom) * (-1) ** i if denom else w + c
    return w.to(dtypes.torch_dtype(output_datatype))


@register("HannWindow", since=17)
def HannWindow(size, *, output_datatype=1, periodic=1, ctx=None):
    """ONNX HannWindow: 0.5 - 0.5 cos(2 pi n / N) (N = size if periodic, else size - 1)."""
    return _window(size, output_datatype, periodic, (0.5, 0.5), ctx)


@register("HammingWindow", since=17)
def HammingWindow(size, *, output_datatype=1, periodic=1, ctx=None):
    """ONNX HammingWindow: 25/46 - 21/46 cos(2 pi n / N)."""
    return _window(size, output_datatype, periodic, (25 / 46, 21 / 46), ctx)


@register("BlackmanWindow", since=17)
def BlackmanWindow(size, *, output_datatype=1, periodic=1, ctx=None):
    """ONNX BlackmanWindow: 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)."""
    return _window(size, output_datatype, periodic, (0.42, 0.5, 0.08), ctx)
