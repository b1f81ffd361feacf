"""Run-plan specializations: a built-in handler's call reduced to its torch call, once per plan.

Within one input signature every value a plan's step reads has a fixed dtype and shape (the
plan folds nothing whose shape varies; its guards catch what the walk did not foresee). The
walk that made the plan ran the full handler on exactly those dtypes and shapes, so its
checks passed and its geometry (pads, output shapes, axes) is known. A specializer takes the
recorded input and output metas ``(dtype, shape)`` and the node's keyword arguments and
returns a function of the same positional inputs that makes only the torch call the handler
would make on these inputs (None: keep the handler). Only float32/float64 inputs are
specialized, the dtypes on which the handlers compute directly (no widening, no casts).

Value checks that depend on data (Gather's index range) stay in the specialized function.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch

from tritonnx.runtime.ops import _common, nn, recurrent, shape as shape_ops
from tritonnx.triton_kernels import rnn_reference

FAST_DTYPES = (torch.float32, torch.float64)


def _stand_in(meta) -> torch.Tensor:
    """A storage-free tensor of `meta`'s dtype and shape (what the geometry helpers read)."""
    dtype, shape = meta
    return torch.empty((), dtype=dtype).expand(shape)


def _floats(metas: Sequence, n: int | None = None) -> bool:
    """The first `n` (default all) metas are present, of one dtype in `FAST_DTYPES`."""
    ms = metas[:n] if n is not None else metas
    return bool(ms) and all(m is not None for m in ms) and ms[0][0] in FAST_DTYPES \
        and all(m[0] == ms[0][0] for m in ms)


def _gemm(ins, outs, kw):
    if len(ins) not in (2, 3) or not _floats(ins) or len(ins[0][1]) != 2 or len(ins[1][1]) != 2:
        return None
    alpha, beta = float(kw.get("alpha", 1.0)), float(kw.get("beta", 1.0))
    ta, tb = kw.get("transA", 0), kw.get("transB", 0)
    if len(ins) == 3 and beta != 0:
        if alpha == 1.0 and beta == 1.0:
            if not ta and tb:  # torch's linear: addmm(C, A, B.t()) in one call
                return torch.nn.functional.linear
            if not ta and not tb:
                return lambda A, B, C: torch.addmm(C, A, B)
        return lambda A, B, C: torch.addmm(C, A.t() if ta else A, B.t() if tb else B, beta=beta, alpha=alpha)
    if alpha != 1.0:
        return None
    if not ta and tb:
        return lambda A, B, C=None: torch.nn.functional.linear(A, B)  # mm(A, B.t()) in one call
    return lambda A, B, C=None: torch.mm(A.t() if ta else A, B.t() if tb else B)


def _conv(ins, outs, kw):
    if len(ins) not in (2, 3) or not _floats(ins):
        return None
    x = _stand_in(ins[0])
    w = _stand_in(ins[1])
    n, _, strides, dilations = _common.spatial_defaults("Conv", x, kw.get("kernel_shape"), kw.get("strides"),
                                                        kw.get("dilations"))
    begin, end = _common.conv_pads("Conv", x.shape[2:], w.shape[2:], strides, dilations, kw.get("pads"),
                                   kw.get("auto_pad", "NOTSET"))
    if begin != end or n not in nn._CONV:
        return None
    conv, group = nn._CONV[n], kw.get("group", 1)
    strides, padding, dilations = list(strides), list(begin), list(dilations)
    return lambda X, W, B=None: conv(X, W, B, strides, padding, dilations, group)


