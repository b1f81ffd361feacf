"""Indexing, selection and rearrangement ops: DepthToSpace, SpaceToDepth, CumSum, CumProd, TopK,
Trilu, OneHot, GatherND, ScatterND, ScatterElements, Scatter, NonZero, Compress, Unique,
ReverseSequence, EyeLike. (Einsum, Det, the normalisations, LpPool and Col2Im are in nn.py; the
losses in loss.py.)
"""
from __future__ import annotations

import math

import numpy as np
import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import check_rank, needs_widening, norm_axis, scalar, via_numpy
from tritonnx.runtime.registry import register


@register("DepthToSpace", since=1)
def DepthToSpace(input, *, blocksize, mode="DCR"):
    """ONNX DepthToSpace: (N, C, H, W) -> (N, C / b^2, H * b, W * b), DCR or CRD order."""
    check_rank("DepthToSpace", "input", input, 4)
    n, c, h, w = input.shape
    b = blocksize
    if c % (b * b):
        raise InvalidArgument(f"DepthToSpace: {c} channels is not a multiple of blocksize^2 = {b * b}")
    if mode == "DCR":
        y = input.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    elif mode == "CRD":
        y = input.reshape(n, c // (b * b), b, b, h, w).permute(0, 1, 4, 2, 5, 3)
    else:
        raise InvalidArgument(f"DepthToSpace: mode={mode!r}, expected DCR or CRD")
    return y.reshape(n, c // (b * b), h * b, w * b)


@register("SpaceToDepth", since=1)
def SpaceToDepth(input, *, blocksize, mode="DCR"):
    """ONNX SpaceToDepth: (N, C, H, W) -> (N, C * b^2, H / b, W / b); channel order DCR
    (block offsets outer) or CRD (opset 28: channels outer)."""
    check_rank("SpaceToDepth", "input", input, 4)
    n, c, h, w = input.shape
    b = blocksize
    if h % b or w % b:
        raise InvalidArgument(f"SpaceToDepth: spatial shape {[h, w]} is not a multiple of blocksize {b}")
    y = input.reshape(n, c, h // b, b, w // b, b)
    if mode == "DCR":
        y = y.permute(0, 3, 5, 1, 2, 4)
    elif mode == "CRD":
        y = y.permute(0, 1, 3, 5, 2, 4)
    else:
        raise InvalidArgument(f"SpaceToDepth: mode={mode!r}, expected DCR or CRD")
    return y.reshape(n, c * b * b, h // b, w // b)


@register("CumSum", since=11, host_inputs=(1,))
def CumSum(x, axis, *, exclusive=0, reverse=0):
    """ONNX CumSum along `axis` (a scalar input), optionally exclusive and/or reversed."""
    a = norm_axis(int(scalar(axis)), x.dim(), "CumSum")
    if needs_widening(x):
        def f(v):
            v = np.flip(v, a) if reverse else v
            y = np.cumsum(v, axis=a, dtype=v.dtype)
            y = y - v if exclusive else y
            return np.flip(y, a) if reverse else y
        return via_numpy(f, x)
    v = x.flip(a) if reverse else x
    y = torch.cumsum(v, dim=a).to(x.dtype)
    if exclusive:
        y = y - v
    return y.flip(a) if reverse else y


def _topk(X, k, axis, largest, sorted_):
    a = norm_axis(axis, X.dim(), "TopK")
    if not 0 <= k <= X.shape[a]:
        raise InvalidArgument(f"TopK: K={k} is out of range for axis {a} of size {X.shape[a]}")
    if needs_widening(X):
        def f(v):
            order = np.argsort(-v.astype(np.float64) if largest else v, axis=a, kind="stable")
            idx = np.take(order, np.arange(k), axis=a)
            return np.take_along_axis(v, idx, axis=a), idx
        arr = dtypes.to_numpy(X)
        vals, idx = f(arr)
        return dtypes.from_numpy(vals, X.device), torch.from_numpy(idx.astype(np.int64)).to(X.device)
    vals, idx = torch.sort(X, dim=a, descending=bool(largest), stable=True)
    return vals.narrow(a, 0, k), idx.narrow(a, 0, k)


@register("TopK", since=1, host_inputs=(1,))
def TopK_1(X, *, axis=-1, k):
    """ONNX TopK (opsets 1-9): k as an attribute, largest first."""
    return _topk(X, k, axis, 1, 1)


@register("TopK", since=10, host_inputs=(1,))
def TopK(X, K, *, axis=-1, largest=1, sorted=1):
    """ONNX TopK: the K largest (or smallest) along `axis` with their int64 indices; ties keep
    the lower index first."""
    return _topk(X, int(scalar(K)), axis, largest, sorted)


@register("Trilu", since=14, host_inputs=(1,))
def Trilu(input, k=None, *, upper=1):
    """ONNX Trilu: the upper (or lower) triangle of the last two axes, from diagonal k."""
    diag = 0 if k is None else int(scalar(k))
    if needs_widening(input):
        return via_numpy(lambda x: np.triu(x, diag) if upper else np.tril(x, diag), input)
    return torch.triu(input, diag) if upper else torch.tril(input, diag)


@register("OneHot", since=9, host_inputs=(1,))
def OneHot(indices, depth, values, *, axis=-1):
    """ONNX OneHot: values[1] where the index matches along a new axis, values[0] elsewhere;
    negative indices count from the end, out-of-range ones give an all-off row."""
    d = int(scalar(depth))
    rank = indices.dim() + 1
    a = norm_axis(axis, rank, "OneHot")
    idx = indices.to(torch.float64).floor().long() if indices.dtype.is_floating_point else indices.long()
    idx = torch.where(idx < 0, idx + d, idx)
    hot = idx.unsqueeze(-1) == torch.arange(d, device=indices.device)
    hot = hot.movedim(-1, a)
    off, on = values.reshape(-1)[0], values.reshape(-1)[1]
    return torch.where(hot, on, off)


def _nd_linear(op, data_shape, indices, device):
    """Linear offsets into the first m = indices.shape[-1] axes of `data_shape`."""
    m = indices.shape[-1]
    if m > len(data_shape):
        raise InvalidArgument(f"{op}: indices.shape[-1] = {m} exceeds the data's rank {len(data_shape)}")
    idx = indices.to(device=device, dtype=torch.int64)
    sizes = torch.tensor(list(data_shape[:m]), dtype=torch.int64, device=device)
    idx = torch.where(idx < 0, idx + sizes, idx)
    strides = [math.prod(data_shape[j + 1:m]) for j in range(m)]
    lin = (idx * torch.tensor(strides, dtype=torch.int64, device=device)).sum(-1) if m else \
        torch.zeros(idx.shape[:-1], dtype=torch.int64, device=device)
    return lin, m


@register("GatherND", since=11)
def GatherND(data, indices, *, batch_dims=0):
    """ONNX GatherND: slices of `data` at index tuples of `indices`' last axis, after
    `batch_dims` shared leading axes."""
    b = batch_dims
    batch = math.prod(data.shape[:b])
    inner = data.reshape((batch,) + tuple(data.shape[b:]))
    idx = indices.reshape((batch,) + tuple(indices.shape[b:]))
    lin, m = _nd_linear("GatherND", tuple(inner.shape[1:]), idx, data.device)
    flat = inner.reshape(batch, math.prod(inner.shape[1:m + 1]), *inner.shape[m + 1:])
    rows = torch.arange(batch, device=data.device).reshape([batch] + [1] * (lin.dim() - 1))
    out = flat[rows, lin]
    return out.reshape(tuple(indices.shape[:-1]) + tuple(data.shape[b + m:]))


_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


@register("ScatterND", since=11)
def ScatterND(data, indices, updates, *, reduction="none"):
    """ONNX ScatterND: a copy of `data` with `updates` written (or reduced: add, mul, max,
    min) at the index tuples of `indices`."""
    lin, m = _nd_linear("ScatterND", tuple(data.shape), indices, data.device)
    out = data.clone().reshape(math.prod(data.shape[:m]), *data.shape[m:])
    upd = updates.reshape(-1, *data.shape[m:]).to(data.dtype)
    lin = lin.reshape(-1)
    if reduction == "none":
        out[lin] = upd
    elif reduction in _REDUCE:
        rows = lin.reshape([-1] + [1] * (upd.dim() - 1)).expand(upd.shape)
        out.scatter_reduce_(0, rows, upd, _REDUCE[reduction], include_self=True)
    else:
        raise InvalidArgument(f"ScatterND: reduction={reduction!r}, expected none, add, mul, max or min")
    return out.reshape(data.shape)


@register("ScatterElements", since=11)
def ScatterElements(data, indices, updates, *, axis=0, reduction="none"):
    """ONNX ScatterElements: torch.scatter along `axis` (negative indices from the end),
    with reduction none, add, mul, max or min."""
    a = norm_axis(axis, data.dim(), "ScatterElements")
    idx = indices.to(device=data.device, dtype=torch.int64)
    idx = torch.where(idx < 0, idx + data.shape[a], idx)
    if reduction == "none":
        return data.scatter(a, idx, updates.to(data.dtype))
    if reduction not in _REDUCE:
        raise InvalidArgument(f"ScatterElements: reduction={reduction!r}, expected none, add, mul, max or min")
    return data.scatter_reduce(a, idx, updates.to(data.dtype), _REDUCE[reduction], include_self=True)


@register("Scatter", since=9)
def Scatter(data, indices, updates, *, axis=0):
    """ONNX Scatter (opsets 9-10): ScatterElements without reduction."""
    return ScatterElements(data, indices, updates, axis=axis)


@register("NonZero", since=9)
def NonZero(X):
    """ONNX NonZero: int64 indices (rank, count) of the non-zero elements, row-major order."""
    if X.dim() == 0:
        return torch.zeros((0, int(bool(X.item()))), dtype=torch.int64, device=X.device)
    if needs_widening(X):
        X = via_numpy(lambda x: x != 0, X)
    return torch.nonzero(X).t().contiguous()


@register("Compress", since=9)
def Compress(input, condition, *, axis=None):
    """ONNX Compress: the slices along `axis` (flattened input if none) where condition is true."""
    x = input.reshape(-1) if axis is None else input
    a = 0 if axis is None else norm_axis(axis, input.dim(), "Compress")
    cond = condition.to(torch.bool).reshape(-1)[: x.shape[a]]
    return x.index_select(a, torch.nonzero(cond).reshape(-1).to(x.device))


@register("ReverseSequence", since=10)
def ReverseSequence(input, sequence_lens, *, batch_axis=1, time_axis=0):
    """ONNX ReverseSequence: per batch entry b, reverse the first sequence_lens[b] time steps."""
    t_len = input.shape[time_axis]
    lens = sequence_lens.to(device=input.device, dtype=torch.int64)
    t = torch.arange(t_len, device=input.device)
    src = torch.where(t[None, :] < lens[:, None], lens[:, None] - 1 - t[None, :], t[None, :])  # (B, T)
    if batch_axis > time_axis:
        src = src.t()
    shape = [1] * input.dim()
    shape[batch_axis], shape[time_axis] = input.shape[batch_axis], t_len
    return torch.gather(input, time_axis, src.reshape(shape).expand(input.shape))


@register("EyeLike", since=9)
def EyeLike(input, *, dtype=None, k=0):
    """ONNX EyeLike: a 2-D tensor shaped like `input` with ones on diagonal k."""
    check_rank("EyeLike", "input", input, 2)
    n, m = input.shape
    out_dt = input.dtype if dtype is None else dtypes.torch_dtype(dtype)
    diag = (torch.arange(m, device=input.device)[None, :] - torch.arange(n, device=input.device)[:, None]) == k
    return diag.to(out_dt)


@register("CumProd", since=26, host_inputs=(1,))
def CumProd(x, axis, *, exclusive=0, reverse=0):
    """ONNX CumProd along `axis` (a scalar input), optionally exclusive and/or reversed."""
    a = norm_axis(int(scalar(axis)), x.dim(), "CumProd")
    if needs_widening(x):
        def f(v):
            v = np.flip(v, a) if reverse else v
            y = np.cumprod(v, axis=a, dtype=v.dtype)
            if exclusive:
                y = np.concatenate([np.ones_like(np.take(y, [0], axis=a)), np.take(y, range(v.shape[a] - 1), axis=a)], axis=a)
            return np.flip(y, a) if reverse else y
        return via_numpy(f, x)
    v = x.flip(a) if reverse else x
    y = torch.cumprod(v, dim=a).to(x.dtype)
    if exclusive:
        y = torch.cat([torch.ones_like(y.narrow(a, 0, 1)), y.narrow(a, 0, y.shape[a] - 1)], dim=a)
    return y.flip(a) if reverse else y


@register("Unique", since=11)
def Unique(X, *, axis=None, sorted=1, num_outputs=1):
    """ONNX Unique -> (Y, indices of first occurrences, inverse_indices, counts), over the
    flattened input or slices along `axis`; ascending when ``sorted=1``, else in order of
    first occurrence."""
    x = X.reshape(-1) if axis is None else X
    a = 0 if axis is None else norm_axis(axis, X.dim(), "Unique")
    if needs_widening(x):
        x = x.to(torch.int64) if x.dtype != torch.uint64 else x
    y, inverse, counts = torch.unique(x, sorted=True, return_inverse=True, return_counts=True, dim=a)
    n = x.shape[a]
    first = torch.full((y.shape[a],), n, dtype=torch.int64, device=x.device)
    first = first.scatter_reduce(0, inverse, torch.arange(n, device=x.device), "amin")
    if not sorted:
        order = torch.argsort(first)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(order.numel(), device=order.device)
        y, first, counts, inverse = y.index_select(a, order), first[order], counts[order], rank[inverse]
    return y.to(X.dtype), first, inverse, counts
