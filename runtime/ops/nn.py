"""Neural-network ops: Conv, ConvTranspose, Col2Im, pooling (LpPool and GlobalLpPool included),
normalisations (LpNormalization and MeanVarianceNormalization included), matrix products
(Gemm, MatMul, Einsum, Det), Softmax, Dropout, ArgMax/ArgMin.

Convolutions and pools are 1-D, 2-D or 3-D with every attribute (auto_pad, asymmetric pads,
dilations, groups, ceil_mode, count_include_pad, MaxPool's Indices and storage_order).
Asymmetric padding is applied explicitly before the torch op (zeros for Conv, -inf for
MaxPool), so torch only ever sees symmetric or no padding. Average pooling is a depth-wise
convolution with a ones kernel divided by the count of the window's counted cells, which
gives dilations and ONNX's count_include_pad rule (explicit pads counted, ceil overhang never).

On the CPU, fp16/bf16 work is done in fp32 and cast back (torch's CPU kernels for half types
are partial and slow); on the GPU it runs in the input's dtype.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.ops._common import (
    check_rank,
    conv_pads,
    needs_widening,
    norm_axis,
    pad_spatial,
    scalar,
    spatial_defaults,
    via_numpy,
)
from tritonnx.runtime.registry import register

_HALF = (torch.float16, torch.bfloat16)
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype to compute float math in: fp32 for half types on the CPU, else the input's."""
    if t.dtype in _HALF and t.device.type == "cpu":
        return torch.float32
    if not t.dtype.is_floating_point:
        return torch.float32
    return t.dtype


def _up(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype)


# --- Conv ------------------------------------------------------------------------------------

@register("Conv", since=1)
def Conv(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
         pads=None, strides=None):
    """ONNX Conv. X: (N, C, *spatial), W: (M, C / group, *kernel), B: (M,) -> (N, M, *out)."""
    n, kernel, strides, dilations = spatial_defaults("Conv", X, kernel_shape, strides, dilations)
    check_rank("Conv", "W", W, X.dim())
    if kernel is not None and list(kernel) != list(W.shape[2:]):
        raise InvalidArgument(f"Conv: kernel_shape={list(kernel)} but W has spatial shape {list(W.shape[2:])}")
    if X.shape[1] != W.shape[1] * group:
        raise InvalidArgument(
            f"Conv: X has {X.shape[1]} channels, expected W.shape[1] * group = {W.shape[1]} * {group}"
        )
    if B is not None and (B.dim() != 1 or B.shape[0] != W.shape[0]):
        raise InvalidArgument(f"Conv: B has shape {list(B.shape)}, expected [{W.shape[0]}]")
    begin, end = conv_pads("Conv", X.shape[2:], W.shape[2:], strides, dilations, pads, auto_pad)
    cdt = _compute_dtype(X)
    x = X.to(cdt)
    if begin == end:
        padding = begin
    else:
        x, padding = pad_spatial(x, begin, end, 0.0), [0] * n
    y = _CONV[n](x, W.to(cdt), _up(B, cdt), strides, padding, dilations, group)
    return y.to(X.dtype)


