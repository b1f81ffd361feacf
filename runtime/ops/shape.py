"""Shape and data-movement ops: Reshape, Flatten, Transpose, Concat, Split, Slice, Squeeze,
Unsqueeze, Gather, GatherElements, Shape, Size, Constant, ConstantOfShape, Expand, Range, Pad,
Tile.

Data-dependent shape inputs (Reshape's shape, Slice's starts, Pad's pads, ...) are read with
``.tolist()``. Ops that only move data return views where torch gives them.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import ints, needs_widening, norm_axis, scalar, via_numpy
from tritonnx.runtime.registry import register


def _device(ctx, *ts):
    """The session's device when known, else the first tensor's, else the CPU."""
    dev = getattr(ctx, "device", None)
    if dev is not None:
        return torch.device(dev)
    for t in ts:
        if isinstance(t, torch.Tensor):
            return t.device
    return torch.device("cpu")


# --- Reshape, Flatten, Transpose, Squeeze, Unsqueeze -----------------------------------------

def _reshape(data: torch.Tensor, shape: list[int], allowzero: int) -> torch.Tensor:
    out = list(shape)
    if not allowzero:
        for i, s in enumerate(out):
            if s == 0:
                if i >= data.dim():
                    raise InvalidArgument(f"Reshape: shape[{i}] = 0 copies a dimension the data (rank {data.dim()}) lacks")
                out[i] = data.shape[i]
    if out.count(-1) > 1:
        raise InvalidArgument(f"Reshape: shape {shape} has more than one -1")
    known = math.prod(s for s in out if s != -1)
    if -1 in out:
        if known == 0 or data.numel() % known:
            raise InvalidArgument(f"Reshape: cannot reshape data of shape {list(data.shape)} to {shape}")
        out[out.index(-1)] = data.numel() // known
    elif known != data.numel():
        raise InvalidArgument(
            f"Reshape: data of shape {list(data.shape)} ({data.numel()} elements) cannot take shape {shape} ({known} elements)"
        )
    return data.reshape(out)


@register("Reshape", since=1, host_inputs=(1,), host_chain=True)
def Reshape_1(data, *, shape=None, consumed_inputs=None):
    """ONNX Reshape (opsets 1-4): the target shape as an attribute."""
    return _reshape(data, ints(shape) or [], 0)


@register("Reshape", since=5, host_inputs=(1,), host_chain=True)
def Reshape(data, shape, *, allowzero=0):
    """ONNX Reshape: 0 copies the input's dimension (unless ``allowzero``), -1 is inferred."""
    return _reshape(data, ints(shape), allowzero)


@register("Flatten", since=1)
def Flatten(input, *, axis=1):
    """ONNX Flatten: to 2-D (prod(shape[:axis]), prod(shape[axis:]))."""
    r = input.dim()
    if not -r <= axis <= r:
        raise InvalidArgument(f"Flatten: axis={axis} is out of range for an input of rank {r}")
    a = axis % r if axis < 0 else axis
    return input.reshape(math.prod(input.shape[:a]), math.prod(input.shape[a:]))


@register("Transpose", since=1)
def Transpose(data, *, perm=None):
    """ONNX Transpose: axes permuted by `perm` (default: reversed)."""
    perm = list(perm) if perm is not None else list(range(data.dim()))[::-1]
    if sorted(perm) != list(range(data.dim())):
        raise InvalidArgument(f"Transpose: perm={perm} is not a permutation of the {data.dim()} axes of data")
    return data.permute(perm)


def _squeeze(data: torch.Tensor, axes) -> torch.Tensor:
    if axes is None:
        return data.reshape([s for s in data.shape if s != 1])
    axes = sorted({norm_axis(a, data.dim(), "Squeeze", "axes") for a in ints(axes)})
    for a in axes:
        if data.shape[a] != 1:
            raise InvalidArgument(f"Squeeze: axis {a} of data {list(data.shape)} has size {data.shape[a]}, expected 1")
    return data.reshape([s for i, s in enumerate(data.shape) if i not in axes])