def _max_pool(ins, outs, kw):
    if len(ins) != 1 or not _floats(ins) or kw.get("num_outputs", 1) > 1:
        return None
    n, kernel, strides, dilations, begin, _, end_eff, _ = nn.pool_geometry(
        "MaxPool", _stand_in(ins[0]), kw.get("kernel_shape"), kw.get("strides"), kw.get("dilations"),
        kw.get("pads"), kw.get("auto_pad", "NOTSET"), kw.get("ceil_mode", 0))
    if begin != end_eff or not all(b <= k // 2 for b, k in zip(begin, kernel)) or n not in nn._MAX_POOL:
        return None
    pool = nn._MAX_POOL[n]
    kernel, strides, begin, dilations = list(kernel), list(strides), list(begin), list(dilations)
    return lambda X: pool(X, kernel, strides, begin, dilations)


def _relu(ins, outs, kw):
    return (lambda X: torch.clamp_min(X, 0)) if len(ins) == 1 and _floats(ins) else None


def _binary(torch_fn):
    def spec(ins, outs, kw):
        if len(ins) != 2 or not _floats(ins) or kw:
            return None
        return torch_fn
    return spec


def _to_shape(ins, outs, kw):
    """Reshape, Flatten, Squeeze, Unsqueeze: a reshape to the recorded shape."""
    if not ins or ins[0] is None or len(outs) != 1 or outs[0] is None:
        return None
    target = list(outs[0][1])
    return lambda data, *_: data.reshape(target)


def _transpose(ins, outs, kw):
    if len(ins) != 1 or not _floats(ins):
        return None
    perm = list(kw["perm"]) if kw.get("perm") is not None else list(range(len(ins[0][1])))[::-1]
    return lambda data: data.permute(perm)


def _matmul(ins, outs, kw):
    """MatMul on float32/float64 (the dtypes the handler computes in directly): torch.matmul."""
    if len(ins) != 2 or not _floats(ins) or not len(ins[0][1]) or not len(ins[1][1]):
        return None
    return torch.matmul


def _constant_of_shape(ins, outs, kw, values):
    """ConstantOfShape of a constant shape: the handler's fill, its shape and device fixed."""
    if len(ins) != 1 or values[0] is None or outs[0] is None:
        return None
    shape = _common.ints(values[0])
    if any(s < 0 for s in shape) or tuple(shape) != tuple(outs[0][1]):
        return None
    device = kw["device"]
    value = kw.get("value")
    if value is None:
        return lambda *_: torch.zeros(shape, dtype=torch.float32, device=device)
    fill = value.reshape(()).to(device)
    return lambda *_: fill.expand(shape).clone()


def _gather(ins, outs, kw):
    if len(ins) != 2 or not _floats(ins, 1) or ins[1] is None or ins[1][0] not in (torch.int64, torch.int32):
        return None
    rank = len(ins[0][1])
    a = _common.norm_axis(kw.get("axis", 0), rank, "Gather")
    size, target = ins[0][1][a], list(outs[0][1])
    fix = shape_ops._fix_indices

    def gather(data, indices):
        if data.device.type == "cpu" and indices.device.type == "cpu":
            # torch checks the range on the CPU (IndexError, negatives included): indices in
            # range go straight through; the rest take the handler's path (negatives counted
            # from the end, or its out-of-range error)
            try:
                return data.index_select(a, indices.reshape(-1)).reshape(target)
            except IndexError:
                pass
        return data.index_select(a, fix("Gather", indices, size, data.device).reshape(-1)).reshape(target)
    return gather


def _slice(ins, outs, kw, values):
    """Slice with constant starts/ends/axes/steps, every step positive: narrows (step 1) or one
    basic index (the handler's views)."""
    if len(ins) < 3 or ins[0] is None or any(v is None for v in values[1:3]) \
            or any(m is not None and v is None for m, v in zip(ins[3:], values[3:])):
        return None
    starts, ends = _common.ints(values[1]), _common.ints(values[2])
    rank = len(ins[0][1])
    axes = _common.ints(values[3]) if len(values) > 3 and values[3] is not None else list(range(len(starts)))
    steps = _common.ints(values[4]) if len(values) > 4 and values[4] is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps) or any(st <= 0 for st in steps):
        return None
    cuts = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        a = _common.norm_axis(axis, rank, "Slice", "axes")
        dim = ins[0][1][a]
        start = start + dim if start < 0 else start
        end = end + dim if end < 0 else end
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        cuts.append((a, start, end, step) if end > start else (a, 0, 0, 1))
    if all(step == 1 for *_, step in cuts):
        if len(cuts) == 1:
            a, start, end, _ = cuts[0]
            return lambda data, *_: data.narrow(a, start, end - start)

        def narrowed(data, *_):
            for a, start, end, _ in cuts:
                data = data.narrow(a, start, end - start)
            return data
        return narrowed
    index = [slice(None)] * rank
    for a, start, end, step in cuts:
        index[a] = slice(start, end, step)
    index = tuple(index)
    return lambda data, *_: data[index]