@register("ConvTranspose", since=1)
def ConvTranspose(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
                  output_padding=None, output_shape=None, pads=None, strides=None):
    """ONNX ConvTranspose. X: (N, C, *spatial), W: (C, M / group, *kernel) -> (N, M, *out).

    out = stride * (in - 1) + output_padding + (kernel - 1) * dilation + 1 - pad_begin - pad_end,
    or ``output_shape`` (the pads then derived from it, extra at the end for SAME_UPPER).
    """
    n, kernel, strides, dilations = spatial_defaults("ConvTranspose", X, kernel_shape, strides, dilations)
    check_rank("ConvTranspose", "W", W, X.dim())
    if X.shape[1] != W.shape[0]:
        raise InvalidArgument(f"ConvTranspose: X has {X.shape[1]} channels, expected W.shape[0] = {W.shape[0]}")
    kernel = list(W.shape[2:])
    out_pad = list(output_padding) if output_padding else [0] * n
    in_sp = list(X.shape[2:])
    full = [s * (i - 1) + (k - 1) * d + 1 for i, k, s, d in zip(in_sp, kernel, strides, dilations)]
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        target = list(output_shape)[-n:] if output_shape else [i * s for i, s in zip(in_sp, strides)]
        total = [f + o - t for f, o, t in zip(full, out_pad, target)]
        if auto_pad == "SAME_UPPER":
            begin = [t // 2 for t in total]
        else:
            begin = [t - t // 2 for t in total]
        end = [t - b for t, b in zip(total, begin)]
    elif auto_pad == "VALID":
        begin, end = [0] * n, [0] * n
    else:
        begin, end = conv_pads("ConvTranspose", in_sp, kernel, strides, dilations, pads, auto_pad)
    cdt = _compute_dtype(X)
    y = _CONV_T[n](X.to(cdt), W.to(cdt), None, strides, 0, 0, group, dilations)
    y = pad_spatial(y, [-b for b in begin], [o - e for o, e in zip(out_pad, end)], 0.0)
    if B is not None:
        y = y + B.to(cdt).reshape([1, -1] + [1] * n)
    return y.to(X.dtype)


@register("Col2Im", since=18, host_inputs=(1, 2))
def Col2Im(input, image_shape, block_shape, *, dilations=None, pads=None, strides=None):
    """ONNX Col2Im: (N, C * prod(block), L) columns summed back into (N, C, *image_shape)."""
    img = [int(v) for v in image_shape.reshape(-1).tolist()]
    blk = [int(v) for v in block_shape.reshape(-1).tolist()]
    k = len(img)
    dil = list(dilations) if dilations else [1] * k
    st = list(strides) if strides else [1] * k
    pd = list(pads) if pads else [0] * (2 * k)
    n, ck, length = input.shape
    kprod = math.prod(blk)
    if ck % kprod:
        raise InvalidArgument(f"Col2Im: input dim 1 ({ck}) is not a multiple of prod(block_shape) = {kprod}")
    padded = [i + pd[d] + pd[k + d] for d, i in enumerate(img)]
    outs = [(p - (b - 1) * dl - 1) // s + 1 for p, b, dl, s in zip(padded, blk, dil, st)]
    if math.prod(outs) != length:
        raise InvalidArgument(f"Col2Im: input has {length} blocks, the shapes give {math.prod(outs)}")
    dev = input.device
    kpos = torch.cartesian_prod(*[torch.arange(b, device=dev) for b in blk]).reshape(kprod, k)
    lpos = torch.cartesian_prod(*[torch.arange(o, device=dev) for o in outs]).reshape(length, k)
    coords = lpos[None, :, :] * torch.tensor(st, device=dev) + kpos[:, None, :] * torch.tensor(dil, device=dev)
    strides_flat = torch.tensor([math.prod(padded[d + 1:]) for d in range(k)], device=dev)
    target = (coords * strides_flat).sum(-1).reshape(-1)  # (kprod * length,)
    cols = input.reshape(n, ck // kprod, kprod * length)
    out = torch.zeros(n, ck // kprod, math.prod(padded), dtype=input.dtype, device=dev)
    out.index_add_(2, target, cols)
    out = out.reshape([n, ck // kprod] + padded)
    return pad_spatial(out, [-p for p in pd[:k]], [-p for p in pd[k:]], 0.0)


# --- pooling ---------------------------------------------------------------------------------

def pool_geometry(op, X, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode):
    """(n, kernel, strides, dilations, begin, end, end_eff, out): `end` the declared end pads,
    `end_eff` the end padding that makes a no-padding floor-mode pool yield `out`."""
    n, kernel, strides, dilations = spatial_defaults(op, X, kernel_shape, strides, dilations)
    if not kernel or len(kernel) != n:
        raise InvalidArgument(f"{op}: kernel_shape={kernel_shape}, expected {n} values")
    in_sp = list(X.shape[2:])
    begin, end = conv_pads(op, in_sp, kernel, strides, dilations, pads, auto_pad)
    out, end_eff = [], []
    for size, k, s, d, b, e in zip(in_sp, kernel, strides, dilations, begin, end):
        eff = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = math.ceil(size / s)
        else:
            span = size + b + e - eff
            o = (math.ceil(span / s) if ceil_mode else span // s) + 1
            if ceil_mode and (o - 1) * s >= size + b:
                o -= 1  # a window starting in the right padding is dropped
        if o < 1:
            raise InvalidArgument(f"{op}: input X spatial shape {in_sp} is smaller than the kernel {kernel} (pads {pads})")
        out.append(o)
        end_eff.append((o - 1) * s + eff - size - b)
    return n, kernel, strides, dilations, begin, end, end_eff, out


@register("MaxPool", since=1)
def MaxPool(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, pads=None,
            storage_order=0, strides=None, num_outputs=1):
    """ONNX MaxPool -> (Y, Indices). Indices flatten (N, C, *spatial) row-major, or with the
    spatial axes column-major when ``storage_order=1``."""
    n, kernel, strides, dilations, begin, _, end_eff, _ = pool_geometry(
        "MaxPool", X, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    cdt = _compute_dtype(X)
    want_idx = num_outputs > 1
    if not want_idx and begin == end_eff and all(b <= k // 2 for b, k in zip(begin, kernel)):
        # symmetric padding torch can do itself (implicit -inf): no padded copy
        return _MAX_POOL[n](X.to(cdt), kernel, strides, begin, dilations).to(X.dtype)
    x = pad_spatial(X.to(cdt), begin, end_eff, float("-inf"))
    res = _MAX_POOL[n](x, kernel, strides, 0, dilations, ceil_mode=False, return_indices=want_idx)
    if not want_idx:
        return res.to(X.dtype)
    y, idx = res
    padded_sp = list(x.shape[2:])
    in_sp = list(X.shape[2:])
    coords = []
    rest = idx
    for size in reversed(padded_sp):
        coords.append(rest % size)
        rest = rest // size
    coords = [c - b for c, b in zip(reversed(coords), begin)]
    flat = torch.zeros_like(idx)
    order = range(n - 1, -1, -1) if storage_order else range(n)
    for i in order:
        flat = flat * in_sp[i] + coords[i]
    plane = math.prod(in_sp)
    nc = torch.arange(X.shape[0] * X.shape[1], device=X.device).reshape([X.shape[0], X.shape[1]] + [1] * n)
    return y.to(X.dtype), flat + nc * plane


@register("AveragePool", since=1)
def AveragePool(X, *, auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, dilations=None,
                kernel_shape=None, pads=None, strides=None):
    """ONNX AveragePool (dilations from opset 19)."""
    n, kernel, strides, dilations, begin, end, end_eff, _ = pool_geometry(
        "AveragePool", X, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    cdt = _compute_dtype(X)
    if (begin == end_eff and all(d == 1 for d in dilations)
            and all(b <= k // 2 for b, k in zip(begin, kernel))):
        # no dilation, symmetric padding within half a kernel, no ceil overhang: torch's
        # avg_pool counts exactly as ONNX does
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
        return fn(X.to(cdt), kernel, strides, begin, False, bool(count_include_pad)).to(X.dtype)
    channels = X.shape[1]
    x = pad_spatial(X.to(cdt), begin, end_eff, 0.0)
    ones = torch.ones([channels, 1] + kernel, dtype=cdt, device=X.device)
    total = _CONV[n](x, ones, None, strides, 0, dilations, channels)
    mask = torch.ones([1, 1] + list(X.shape[2:]), dtype=cdt, device=X.device)
    if count_include_pad:
        counted_end = [min(e, f) for e, f in zip(end, end_eff)]
        mask = pad_spatial(mask, begin, counted_end, 1.0)
        mask = pad_spatial(mask, [0] * n, [f - c for f, c in zip(end_eff, counted_end)], 0.0)
    else:
        mask = pad_spatial(mask, begin, end_eff, 0.0)
    count = _CONV[n](mask, ones[:1], None, strides, 0, dilations)
    return (total / count).to(X.dtype)


@register("GlobalAveragePool", since=1)
def GlobalAveragePool(X):
    """ONNX GlobalAveragePool: mean over the spatial axes, kept as size 1."""
    dims = list(range(2, X.dim()))
    return X.to(_compute_dtype(X)).mean(dim=dims, keepdim=True).to(X.dtype)


@register("GlobalMaxPool", since=1)
def GlobalMaxPool(X):
    """ONNX GlobalMaxPool: max over the spatial axes, kept as size 1."""
    dims = list(range(2, X.dim()))
    return X.amax(dim=dims, keepdim=True)


@register("LRN", since=1)
def LRN(X, *, alpha=0.0001, beta=0.75, bias=1.0, size):
    """ONNX LRN: x / (bias + alpha / size * sum of x^2 over channels
    [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)]) ** beta."""
    cdt = _compute_dtype(X)
    x = X.to(cdt)
    if size % 2 == 1 and x.dim() >= 3:  # odd windows are centred: torch's own LRN is the same math
        return F.local_response_norm(x, size, alpha=alpha, beta=beta, k=bias).to(X.dtype)
    front, back = (size - 1) // 2, size - 1 - (size - 1) // 2
    sq = F.pad((x * x).movedim(1, -1), (front, back))
    window = sq.unfold(-1, size, 1).sum(-1).movedim(-1, 1)
    return (x / (bias + alpha / size * window) ** beta).to(X.dtype)


@register("GlobalLpPool", since=2)
def GlobalLpPool(X, *, p=2):
    """ONNX GlobalLpPool: the p-norm over the spatial axes, kept as size 1."""
    dims = list(range(2, X.dim()))
    return torch.linalg.vector_norm(X, ord=p, dim=dims, keepdim=True).to(X.dtype)


@register("LpPool", since=2)
def LpPool(X, *, auto_pad="NOTSET", ceil_mode=0, dilations=None, kernel_shape=None, p=2, pads=None, strides=None):
    """ONNX LpPool: (sum over the window of |x|^p) ^ (1 / p), zero padding."""
    n, kernel, strides, dilations, begin, _, end_eff, _ = pool_geometry(
        "LpPool", X, kernel_shape, strides, dilations, pads, auto_pad, ceil_mode)
    xp = pad_spatial(X.abs() ** p, begin, end_eff, 0.0)
    ones = torch.ones([X.shape[1], 1] + kernel, dtype=X.dtype, device=X.device)
    return _CONV[n](xp, ones, None, strides, 0, dilations, X.shape[1]) ** (1.0 / p)


# --- normalisation ---------------------------------------------------------------------------

def _bn(X, scale, B, mean, var, epsilon, momentum, training, outputs):
    cdt = _compute_dtype(X)
    if not training and scale.dim() == 1 and X.dim() >= 2 and cdt == X.dtype:
        # inference: torch's fused kernel
        return F.batch_norm(X, mean.to(cdt), var.to(cdt), scale.to(cdt), B.to(cdt), False, 0.0, epsilon)
    shape = [1, -1] + [1] * (X.dim() - 2)
    if scale.dim() > 1:  # opset < 9 with spatial=0: per-activation parameters (C, D1, ...)
        shape = [1] + list(scale.shape)
    x = X.to(cdt)
    sc, b, m, v = (t.to(cdt).reshape(shape) for t in (scale, B, mean, var))
    if not training:
        y = (x - m) / torch.sqrt(v + epsilon) * sc + b
        return y.to(X.dtype)
    axes = [0] + list(range(2, X.dim()))
    bm = x.mean(dim=axes, keepdim=True)
    bv = x.var(dim=axes, unbiased=False, keepdim=True)
    y = ((x - bm) / torch.sqrt(bv + epsilon) * sc + b).to(X.dtype)
    run_m = (m * momentum + bm * (1 - momentum)).reshape(mean.shape).to(mean.dtype)
    run_v = (v * momentum + bv * (1 - momentum)).reshape(var.shape).to(var.dtype)
    res = (y, run_m, run_v, bm.reshape(mean.shape).to(mean.dtype), bv.reshape(var.shape).to(var.dtype))
    return res[:outputs]


@register("BatchNormalization", since=1)
def BatchNormalization_1(X, scale, B, mean, var, *, epsilon=1e-5, momentum=0.9, spatial=1,
                         is_test=0, consumed_inputs=None, num_outputs=1):
    """ONNX BatchNormalization (opsets 1-13): training statistics when extra outputs are asked."""
    return _bn(X, scale, B, mean, var, epsilon, momentum, num_outputs > 1, num_outputs)


@register("BatchNormalization", since=14)
def BatchNormalization(X, scale, B, input_mean, input_var, *, epsilon=1e-5, momentum=0.9,
                       training_mode=0, num_outputs=1):
    """ONNX BatchNormalization (opset 14+): y = (x - mean) / sqrt(var + epsilon) * scale + B;
    with ``training_mode=1`` batch statistics and (Y, running_mean, running_var)."""
    return _bn(X, scale, B, input_mean, input_var, epsilon, momentum, bool(training_mode), num_outputs)


@register("InstanceNormalization", since=1)
def InstanceNormalization(input, scale, B, *, epsilon=1e-5):
    """ONNX InstanceNormalization: per (n, c) over the spatial axes."""
    cdt = _compute_dtype(input)
    x = input.to(cdt)
    axes = list(range(2, x.dim()))
    m = x.mean(dim=axes, keepdim=True)
    v = x.var(dim=axes, unbiased=False, keepdim=True)
    shape = [1, -1] + [1] * (x.dim() - 2)
    y = (x - m) / torch.sqrt(v + epsilon) * scale.to(cdt).reshape(shape) + B.to(cdt).reshape(shape)
    return y.to(input.dtype)


@register("LayerNormalization", since=17)
def LayerNormalization(X, Scale, B=None, *, axis=-1, epsilon=1e-5, stash_type=1, num_outputs=1):
    """ONNX LayerNormalization over axes [axis, rank) -> (Y, Mean, InvStdDev)."""
    a = norm_axis(axis, X.dim(), "LayerNormalization")
    norm_shape = tuple(X.shape[a:])
    if (num_outputs == 1 and tuple(Scale.shape) == norm_shape and (B is None or tuple(B.shape) == norm_shape)
            and Scale.dtype == X.dtype and _compute_dtype(X) == X.dtype):
        # Y only: torch's fused kernel (fp32 statistics for half types)
        return F.layer_norm(X, norm_shape, Scale, B, epsilon)
    cdt = torch.float64 if X.dtype == torch.float64 else torch.float32
    x = X.to(cdt)
    axes = list(range(a, X.dim()))
    m = x.mean(dim=axes, keepdim=True)
    inv = torch.rsqrt(((x - m) ** 2).mean(dim=axes, keepdim=True) + epsilon)
    y = (x - m) * inv * Scale.to(cdt)
    if B is not None:
        y = y + B.to(cdt)
    if num_outputs == 1:
        return y.to(X.dtype)
    stash = torch.float32 if stash_type == 1 else X.dtype
    return y.to(X.dtype), m.to(stash), inv.to(stash)


@register("LpNormalization", since=1)
def LpNormalization(input, *, axis=-1, p=2):
    """ONNX LpNormalization: x / ||x||_p along `axis` (p = 1 or 2); zero norms give 0."""
    if p not in (1, 2):
        raise InvalidArgument(f"LpNormalization: p={p}, expected 1 or 2")
    a = norm_axis(axis, input.dim(), "LpNormalization")
    norm = torch.linalg.vector_norm(input, ord=p, dim=a, keepdim=True)
    return torch.where(norm == 0, torch.zeros_like(input), input / norm)


@register("MeanVarianceNormalization", since=9)
def MeanVarianceNormalization(X, *, axes=(0, 2, 3)):
    """ONNX MeanVarianceNormalization: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes`."""
    dims = [norm_axis(a, X.dim(), "MeanVarianceNormalization", "axes") for a in axes]
    m = X.mean(dim=dims, keepdim=True)
    var = (X * X).mean(dim=dims, keepdim=True) - m * m
    return (X - m) / (torch.sqrt(var) + 1e-9)


# --- matrix products -------------------------------------------------------------------------

def _matmul(op: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dtype != b.dtype:
        raise InvalidArgument(f"{op}: inputs A ({a.dtype}) and B ({b.dtype}) must have the same dtype")
    if needs_widening(a, b):
        return via_numpy(lambda x, y: np.matmul(x, y).astype(x.dtype), a, b)
    if a.dtype.is_floating_point:
        cdt = _compute_dtype(a)
        return torch.matmul(a.to(cdt), b.to(cdt)).to(a.dtype)
    if a.device.type == "cuda":  # no integer GEMM on CUDA: exact in float64 below 2**53
        return torch.matmul(a.double(), b.double()).round().to(a.dtype)
    return torch.matmul(a, b)


@register("MatMul", since=1)
def MatMul(A, B):
    """ONNX MatMul: numpy.matmul semantics (1-D operands promoted and squeezed, batch broadcast)."""
    if A.dim() == 0 or B.dim() == 0:
        raise InvalidArgument(f"MatMul: inputs must have rank >= 1, got A {list(A.shape)} and B {list(B.shape)}")
    ka = A.shape[-1]
    kb = B.shape[-2] if B.dim() > 1 else B.shape[0]
    if ka != kb:
        raise InvalidArgument(f"MatMul: A {list(A.shape)} and B {list(B.shape)} have different inner dimensions ({ka} vs {kb})")
    return _matmul("MatMul", A, B)


@register("Gemm", since=1)
def Gemm(A, B, C=None, *, alpha=1.0, beta=1.0, transA=0, transB=0, broadcast=0):
    """ONNX Gemm: alpha * A' @ B' + beta * C (C broadcast to (M, N), optional from opset 11)."""
    check_rank("Gemm", "A", A, 2)
    check_rank("Gemm", "B", B, 2)
    a = A.t() if transA else A
    b = B.t() if transB else B
    if a.shape[1] != b.shape[0]:
        raise InvalidArgument(
            f"Gemm: A' {list(a.shape)} and B' {list(b.shape)} (transA={transA}, transB={transB}) have different inner dimensions"
        )
    if A.dtype.is_floating_point and B.dtype == A.dtype and _compute_dtype(A) == A.dtype:
        # one fused kernel: addmm (C broadcast to (M, N)) or mm
        if C is not None and beta != 0:
            return torch.addmm(C.to(A.dtype), a, b, beta=beta, alpha=alpha)
        y = torch.mm(a, b)
        return y if alpha == 1.0 else y * alpha
    y = _matmul("Gemm", a, b)
    if alpha != 1.0:
        y = (y.to(_compute_dtype(y)) * alpha).to(A.dtype)
    if C is not None and beta != 0:
        c = C if beta == 1.0 else (C.to(_compute_dtype(C)) * beta).to(C.dtype)
        if needs_widening(y):
            y = via_numpy(lambda p, q: (p + q).astype(p.dtype), y, c)
        else:
            y = (y.to(_compute_dtype(y)) + c.to(_compute_dtype(y))).to(A.dtype) if y.dtype.is_floating_point else y + c
    return y


@register("Einsum", since=12)
def Einsum(*Inputs, equation):
    """ONNX Einsum: torch.einsum with the same equation."""
    eq = equation.replace(" ", "")
    dt = Inputs[0].dtype
    if needs_widening(*Inputs):
        return via_numpy(lambda *xs: np.einsum(eq, *xs).astype(xs[0].dtype), *Inputs)
    if dt in (torch.float16, torch.bfloat16):
        return torch.einsum(eq, *(t.float() for t in Inputs)).to(dt)
    return torch.einsum(eq, *Inputs)


@register("Det", since=11)
def Det(X):
    """ONNX Det: determinant of the trailing square matrices."""
    return torch.linalg.det(X.to(torch.float64) if X.dtype in (torch.float16, torch.bfloat16) else X).to(X.dtype)


# --- softmax family --------------------------------------------------------------------------

def _softmax(op: str, x: torch.Tensor, axis: int, flatten: bool, fn) -> torch.Tensor:
    a = norm_axis(axis, x.dim(), op)
    cdt = _compute_dtype(x)
    xc = x.to(cdt)
    if flatten:  # opset < 13: coerce to 2-D at `axis`, normalise each row
        rows = math.prod(x.shape[:a])
        y = fn(xc.reshape(rows, -1), 1).reshape(x.shape)
    else:
        y = fn(xc, a)
    return y.to(x.dtype)


def _hardmax(x: torch.Tensor, dim: int) -> torch.Tensor:
    idx = x.argmax(dim=dim, keepdim=True)
    return torch.zeros_like(x).scatter_(dim, idx, 1)


def _make_softmax(op: str, fn):
    def old(input, *, axis=1):
        return _softmax(op, input, axis, True, fn)

    def new(input, *, axis=-1):
        return _softmax(op, input, axis, False, fn)

    old.__name__ = new.__name__ = op
    old.__doc__ = f"ONNX {op} (opsets 1-12): over the input coerced to 2-D at `axis` (default 1)."
    new.__doc__ = f"ONNX {op} (opset 13+): along `axis` (default -1)."
    register(op, since=1)(old)
    register(op, since=13)(new)


_make_softmax("Softmax", lambda x, d: torch.softmax(x, d))
_make_softmax("LogSoftmax", lambda x, d: torch.log_softmax(x, d))
_make_softmax("Hardmax", _hardmax)


# --- Dropout, ArgMax/ArgMin ------------------------------------------------------------------

@register("Dropout", since=1, host_inputs=(1, 2))
def Dropout_1(data, *, ratio=0.5, is_test=0, consumed_inputs=None, num_outputs=1):
    """ONNX Dropout (opsets 1-9): inference, the output is the input; mask all ones in data's dtype."""
    if num_outputs == 1:
        return data
    return data, torch.ones(data.shape, dtype=data.dtype, device=data.device)


@register("Dropout", since=10, host_inputs=(1, 2))
def Dropout_10(data, *, ratio=0.5, num_outputs=1):
    """ONNX Dropout (opsets 10-11): inference, the output is the input; bool mask all true."""
    if num_outputs == 1:
        return data
    return data, torch.ones(data.shape, dtype=torch.bool, device=data.device)


@register("Dropout", since=12, host_inputs=(1, 2))
def Dropout(data, ratio=None, training_mode=None, *, seed=None, num_outputs=1):
    """ONNX Dropout (opset 12+): identity unless ``training_mode`` is true and ratio > 0, then
    a random mask (torch's generator, seeded with ``seed`` when given) and scaling 1 / (1 - ratio)."""
    training = training_mode is not None and bool(scalar(training_mode))
    r = 0.5 if ratio is None or not training else float(scalar(ratio))
    if not training or r == 0.0:
        if num_outputs == 1:
            return data
        return data, torch.ones(data.shape, dtype=torch.bool, device=data.device)
    if not 0.0 <= r < 1.0:
        raise InvalidArgument(f"Dropout: ratio={r}, expected a value in [0, 1)")
    gen = torch.Generator(device=data.device)
    if seed is not None:
        gen.manual_seed(int(seed))
    else:
        gen.seed()
    mask = torch.rand(data.shape, generator=gen, device=data.device) >= r
    return (data * mask / (1.0 - r)).to(data.dtype), mask


def _arg(op: str, data: torch.Tensor, axis: int, keepdims: int, select_last_index: int, fn, np_fn):
    a = norm_axis(axis, data.dim(), op)
    if needs_widening(data):
        def f(x):
            x = np.flip(x, a) if select_last_index else x
            i = np_fn(x, axis=a)
            if select_last_index:
                i = x.shape[a] - 1 - i
            return np.expand_dims(i, a) if keepdims else i
        return via_numpy(f, data)
    x = data.flip(a) if select_last_index else data
    i = fn(x, dim=a, keepdim=bool(keepdims))
    if select_last_index:
        i = data.shape[a] - 1 - i
    return i


@register("ArgMax", since=1)
def ArgMax(data, *, axis=0, keepdims=1, select_last_index=0):
    """ONNX ArgMax: int64 indices of the maxima along `axis` (first, or last when asked)."""
    return _arg("ArgMax", data, axis, keepdims, select_last_index, torch.argmax, np.argmax)


@register("ArgMin", since=1)
def ArgMin(data, *, axis=0, keepdims=1, select_last_index=0):
    """ONNX ArgMin: int64 indices of the minima along `axis` (first, or last when asked)."""
    return _arg("ArgMin", data, axis, keepdims, select_last_index, torch.argmin, np.argmin)


@register("GroupNormalization", since=18)
def GroupNormalization_18(X, scale, bias, *, epsilon=1e-5, num_groups):
    """ONNX GroupNormalization (opset 18): scale and bias per group."""
    c = X.shape[1]
    per = c // num_groups
    return GroupNormalization(X, scale.repeat_interleave(per), bias.repeat_interleave(per),
                              epsilon=epsilon, num_groups=num_groups)


@register("GroupNormalization", since=21)
def GroupNormalization(X, scale, bias, *, epsilon=1e-5, num_groups, stash_type=1):
    """ONNX GroupNormalization (opset 21): normalise per (instance, group of channels), then
    scale and bias per channel."""
    n, c = X.shape[:2]
    if c % num_groups:
        raise InvalidArgument(f"GroupNormalization: {c} channels is not a multiple of num_groups={num_groups}")
    cdt = torch.float64 if X.dtype == torch.float64 else torch.float32
    x = X.to(cdt).reshape(n, num_groups, -1)
    m = x.mean(dim=-1, keepdim=True)
    v = x.var(dim=-1, unbiased=False, keepdim=True)
    y = ((x - m) / torch.sqrt(v + epsilon)).reshape(X.shape).to(X.dtype)
    shape = [1, c] + [1] * (X.dim() - 2)
    return y * scale.reshape(shape).to(X.dtype) + bias.reshape(shape).to(X.dtype)


@register("RMSNormalization", since=23)
def RMSNormalization(X, scale, *, axis=-1, epsilon=1e-5, stash_type=1):
    """ONNX RMSNormalization: x / sqrt(mean(x^2 over [axis, rank)) + epsilon) * scale."""
    a = norm_axis(axis, X.dim(), "RMSNormalization")
    cdt = torch.float64 if X.dtype == torch.float64 else torch.float32
    x = X.to(cdt)
    rms = torch.sqrt((x * x).mean(dim=list(range(a, X.dim())), keepdim=True) + epsilon)
    return (x / rms).to(X.dtype) * scale.to(X.dtype)


@register("MaxUnpool", since=9, host_inputs=(2,))
def MaxUnpool(X, I, output_shape=None, *, kernel_shape, pads=None, strides=None):
    """ONNX MaxUnpool: zeros of the pooled-from shape, (in - 1) * stride + kernel - pads, with X
    written at the flat indices I (MaxPool's Indices); an ``output_shape`` pads (or crops) that
    at the end of each spatial axis, the written positions keeping their coordinates."""
    n = X.dim() - 2
    strides = list(strides) if strides else [1] * n
    pads = list(pads) if pads else [0] * (2 * n)
    shape = list(X.shape[:2]) + [
        (size - 1) * s + k - pads[i] - pads[n + i]
        for i, (size, k, s) in enumerate(zip(X.shape[2:], kernel_shape, strides))
    ]
    out = torch.zeros(math.prod(shape), dtype=X.dtype, device=X.device)
    out.scatter_(0, I.reshape(-1).to(device=X.device, dtype=torch.int64), X.reshape(-1))
    out = out.reshape(shape)
    if output_shape is not None:
        target = [int(v) for v in output_shape.reshape(-1).tolist()]
        if target[:2] != shape[:2]:
            raise InvalidArgument(f"MaxUnpool: output_shape {target} must keep X's batch and channels {shape[:2]}")
        out = pad_spatial(out, [0] * n, [t - s for t, s in zip(target[2:], shape[2:])], 0.0)
    return out