@register("Squeeze", since=1, host_inputs=(1,), host_chain=True)
def Squeeze_1(data, *, axes=None):
    """ONNX Squeeze (opsets 1-12): axes as an attribute."""
    return _squeeze(data, axes)


@register("Squeeze", since=13, host_inputs=(1,), host_chain=True)
def Squeeze(data, axes=None):
    """ONNX Squeeze (opset 13+): axes as an optional input; none: every size-1 axis."""
    return _squeeze(data, axes)


def _unsqueeze(data: torch.Tensor, axes) -> torch.Tensor:
    axes = ints(axes)
    rank = data.dim() + len(axes)
    norm = sorted(norm_axis(a, rank, "Unsqueeze", "axes") for a in axes)
    if len(set(norm)) != len(norm):
        raise InvalidArgument(f"Unsqueeze: axes {axes} repeat an axis")
    shape = list(data.shape)
    for a in norm:
        shape.insert(a, 1)
    return data.reshape(shape)


@register("Unsqueeze", since=1, host_inputs=(1,), host_chain=True)
def Unsqueeze_1(data, *, axes):
    """ONNX Unsqueeze (opsets 1-12): axes as an attribute."""
    return _unsqueeze(data, axes)


@register("Unsqueeze", since=13, host_inputs=(1,), host_chain=True)
def Unsqueeze(data, axes):
    """ONNX Unsqueeze (opset 13+): axes as an input, relative to the output's rank."""
    return _unsqueeze(data, axes)


# --- Concat, Split, Slice, Gather ------------------------------------------------------------

@register("Concat", since=1, host_chain=True)
def Concat(*inputs, axis=1):
    """ONNX Concat along `axis` (required from opset 4; default 1 before)."""
    if not inputs:
        raise InvalidArgument("Concat: needs at least one input, got none")
    rank = inputs[0].dim()
    a = norm_axis(axis, rank, "Concat")
    for i, t in enumerate(inputs):
        if t.dim() != rank or t.dtype != inputs[0].dtype:
            raise InvalidArgument(
                f"Concat: input {i} has shape {list(t.shape)} and dtype {t.dtype}, "
                f"expected rank {rank} and dtype {inputs[0].dtype} (input 0's)"
            )
    if needs_widening(*inputs):
        return via_numpy(lambda *xs: np.concatenate(xs, axis=a), *inputs)
    return torch.cat(inputs, dim=a)


def _split(op, input, axis, split, num_outputs):
    a = norm_axis(axis, input.dim(), op)
    size = input.shape[a]
    if split is None:
        chunk = math.ceil(size / num_outputs)
        split = [min(chunk, max(size - i * chunk, 0)) for i in range(num_outputs)]
    split = ints(split)
    if sum(split) != size:
        raise InvalidArgument(f"{op}: split {split} sums to {sum(split)}, expected axis {a}'s size {size}")
    return tuple(torch.split(input, split, dim=a))


@register("Split", since=1, host_inputs=(1,))
def Split(input, split=None, *, axis=0, num_outputs=1):
    """ONNX Split along `axis`: `split` (an attribute in opsets 2-12, an input otherwise) gives
    the part sizes; none: ceil-sized parts, the last smaller (opset 18's ``num_outputs``)."""
    return _split("Split", input, axis, split, num_outputs)


def _slice(data, starts, ends, axes, steps):
    starts, ends = ints(starts), ints(ends)
    axes = ints(axes) if axes is not None else list(range(len(starts)))
    steps = ints(steps) if steps is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise InvalidArgument(
            f"Slice: starts {starts}, ends {ends}, axes {axes} and steps {steps} must have the same length"
        )
    out = data
    for start, end, axis, step in zip(starts, ends, axes, steps):
        a = norm_axis(axis, data.dim(), "Slice", "axes")
        dim = data.shape[a]
        if step == 0:
            raise InvalidArgument(f"Slice: steps[{a}] is 0")
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), dim), min(max(end, 0), dim)
            if end <= start:
                out = out.narrow(a, 0, 0)
            else:
                out = out.narrow(a, start, end - start)[(slice(None),) * a + (slice(None, None, step),)]
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            idx = torch.arange(start, end, step, device=data.device)
            out = out.index_select(a, idx)
    return out


