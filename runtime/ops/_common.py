"""Helpers shared by the handler modules: attribute/input normalisation, padding arithmetic,
and the dtype work-arounds torch needs (uint16/32/64 lack most arithmetic in torch)."""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes

#: Unsigned dtypes torch stores but cannot do arithmetic or comparisons on.
LIMITED_UNSIGNED = dtypes.LIMITED_UNSIGNED


def ints(value) -> list[int] | None:
    """An int list from an attribute list, a 1-D (or 0-D) tensor input, or None."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    return [int(v) for v in value]


def scalar(value):
    """A Python number from a 0-D/1-element tensor or a number."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise InvalidArgument(f"expected a scalar (one element), got shape {list(value.shape)}")
        return value.reshape(()).item()
    return value


def norm_axis(axis: int, rank: int, op: str, what: str = "axis") -> int:
    """A possibly negative axis as an index in [0, rank), or `InvalidArgument`."""
    if not -rank <= axis < max(rank, 1):
        raise InvalidArgument(f"{op}: {what}={axis} is out of range for an input of rank {rank}")
    return axis % rank if rank else 0


def needs_widening(*ts: torch.Tensor | None) -> bool:
    return any(t is not None and t.dtype in LIMITED_UNSIGNED for t in ts)


def via_numpy(fn: Callable[..., np.ndarray], *ts: torch.Tensor | None, device=None) -> torch.Tensor:
    """Compute `fn` on numpy views of `ts` and return a torch tensor on their device.

    Used for the unsigned dtypes torch lacks arithmetic for (uint16/32/64), where numpy's
    semantics (wrap-around, unsigned compare, floor division) are exactly ONNX's.
    """
    dev = device or next(t.device for t in ts if t is not None)
    arrs = [None if t is None else dtypes.to_numpy(t) for t in ts]
    out = np.asarray(fn(*arrs))
    return dtypes.from_numpy(out, dev)


def conv_pads(
    op: str,
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    auto_pad: str,
) -> tuple[list[int], list[int]]:
    """Begin and end padding per spatial axis, from explicit `pads` or `auto_pad` (floor mode)."""
    n = len(in_spatial)
    if auto_pad in ("NOTSET", ""):
        p = list(pads) if pads else [0] * (2 * n)
        if len(p) != 2 * n:
            raise InvalidArgument(f"{op}: pads has {len(p)} values, expected {2 * n} for {n} spatial axes")
        return p[:n], p[n:]
    if auto_pad == "VALID":
        return [0] * n, [0] * n
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for size, k, s, d in zip(in_spatial, kernel, strides, dilations):
            out = math.ceil(size / s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else big)
            end.append(big if auto_pad == "SAME_UPPER" else small)
        return begin, end
    raise InvalidArgument(f"{op}: auto_pad={auto_pad!r}, expected NOTSET, SAME_UPPER, SAME_LOWER or VALID")


def spatial_defaults(op: str, x: torch.Tensor, kernel_shape, strides, dilations):
    """Fill the defaults of kernel_shape/strides/dilations for an N-D (N = rank - 2) input."""
    n = x.dim() - 2
    if n < 1:
        raise InvalidArgument(f"{op}: input X has rank {x.dim()}, expected at least 3 (N, C, spatial...)")
    if n > 3:
        raise NotImplemented(f"{op}: {n} spatial axes; supported: 1, 2 or 3")
    kernel = list(kernel_shape) if kernel_shape else None
    strides = list(strides) if strides else [1] * n
    dilations = list(dilations) if dilations else [1] * n
    for name, v in (("strides", strides), ("dilations", dilations)):
        if len(v) != n:
            raise InvalidArgument(f"{op}: {name} has {len(v)} values, expected {n}")
    return n, kernel, strides, dilations


def pad_spatial(x: torch.Tensor, begin: Sequence[int], end: Sequence[int], value: float) -> torch.Tensor:
    """Pad (or crop, for negative values) the trailing spatial axes of `x`."""
    if not any(begin) and not any(end):
        return x
    spec: list[int] = []
    for b, e in zip(reversed(begin), reversed(end)):
        spec += [b, e]
    return torch.nn.functional.pad(x, spec, mode="constant", value=value)


def check_rank(op: str, name: str, t: torch.Tensor, expected: int | Sequence[int]) -> None:
    ok = (t.dim() in expected) if isinstance(expected, (list, tuple, range)) else t.dim() == expected
    if not ok:
        raise InvalidArgument(f"{op}: input {name} has rank {t.dim()} (shape {list(t.shape)}), expected {expected}")
