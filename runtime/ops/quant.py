"""Quantisation ops: QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked; int8,
uint8, int16, uint16, int32, float8 storage), DynamicQuantizeLinear, MatMulInteger,
ConvInteger, QLinearMatMul, QLinearConv.

Integer products are exact: on the CPU in int64, on CUDA in float64 (no integer GEMM there;
exact below 2**53, far above any int8 accumulation). Rounding is half-to-even, then saturation
to the output type, as the spec says.
"""
from __future__ import annotations


import torch

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import norm_axis
from tritonnx.runtime.ops.math import cast_tensor
from tritonnx.runtime.registry import register

_FLOAT8 = (torch.float8_e4m3fn, torch.float8_e4m3fnuz, torch.float8_e5m2, torch.float8_e5m2fnuz)


def _param(op: str, name: str, p: torch.Tensor, x: torch.Tensor, axis: int, block_size: int) -> torch.Tensor:
    """A scale or zero point broadcast against x: scalar, 1-D along `axis`, or blocked."""
    if p.numel() == 1:
        return p.reshape(())
    a = norm_axis(axis, x.dim(), op)
    if block_size:
        if p.dim() != x.dim():
            raise InvalidArgument(f"{op}: blocked {name} has rank {p.dim()}, expected the input's rank {x.dim()}")
        return p.repeat_interleave(block_size, dim=a).narrow(a, 0, x.shape[a])
    if p.dim() != 1 or p.shape[0] != x.shape[a]:
        raise InvalidArgument(
            f"{op}: {name} has shape {list(p.shape)}, expected a scalar or [{x.shape[a]}] (axis {a} of the input)"
        )
    shape = [1] * x.dim()
    shape[a] = -1
    return p.reshape(shape)


def saturate_to(y: torch.Tensor, dtype: torch.dtype, saturate: int = 1) -> torch.Tensor:
    """float y (already rounded for integer targets) -> dtype, clamped to its range."""
    if dtype in _FLOAT8:
        return cast_tensor("QuantizeLinear", y.float(), dtype, saturate)
    info = torch.iinfo(dtype)
    return y.clamp(info.min, info.max).to(dtype)


@register("DequantizeLinear", since=10)
def DequantizeLinear(x, x_scale, x_zero_point=None, *, axis=1, block_size=0, output_dtype=0):
    """ONNX DequantizeLinear: y = (x - x_zero_point) * x_scale, in the scale's dtype (or
    ``output_dtype``)."""
    out_dt = dtypes.torch_dtype(output_dtype) if output_dtype else x_scale.dtype
    xf = x.to(torch.float32) if x.dtype not in (torch.int32,) else x.to(torch.float64)
    if x_zero_point is not None:
        xf = xf - _param("DequantizeLinear", "x_zero_point", x_zero_point, x, axis, block_size).to(xf.dtype)
    y = xf * _param("DequantizeLinear", "x_scale", x_scale, x, axis, block_size).to(xf.dtype)
    return y.to(out_dt)


@register("QuantizeLinear", since=10)
def QuantizeLinear(x, y_scale, y_zero_point=None, *, axis=1, block_size=0, output_dtype=0,
                   precision=0, saturate=1):
    """ONNX QuantizeLinear: y = saturate(round(x / y_scale) + y_zero_point), in the zero point's
    dtype (or ``output_dtype``; uint8 when neither is given)."""
    if y_zero_point is not None:
        out_dt = y_zero_point.dtype
    elif output_dtype:
        if output_dtype not in dtypes.ONNX_TO_TORCH:
            raise NotImplemented(f"QuantizeLinear: output_dtype={dtypes.onnx_type_name(output_dtype)} has no torch dtype")
        out_dt = dtypes.ONNX_TO_TORCH[output_dtype]
    else:
        out_dt = torch.uint8
    cdt = torch.float64 if x.dtype == torch.float64 or x.dtype == torch.int32 else torch.float32
    scale = _param("QuantizeLinear", "y_scale", y_scale, x, axis, block_size).to(cdt)
    q = x.to(cdt) / scale
    if out_dt in _FLOAT8:
        if y_zero_point is not None:
            q = q + _param("QuantizeLinear", "y_zero_point", y_zero_point, x, axis, block_size).to(cdt)
        return saturate_to(q, out_dt, saturate)
    q = torch.round(q)
    if y_zero_point is not None:
        q = q + _param("QuantizeLinear", "y_zero_point", y_zero_point, x, axis, block_size).to(cdt)
    return saturate_to(q, out_dt)


