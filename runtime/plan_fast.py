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

from tritonnx.runtime.ops import _common, nn, shape as shape_ops

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
            if not ta and tb:
                return lambda A, B, C: torch.addmm(C, A, B.t())
            if not ta and not tb:
                return lambda A, B, C: torch.addmm(C, A, B)
        return lambda A, B, C: torch.addmm(C, A.t() if ta else A, B.t() if tb else B, beta=beta, alpha=alpha)
    if alpha != 1.0:
        return None
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
    n, kernel, strides, dilations, begin, _, end_eff, _ = nn._pool_geometry(
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
    """Reshape, Flatten, Squeeze, Unsqueeze on a float tensor: a reshape to the recorded shape."""
    if not ins or not _floats(ins, 1) or len(outs) != 1 or outs[0] is None:
        return None
    target = list(outs[0][1])
    return lambda data, *_: data.reshape(target)


def _transpose(ins, outs, kw):
    if len(ins) != 1 or not _floats(ins):
        return None
    perm = list(kw["perm"]) if kw.get("perm") is not None else list(range(len(ins[0][1])))[::-1]
    return lambda data: data.permute(perm)


def _gather(ins, outs, kw):
    if len(ins) != 2 or not _floats(ins, 1) or ins[1] is None or ins[1][0] not in (torch.int64, torch.int32):
        return None
    rank = len(ins[0][1])
    a = _common.norm_axis(kw.get("axis", 0), rank, "Gather")
    size, target = ins[0][1][a], list(outs[0][1])
    fix = shape_ops._fix_indices
    return lambda data, indices: data.index_select(a, fix("Gather", indices, size, data.device).reshape(-1)) \
        .reshape(target)


#: op type -> specializer(input metas, output metas, kwargs) -> function or None.
SPECIALIZERS: Mapping[str, Callable] = {
    "Gemm": _gemm, "Conv": _conv, "MaxPool": _max_pool, "Relu": _relu,
    "Add": _binary(torch.add), "Sub": _binary(torch.sub), "Mul": _binary(torch.mul),
    "Div": _binary(torch.div),
    "Reshape": _to_shape, "Flatten": _to_shape, "Squeeze": _to_shape, "Unsqueeze": _to_shape,
    "Transpose": _transpose, "Gather": _gather,
}


def specialize(step, ins: Sequence, outs: Sequence, kwargs: Mapping[str, Any]) -> Callable | None:
    """The specialized function of a built-in standard-domain `step` (None: run its handler)."""
    spec = SPECIALIZERS.get(step.op_type)
    if spec is None or step.domain != "" or not getattr(step.impl.fn, "__module__", "").startswith(
            "tritonnx.runtime.ops."):
        return None
    kw = {k: v for k, v in kwargs.items() if k != "ctx"}
    try:
        return spec(tuple(ins), tuple(outs), kw)
    except Exception:  # noqa: BLE001 - a geometry the helpers refuse: the handler says why at run time
        return None