@register("Slice", since=1, host_inputs=(1, 2, 3, 4), host_chain=True)
def Slice_1(data, *, axes=None, ends, starts):
    """ONNX Slice (opsets 1-9): starts/ends/axes as attributes."""
    return _slice(data, starts, ends, axes, None)


@register("Slice", since=10, host_inputs=(1, 2, 3, 4), host_chain=True)
def Slice(data, starts, ends, axes=None, steps=None):
    """ONNX Slice (opset 10+): clamped starts/ends, negative axes and steps."""
    return _slice(data, starts, ends, axes, steps)


def _fix_indices(op: str, indices: torch.Tensor, size: int, device) -> torch.Tensor:
    """int64 indices on `device`, negatives counted from the end; checked on the CPU only
    (a check on the GPU would sync with the host; torch's own index check fires there)."""
    idx = indices.to(device=device, dtype=torch.int64)
    if idx.device.type != "cpu":
        return torch.where(idx < 0, idx + size, idx)
    if not idx.numel():
        return idx
    lo, hi = (int(v) for v in torch.aminmax(idx))  # one pass; negatives shifted only when there are any
    if lo < -size or hi >= size:
        bad = indices.reshape(-1)[((idx < -size) | (idx >= size)).reshape(-1)][0].item()
        raise InvalidArgument(f"{op}: index {bad} is out of range for an axis of size {size}")
    return torch.where(idx < 0, idx + size, idx) if lo < 0 else idx


@register("Gather", since=1, host_chain=True)
def Gather(data, indices, *, axis=0):
    """ONNX Gather: data.take(indices, axis) with negative indices counted from the end."""
    a = norm_axis(axis, data.dim(), "Gather")
    idx = _fix_indices("Gather", indices, data.shape[a], data.device)
    out = data.index_select(a, idx.reshape(-1))
    return out.reshape(list(data.shape[:a]) + list(indices.shape) + list(data.shape[a + 1:]))


@register("GatherElements", since=11)
def GatherElements(data, indices, *, axis=0):
    """ONNX GatherElements: torch.gather with negative indices counted from the end."""
    a = norm_axis(axis, data.dim(), "GatherElements")
    idx = _fix_indices("GatherElements", indices, data.shape[a], data.device)
    if needs_widening(data):
        return via_numpy(lambda x, i: np.take_along_axis(x, i, axis=a), data, idx)
    return torch.gather(data, a, idx)


# --- Shape, Size, Constant, ConstantOfShape, Range, Expand, Tile -----------------------------

@register("Shape", since=1)
def Shape(data, *, start=0, end=None):
    """ONNX Shape: int64 1-D shape, sliced by start/end (opset 15) with clamping."""
    r = data.dim()
    s = start + r if start < 0 else start
    e = r if end is None else (end + r if end < 0 else end)
    s, e = min(max(s, 0), r), min(max(e, 0), r)
    return torch.tensor(list(data.shape[s:e]), dtype=torch.int64, device=data.device)


@register("Size", since=1)
def Size(data):
    """ONNX Size: the element count as an int64 scalar."""
    return torch.tensor(data.numel(), dtype=torch.int64, device=data.device)