@register("DynamicQuantizeLinear", since=11)
def DynamicQuantizeLinear(x):
    """ONNX DynamicQuantizeLinear: uint8 y, float scale and uint8 zero point covering [min(x, 0), max(x, 0)]."""
    xf = x.to(torch.float32)
    lo = torch.clamp_max(xf.min(), 0)
    hi = torch.clamp_min(xf.max(), 0)
    scale = (hi - lo) / 255
    zp = torch.round(-lo / scale).clamp(0, 255)
    y = (torch.round(xf / scale) + zp).clamp(0, 255)
    return y.to(torch.uint8), scale.to(x.dtype), zp.to(torch.uint8)


def _exact_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.device.type == "cuda":
        return torch.matmul(a.double(), b.double()).round().long()
    return torch.matmul(a.long(), b.long())


def _centered(t: torch.Tensor, zp: torch.Tensor | None, per: str) -> torch.Tensor:
    v = t.long()
    if zp is None:
        return v
    z = zp.long()
    if z.numel() == 1:
        return v - z.reshape(())
    if per == "row":  # A's zero point: one per row (M) of the trailing matrix
        return v - z.reshape(list(z.shape) + [1])
    return v - z.reshape(list(z.shape[:-1]) + [1, z.shape[-1]])  # B's: one per column (N)


@register("MatMulInteger", since=10)
def MatMulInteger(A, B, a_zero_point=None, b_zero_point=None):
    """ONNX MatMulInteger: int32 (A - a_zero_point) @ (B - b_zero_point)."""
    return _exact_matmul(_centered(A, a_zero_point, "row"), _centered(B, b_zero_point, "col")).to(torch.int32)


def _int_conv(x, w, x_zp, w_zp, attrs):
    from tritonnx.runtime.ops.nn import Conv

    xc = x.to(torch.float64) - (x_zp.to(torch.float64).reshape(()) if x_zp is not None else 0)
    wc = w.to(torch.float64)
    if w_zp is not None:
        z = w_zp.to(torch.float64)
        wc = wc - (z.reshape(()) if z.numel() == 1 else z.reshape([-1] + [1] * (w.dim() - 1)))
    return Conv(xc, wc, None, **attrs).round()


@register("ConvInteger", since=10)
def ConvInteger(x, w, x_zero_point=None, w_zero_point=None, *, auto_pad="NOTSET", dilations=None, group=1,
                kernel_shape=None, pads=None, strides=None):
    """ONNX ConvInteger: int32 Conv(x - x_zero_point, w - w_zero_point)."""
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    return _int_conv(x, w, x_zero_point, w_zero_point, attrs).to(torch.int32)


def _requantize(acc: torch.Tensor, scale: torch.Tensor, y_scale, y_zero_point) -> torch.Tensor:
    y = torch.round(acc.to(torch.float64) * scale.to(torch.float64) / y_scale.to(torch.float64))
    if y_zero_point is not None:
        y = y + y_zero_point.to(torch.float64)
    out_dt = y_zero_point.dtype if y_zero_point is not None else torch.uint8
    return saturate_to(y, out_dt)


@register("QLinearMatMul", since=10)
def QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """ONNX QLinearMatMul: quantize((a - a_zp) @ (b - b_zp) * a_scale * b_scale, y_scale, y_zp)."""
    acc = _exact_matmul(_centered(a, a_zero_point, "row"), _centered(b, b_zero_point, "col"))
    a_s = a_scale.to(torch.float64)
    a_s = a_s.reshape(()) if a_s.numel() == 1 else a_s.reshape(list(a_s.shape) + [1])
    b_s = b_scale.to(torch.float64)
    b_s = b_s.reshape(()) if b_s.numel() == 1 else b_s.reshape(list(b_s.shape[:-1]) + [1, b_s.shape[-1]])
    return _requantize(acc, a_s * b_s, y_scale, y_zero_point)


@register("QLinearConv", since=10)
def QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B=None, *,
                auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """ONNX QLinearConv: quantize(Conv(x - x_zp, w - w_zp) + B) * x_scale * w_scale, y_scale, y_zp);
    w_scale and w_zero_point per output channel or scalar."""
    attrs = dict(auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape, pads=pads,
                 strides=strides)
    acc = _int_conv(x, w, x_zero_point, w_zero_point, attrs)
    spatial = [1] * (x.dim() - 2)
    if B is not None:
        acc = acc + B.to(torch.float64).reshape([1, -1] + spatial)
    ws = w_scale.to(torch.float64)
    ws = ws.reshape(()) if ws.numel() == 1 else ws.reshape([1, -1] + spatial)
    return _requantize(acc, x_scale.to(torch.float64).reshape(()) * ws, y_scale, y_zero_point)


