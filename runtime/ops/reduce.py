"""Reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin, ReduceProd, ReduceL1, ReduceL2,
ReduceSumSquare, ReduceLogSum, ReduceLogSumExp.

Axes are an attribute up to opset 17 (ReduceSum: 12) and an optional input from 18 (ReduceSum:
13), where ``noop_with_empty_axes=1`` makes absent axes an identity. Reducing an empty axis
gives the operation's identity (0, 1, -inf for max, +inf for min, -inf for the logs).
Integers sum and multiply in int64 and wrap back to their dtype; other integer reductions
compute in float64 and cast back, as onnx's reference does.
"""
from __future__ import annotations

import numpy as np
import torch

from tritonnx.runtime.ops._common import ints, needs_widening, norm_axis, via_numpy
from tritonnx.runtime.registry import register

_INT_EXACT = ("Sum", "SumSquare", "L1", "Prod", "Max", "Min")


def _extreme(x: torch.Tensor, dims, keepdim: bool, is_max: bool) -> torch.Tensor:
    if x.dtype == torch.bool:
        return (x.any if is_max else x.all)(dim=tuple(dims), keepdim=keepdim) if dims else x.clone()
    if any(x.shape[d] == 0 for d in dims):
        shape = [1 if (d in dims) else s for d, s in enumerate(x.shape)] if keepdim else \
            [s for d, s in enumerate(x.shape) if d not in dims]
        if x.dtype.is_floating_point:
            fill = float("-inf") if is_max else float("inf")
        else:
            info = torch.iinfo(x.dtype)
            fill = info.min if is_max else info.max
        return torch.full(shape, fill, dtype=x.dtype, device=x.device)
    return (torch.amax if is_max else torch.amin)(x, dim=dims, keepdim=keepdim)


def _prod(x: torch.Tensor, dims, keepdim: bool) -> torch.Tensor:
    for d in sorted(dims, reverse=True):
        x = torch.prod(x, dim=d, keepdim=True)
    return x if keepdim else x.reshape([s for i, s in enumerate(x.shape) if i not in dims])


_KINDS = {
    "Sum": lambda x, d, k: x.sum(dim=d, keepdim=k),
    "SumSquare": lambda x, d, k: (x * x).sum(dim=d, keepdim=k),
    "L1": lambda x, d, k: x.abs().sum(dim=d, keepdim=k),
    "L2": lambda x, d, k: torch.sqrt((x * x).sum(dim=d, keepdim=k)),
    "LogSum": lambda x, d, k: torch.log(x.sum(dim=d, keepdim=k)),
    "LogSumExp": lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k),
    "Mean": lambda x, d, k: x.mean(dim=d, keepdim=k),
    "Prod": _prod,
    "Max": lambda x, d, k: _extreme(x, d, k, True),
    "Min": lambda x, d, k: _extreme(x, d, k, False),
}

_NUMPY = {
    "Sum": lambda x, d, k: np.sum(x, axis=d, keepdims=k),
    "SumSquare": lambda x, d, k: np.sum(x * x, axis=d, keepdims=k),
    "L1": lambda x, d, k: np.sum(x, axis=d, keepdims=k),
    "L2": lambda x, d, k: np.sqrt(np.sum(x.astype(np.float64) ** 2, axis=d, keepdims=k)),
    "LogSum": lambda x, d, k: np.log(np.sum(x, axis=d, keepdims=k)),
    "LogSumExp": lambda x, d, k: np.log(np.sum(np.exp(x.astype(np.float64)), axis=d, keepdims=k)),
    "Mean": lambda x, d, k: np.mean(x, axis=d, keepdims=k),
    "Prod": lambda x, d, k: np.prod(x, axis=d, keepdims=k),
    "Max": lambda x, d, k: np.max(x, axis=d, keepdims=k),
    "Min": lambda x, d, k: np.min(x, axis=d, keepdims=k),
}


def _reduce(kind: str, data: torch.Tensor, axes, keepdims: int, noop_with_empty_axes: int) -> torch.Tensor:
    op = f"Reduce{kind}"
    axes = ints(axes)
    if not axes:
        if noop_with_empty_axes:
            return data
        axes = list(range(data.dim()))
    dims = sorted({norm_axis(a, data.dim(), op, "axes") for a in axes})
    keep = bool(keepdims)
    if data.dim() == 0:
        return data.clone()
    if needs_widening(data):
        return via_numpy(lambda x: np.asarray(_NUMPY[kind](x, tuple(dims), keep)).astype(x.dtype), data)
    fn = _KINDS[kind]
    if data.dtype == torch.bool or data.dtype.is_floating_point and kind in ("Max", "Min"):
        return fn(data, dims, keep)
    if data.dtype.is_floating_point:
        cdt = torch.float32 if data.dtype in (torch.float16, torch.bfloat16) else data.dtype
        return fn(data.to(cdt), dims, keep).to(data.dtype)
    cdt = torch.int64 if kind in _INT_EXACT else torch.float64
    return fn(data.to(cdt), dims, keep).to(data.dtype)


def _make(kind: str, input_since: int):
    op = f"Reduce{kind}"

    def attr_form(data, *, axes=None, keepdims=1):
        return _reduce(kind, data, axes, keepdims, 0)

    def input_form(data, axes=None, *, keepdims=1, noop_with_empty_axes=0):
        return _reduce(kind, data, axes, keepdims, noop_with_empty_axes)

    attr_form.__name__ = input_form.__name__ = op
    attr_form.__doc__ = f"ONNX {op} (opsets 1-{input_since - 1}): axes as an attribute (default: all)."
    input_form.__doc__ = f"ONNX {op} (opset {input_since}+): axes as an optional input."
    register(op, since=1, host_chain=kind == "Prod")(attr_form)
    register(op, since=input_since, host_inputs=(1,), host_chain=kind == "Prod")(input_form)


for _kind in _KINDS:
    _make(_kind, 13 if _kind == "Sum" else 18)