def _recurrent(cell: str):
    """LSTM / GRU / RNN on torch's fused function with the prepared weights: forward or
    bidirectional, layout 0, no sequence_lens, float32/float64, where the handler takes that path."""
    def spec(ins, outs, kw):
        prepared = kw.get("prepared")
        if prepared is None or not ins or ins[0] is None or ins[0][0] not in FAST_DTYPES:
            return None
        if prepared.dtype != ins[0][0] or kw.get("layout", 0) != 0 or kw.get("direction", "forward") == "reverse":
            return None
        if len(ins) > 4 and ins[4] is not None or cell == "LSTM" and len(ins) > 7 and ins[7] is not None:
            return None
        attrs = {k: kw.get(k) for k in ("activations", "clip", "direction") if kw.get(k) is not None}
        if cell == "LSTM":
            attrs["input_forget"] = kw.get("input_forget", 0)
        if cell == "GRU":
            attrs["linear_before_reset"] = kw.get("linear_before_reset", 0)
        kind = recurrent.torch_kind(cell, **attrs)
        if kind is None:
            return None
        x, w, r = ins[0][1], ins[1][1], ins[2][1]
        nd = 2 if kw.get("direction") == "bidirectional" else 1
        gates, hidden = rnn_reference.GATES[cell], r[-1]
        seq, batch = x[0], x[1]
        hidden_size = kw.get("hidden_size")
        if len(x) != 3 or len(w) != 3 or len(r) != 3 or (hidden_size is not None and hidden_size != hidden) \
                or tuple(w) != (nd, gates * hidden, x[2]) or tuple(r) != (nd, gates * hidden, hidden) \
                or (len(ins) > 3 and ins[3] is not None and tuple(ins[3][1]) != (nd, 2 * gates * hidden)):
            return None
        n_states = 2 if cell == "LSTM" else 1
        states = [ins[5 + i] if len(ins) > 5 + i else None for i in range(n_states)]
        if any(m is not None and (m[0] != ins[0][0] or tuple(m[1]) != (nd, batch, hidden)) for m in states):
            return None
        fn, params, bidirectional = getattr(torch, kind), prepared.params, nd == 2

        def run(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, *_):
            h0 = initial_h.contiguous() if initial_h is not None else X.new_zeros(nd, batch, hidden)
            if cell == "LSTM":
                c0 = initial_c.contiguous() if initial_c is not None else X.new_zeros(nd, batch, hidden)
                out = fn(X, (h0, c0), params, True, 1, 0.0, False, bidirectional, False)
            else:
                out = fn(X, h0, params, True, 1, 0.0, False, bidirectional, False)
            if nd == 1:  # [seq, batch, hidden] is already ONNX's [seq, 1, batch, hidden] (one view)
                return (out[0].unsqueeze(1), *(h.contiguous() for h in out[1:]))
            y = out[0].view(seq, batch, nd, hidden).transpose(1, 2).contiguous()
            return (y, *(h.contiguous() for h in out[1:]))
        return run
    return spec


#: ops whose specialized function returns a tuple (one tensor per output)
RETURNS_TUPLE = frozenset({"LSTM", "GRU", "RNN"})
#: specializers that also read the constant inputs' values
WITH_VALUES = {"Slice": _slice, "ConstantOfShape": _constant_of_shape}

#: op type -> specializer(input metas, output metas, kwargs) -> function or None.
SPECIALIZERS: Mapping[str, Callable] = {
    "Gemm": _gemm, "Conv": _conv, "MaxPool": _max_pool, "Relu": _relu,
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": _binary(torch.div),
    "Reshape": _to_shape, "Flatten": _to_shape, "Squeeze": _to_shape, "Unsqueeze": _to_shape,
    "Transpose": _transpose, "Gather": _gather, "MatMul": _matmul,
    "LSTM": _recurrent("LSTM"), "GRU": _recurrent("GRU"), "RNN": _recurrent("RNN"),
}


def specialize(step, ins: Sequence, outs: Sequence, kwargs: Mapping[str, Any],
               values: Sequence = ()) -> Callable | None:
    """The specialized function of a built-in standard-domain `step` (None: run its handler).
    `ins`/`outs`: the recorded (dtype, shape) metas; `values`: the plan's constant inputs
    (None where an input is computed per run)."""
    spec = WITH_VALUES.get(step.op_type)
    if spec is not None:
        values = tuple(values) + (None,) * (len(ins) - len(values))
        ctx_device = getattr(kwargs.get("ctx"), "device", None)
        first = values[0] if values else None
        device = torch.device(ctx_device) if ctx_device is not None else (
            first.device if isinstance(first, torch.Tensor) else torch.device("cpu"))  # as the handlers' _device
        return _call(spec, step, ins, outs, {**kwargs, "device": device}, values)
    spec = SPECIALIZERS.get(step.op_type)
    return _call(spec, step, ins, outs, kwargs)


def _call(spec, step, ins, outs, kwargs, *more) -> Callable | None:
    if spec is None or step.domain != "" or not getattr(step.impl.fn, "__module__", "").startswith(
            "tritonnx.runtime.ops."):
        return None
    kw = {k: v for k, v in kwargs.items() if k != "ctx"}
    try:
        return spec(tuple(ins), tuple(outs), kw, *more)
    except Exception:  # noqa: BLE001 - a geometry the helpers refuse: the handler says why at run time
        return None