@register("Constant", since=1)
def Constant(*, value=None, value_float=None, value_floats=None, value_int=None, value_ints=None,
             value_string=None, value_strings=None, sparse_value=None, ctx=None):
    """ONNX Constant: exactly one of the value attributes."""
    dev = _device(ctx)
    if value is not None:
        return value.to(dev)
    if value_float is not None:
        return torch.tensor(value_float, dtype=torch.float32, device=dev)
    if value_floats is not None:
        return torch.tensor(list(value_floats), dtype=torch.float32, device=dev)
    if value_int is not None:
        return torch.tensor(value_int, dtype=torch.int64, device=dev)
    if value_ints is not None:
        return torch.tensor(list(value_ints), dtype=torch.int64, device=dev)
    if value_string is not None or value_strings is not None:
        raise NotImplemented("Constant: string values are not supported (torch has no string dtype)")
    if sparse_value is not None:
        raise NotImplemented("Constant: sparse_value is not supported")
    raise InvalidArgument("Constant: no value attribute given")


@register("ConstantOfShape", since=9, host_inputs=(0,))
def ConstantOfShape(input, *, value=None, ctx=None):
    """ONNX ConstantOfShape: a tensor of shape `input` filled with `value` (default float32 0)."""
    shape = ints(input)
    if any(s < 0 for s in shape):
        raise InvalidArgument(f"ConstantOfShape: shape {shape} has a negative dimension")
    dev = _device(ctx, input)
    if value is None:
        return torch.zeros(shape, dtype=torch.float32, device=dev)
    return value.reshape(()).to(dev).expand(shape).clone()


@register("Range", since=11, host_chain=True, syncs=(0, 1, 2))
def Range(start, limit, delta):
    """ONNX Range: start + i * delta for i < max(ceil((limit - start) / delta), 0)."""
    if not start.dtype == limit.dtype == delta.dtype:
        raise InvalidArgument(
            f"Range: start ({start.dtype}), limit ({limit.dtype}) and delta ({delta.dtype}) must share a dtype"
        )
    s, l, d = (scalar(t) for t in (start, limit, delta))
    if d == 0:
        raise InvalidArgument("Range: delta is 0")
    n = max(math.ceil((l - s) / d), 0)
    if start.dtype.is_floating_point:
        calc = torch.float64
        out = torch.arange(n, dtype=calc, device=start.device) * d + s
        return out.to(start.dtype)
    if needs_widening(start):
        return via_numpy(lambda x: np.arange(n, dtype=x.dtype) * x.dtype.type(d) + x.dtype.type(s), start)
    return (torch.arange(n, dtype=torch.int64, device=start.device) * int(d) + int(s)).to(start.dtype)


@register("Expand", since=8, host_inputs=(1,))
def Expand(input, shape):
    """ONNX Expand: numpy-style bidirectional broadcast of `input` with `shape`."""
    target = ints(shape)
    try:
        out_shape = np.broadcast_shapes(tuple(input.shape), tuple(target))
    except ValueError:
        raise InvalidArgument(f"Expand: input shape {list(input.shape)} cannot broadcast with {target}") from None
    return input.expand(out_shape)


@register("Tile", since=6, host_inputs=(1,))
def Tile(input, repeats):
    """ONNX Tile: input repeated `repeats[i]` times along axis i."""
    reps = ints(repeats)
    if len(reps) != input.dim():
        raise InvalidArgument(f"Tile: repeats has {len(reps)} values, expected the input's rank {input.dim()}")
    if needs_widening(input):
        return via_numpy(lambda x: np.tile(x, reps), input)
    return input.repeat(reps)


# --- Pad -------------------------------------------------------------------------------------

def _pad_index(mode: str, dim: int, begin: int, end: int, device) -> torch.Tensor:
    idx = torch.arange(-begin, dim + end, device=device)
    if mode == "edge":
        return idx.clamp(0, dim - 1)
    if mode == "wrap":
        return idx % dim
    if dim == 1:
        return torch.zeros_like(idx)
    period = 2 * (dim - 1)
    m = idx % period
    return torch.where(m < dim, m, period - m)


def _pad(op, data, pads, mode, value, axes):
    pads = ints(pads)
    rank = data.dim()
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank, op, "axes") for a in ints(axes)]
    if len(pads) != 2 * len(axes):
        raise InvalidArgument(f"{op}: pads has {len(pads)} values, expected {2 * len(axes)} (2 per axis)")
    begin = dict(zip(axes, pads[: len(axes)]))
    end = dict(zip(axes, pads[len(axes):]))
    if mode == "constant":
        spec: list[int] = []
        for a in reversed(range(rank)):
            spec += [begin.get(a, 0), end.get(a, 0)]
        if needs_widening(data):
            return via_numpy(lambda x: _np_const_pad(x, begin, end, value), data)
        if value is not None and value.device.type != "cpu":  # no host sync: pad 0, add value * mask
            zero = F.pad(data, spec, mode="constant", value=0)
            mask = F.pad(torch.zeros_like(data), spec, mode="constant", value=1)
            return zero + mask * value.to(data.dtype).reshape(())
        v = 0 if value is None else scalar(value)
        return F.pad(data, spec, mode="constant", value=v)
    if mode not in ("reflect", "edge", "wrap"):
        raise InvalidArgument(f"{op}: mode={mode!r}, expected constant, reflect, edge or wrap")
    out = data
    for a in axes:
        b, e = begin[a], end[a]
        if b or e:
            if data.shape[a] == 0:
                raise InvalidArgument(f"{op}: mode {mode!r} cannot pad axis {a} of size 0")
            out = out.index_select(a, _pad_index(mode, data.shape[a], b, e, data.device))
    return out


def _np_const_pad(x, begin, end, value):
    crop = tuple(slice(max(-begin.get(a, 0), 0), x.shape[a] - max(-end.get(a, 0), 0)) for a in range(x.ndim))
    x = x[crop]
    width = [(max(begin.get(a, 0), 0), max(end.get(a, 0), 0)) for a in range(x.ndim)]
    return np.pad(x, width, mode="constant", constant_values=0 if value is None else value.item())


@register("Pad", since=1, host_inputs=(1, 2, 3))
def Pad_1(data, *, mode="constant", pads=None, paddings=None, value=0.0):
    """ONNX Pad (opsets 1-10): pads (``paddings`` in opset 1) and value as attributes."""
    p = pads if pads is not None else paddings
    return _pad("Pad", data, p, mode, torch.tensor(value, dtype=data.dtype) if mode == "constant" else None, None)


@register("Pad", since=11, host_inputs=(1, 2, 3))
def Pad(data, pads, constant_value=None, axes=None, *, mode="constant"):
    """ONNX Pad (opset 11+; axes from 18, wrap from 19): negative pads crop."""
    return _pad("Pad", data, pads, mode, constant_value, axes)




@register("CenterCropPad", since=18, host_inputs=(1,))
def CenterCropPad(input_data, shape, *, axes=None):
    """ONNX CenterCropPad: crop (start rounded down) or zero-pad (extra on the right) each
    listed axis to `shape` around the centre."""
    target = ints(shape)
    rank = input_data.dim()
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank, "CenterCropPad", "axes") for a in axes]
    if len(target) != len(axes):
        raise InvalidArgument(f"CenterCropPad: shape has {len(target)} values, expected {len(axes)} (one per axis)")
    out = input_data
    for a, t in zip(axes, target):
        s = out.shape[a]
        if s > t:
            out = out.narrow(a, (s - t) // 2, t)
        elif s < t:
            begin = (t - s) // 2
            spec = [0, 0] * (rank - 1 - a) + [begin, t - s - begin]
            out = F.pad(out, spec)
    return out


@register("BitCast", since=26)
def BitCast(input, *, to):
    """ONNX BitCast: the same bits read as element type `to` (same width)."""
    if to not in dtypes.ONNX_TO_TORCH:
        raise NotImplemented(f"BitCast: to={dtypes.onnx_type_name(to)} has no torch dtype")
    out_dt = dtypes.ONNX_TO_TORCH[to]
    if out_dt.itemsize != input.dtype.itemsize:
        raise InvalidArgument(f"BitCast: {input.dtype} and {out_dt} have different widths")
    return input.contiguous().view(out_dt)
