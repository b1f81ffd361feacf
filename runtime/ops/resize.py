"""Resize (opsets 10-19) and Upsample (opsets 7-9): separable N-D interpolation.

Each resized axis is done on its own: for every output position o, a source coordinate x
(the ``coordinate_transformation_mode``), a set of taps ``base + i`` with ``base = ceil(x) - 1``
and ``r = x - base`` in (0, 1], and one weight per tap:
- nearest: taps (base, base + 1), weight 1 on the one ``nearest_mode`` picks;
- linear: (1 - r, r); cubic: Keys' kernel with ``cubic_coeff_a`` on 4 taps;
- with ``antialias=1`` when downsampling by s < 1, the kernel stretched by 1 / s (normalised).
Taps outside the input clamp to the edge, or get weight 0 (renormalised) with
``exclude_outside=1``; ``tf_crop_and_resize`` positions outside the input take
``extrapolation_value``. Opset 10 and Upsample: asymmetric coordinates, nearest rounds down
when upsampling and up when downsampling (onnxruntime's rule for those opsets).
"""
from __future__ import annotations

import math

import torch

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime.registry import register

_MODES = ("nearest", "linear", "cubic")
_COORD_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                "asymmetric", "tf_crop_and_resize", "tf_half_pixel_for_nn")


def _floats(t) -> list[float] | None:
    if t is None:
        return None
    vals = t.reshape(-1).tolist() if isinstance(t, torch.Tensor) else list(t)
    return [float(v) for v in vals] or None


def _source_coords(mode, out_len, in_len, scale, roi_lo, roi_hi):
    o = torch.arange(out_len, dtype=torch.float64)
    out_f = scale * in_len
    if mode == "align_corners":
        x = torch.zeros_like(o) if out_f == 1 else o * (in_len - 1) / (out_f - 1)
    elif mode == "asymmetric":
        x = o / scale
    elif mode == "tf_half_pixel_for_nn":
        x = (o + 0.5) / scale
    elif mode == "tf_crop_and_resize":
        if out_f == 1:
            x = torch.full_like(o, (roi_hi - roi_lo) * (in_len - 1) / 2)
        else:
            x = o * (roi_hi - roi_lo) * (in_len - 1) / (out_f - 1)
        x = x + roi_lo * (in_len - 1)
    elif mode == "pytorch_half_pixel":
        x = torch.full_like(o, -0.5) if out_f == 1 else (o + 0.5) / scale - 0.5
    elif mode == "half_pixel":
        x = (o + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_f)
        x = offset + (o + 0.5) / scale - 0.5
    else:
        raise InvalidArgument(f"Resize: coordinate_transformation_mode={mode!r}, expected one of {', '.join(_COORD_MODES)}")
    return x


def _cubic(d: torch.Tensor, a: float) -> torch.Tensor:
    d = d.abs()
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return torch.where(d <= 1, near, torch.where(d < 2, far, torch.zeros_like(d)))


def _taps(x, mode, nearest_mode, scale, antialias, cubic_a, legacy_nearest):
    """(offsets from base, weights (out, taps)) for source coordinates x."""
    base = torch.ceil(x) - 1
    r = x - base  # in (0, 1]
    if mode == "nearest":
        if legacy_nearest:  # opset < 11: truncate when upsampling, ceil when downsampling
            pick = torch.ceil(x) if scale < 1 else torch.floor(x)
            w1 = (pick > base).to(torch.float64)
        elif nearest_mode == "round_prefer_floor":
            w1 = (r > 0.5).to(torch.float64)
        elif nearest_mode == "round_prefer_ceil":
            w1 = (r >= 0.5).to(torch.float64)
        elif nearest_mode == "floor":
            w1 = (r == 1).to(torch.float64)
        elif nearest_mode == "ceil":
            w1 = torch.ones_like(r)
        else:
            raise InvalidArgument(
                f"Resize: nearest_mode={nearest_mode!r}, expected round_prefer_floor, round_prefer_ceil, floor or ceil"
            )
        return torch.tensor([0, 1]), torch.stack([1 - w1, w1], dim=1), base
    s = min(scale, 1.0) if antialias else 1.0
    if mode == "linear":
        start = math.floor(-1 / s) + 1
        offsets = torch.arange(start, 2 - start)
        w = (1 - ((offsets[None, :] - r[:, None]) * s).abs()).clamp(min=0)
    elif mode == "cubic":
        start = math.floor(-2 / s) + 1
        offsets = torch.arange(start, 2 - start)
        w = _cubic((offsets[None, :] - r[:, None]) * s, cubic_a)
    else:
        raise InvalidArgument(f"Resize: mode={mode!r}, expected one of {', '.join(_MODES)}")
    if antialias:
        w = w / w.sum(dim=1, keepdim=True)
    return offsets, w, base


def _resize_axis(data, axis, out_len, scale, roi, *, mode, coord_mode, nearest_mode, cubic_a,
                 exclude_outside, extrapolation_value, antialias, legacy_nearest):
    in_len = data.shape[axis]
    if out_len == 0:
        shape = list(data.shape)
        shape[axis] = 0
        return data.new_empty(shape)
    x = _source_coords(coord_mode, out_len, in_len, scale, *roi)
    offsets, w, base = _taps(x, mode, nearest_mode, scale, antialias, cubic_a, legacy_nearest)
    idx = base.long()[:, None] + offsets[None, :]
    if exclude_outside:
        w = torch.where((idx < 0) | (idx >= in_len), torch.zeros_like(w), w)
        total = w.sum(dim=1, keepdim=True)
        w = w / torch.where(total == 0, torch.ones_like(total), total)
    idx = idx.clamp(0, in_len - 1)
    dev = data.device
    if mode == "nearest":
        pick = idx.gather(1, w.argmax(dim=1, keepdim=True)).reshape(-1)
        out = data.index_select(axis, pick.to(dev))
    else:
        taps = idx.shape[1]
        g = data.index_select(axis, idx.reshape(-1).to(dev))
        g = g.reshape(list(data.shape[:axis]) + [out_len, taps] + list(data.shape[axis + 1:]))
        wshape = [1] * axis + [out_len, taps] + [1] * (data.dim() - axis - 1)
        out = (g * w.to(device=dev, dtype=data.dtype).reshape(wshape)).sum(dim=axis + 1)
    if coord_mode == "tf_crop_and_resize":
        outside = ((x < 0) | (x > in_len - 1)).to(dev)
        mshape = [1] * axis + [out_len] + [1] * (data.dim() - axis - 1)
        out = torch.where(outside.reshape(mshape), torch.tensor(extrapolation_value, dtype=out.dtype, device=dev), out)
    return out


def _resize(X, roi, scales, sizes, *, mode="nearest", coordinate_transformation_mode="half_pixel",
            nearest_mode="round_prefer_floor", cubic_coeff_a=-0.75, exclude_outside=0,
            extrapolation_value=0.0, antialias=0, axes=None, keep_aspect_ratio_policy="stretch",
            legacy_nearest=False):
    rank = X.dim()
    axes = list(range(rank)) if axes is None else [a % rank for a in axes]
    scales, sizes, roi = _floats(scales), _floats(sizes), _floats(roi)
    if (scales is None) == (sizes is None):
        raise InvalidArgument("Resize: exactly one of scales and sizes must be given")
    if antialias and mode == "nearest":
        raise InvalidArgument("Resize: antialias=1 needs mode linear or cubic")
    n = len(axes)
    given = scales if scales is not None else sizes
    if len(given) != n:
        raise InvalidArgument(f"Resize: {'scales' if scales else 'sizes'} has {len(given)} values, expected {n}")
    in_sp = [X.shape[a] for a in axes]
    if sizes is not None:
        sizes = [int(s) for s in sizes]
        fs = [s / i for s, i in zip(sizes, in_sp)]
        if keep_aspect_ratio_policy in ("not_larger", "not_smaller"):
            one = min(fs) if keep_aspect_ratio_policy == "not_larger" else max(fs)
            fs = [one] * n
            sizes = [int(one * i + 0.5) for i in in_sp]
        elif keep_aspect_ratio_policy != "stretch":
            raise InvalidArgument(
                f"Resize: keep_aspect_ratio_policy={keep_aspect_ratio_policy!r}, expected stretch, not_larger or not_smaller"
            )
        out_sp = sizes
    else:
        fs = scales
        if any(s <= 0 for s in fs):
            raise InvalidArgument(f"Resize: scales {fs} must be positive")
        out_sp = [int(math.floor(i * s)) for i, s in zip(in_sp, fs)]
    if roi is not None and len(roi) == 2 * rank and n != rank:
        roi = [roi[a] for a in axes] + [roi[rank + a] for a in axes]
    float_dt = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
    out = X if mode == "nearest" else X.to(float_dt)
    for k, a in enumerate(axes):
        lo, hi = (roi[k], roi[n + k]) if roi else (0.0, 1.0)
        if out_sp[k] == in_sp[k] and fs[k] == 1.0 and (lo, hi) == (0.0, 1.0):
            continue
        out = _resize_axis(out, a, out_sp[k], fs[k], (lo, hi), mode=mode,
                           coord_mode=coordinate_transformation_mode, nearest_mode=nearest_mode,
                           cubic_a=cubic_coeff_a, exclude_outside=exclude_outside,
                           extrapolation_value=extrapolation_value, antialias=antialias,
                           legacy_nearest=legacy_nearest)
    if out.dtype == X.dtype:
        return out
    if X.dtype.is_floating_point:
        return out.to(X.dtype)
    info = torch.iinfo(X.dtype)
    return out.round().clamp(info.min, info.max).to(X.dtype)


@register("Resize", since=10, host_inputs=(1, 2, 3))
def Resize_10(X, scales, *, mode="nearest"):
    """ONNX Resize (opset 10): output = floor(input * scale), asymmetric coordinates."""
    return _resize(X, None, scales, None, mode=mode, coordinate_transformation_mode="asymmetric",
                   legacy_nearest=True)


@register("Resize", since=11, host_inputs=(1, 2, 3))
def Resize(X, roi=None, scales=None, sizes=None, *, antialias=0, axes=None,
           coordinate_transformation_mode="half_pixel", cubic_coeff_a=-0.75, exclude_outside=0,
           extrapolation_value=0.0, keep_aspect_ratio_policy="stretch", mode="nearest",
           nearest_mode="round_prefer_floor"):
    """ONNX Resize (opsets 11-19): scales or sizes (an empty tensor counts as absent), roi for
    tf_crop_and_resize, antialias/axes/keep_aspect_ratio_policy from opset 18."""
    if mode not in _MODES:
        raise InvalidArgument(f"Resize: mode={mode!r}, expected one of {', '.join(_MODES)}")
    if scales is not None and scales.numel() == 0:
        scales = None
    if sizes is not None and sizes.numel() == 0:
        sizes = None
    if roi is not None and roi.numel() == 0:
        roi = None
    return _resize(X, roi, scales, sizes, mode=mode,
                   coordinate_transformation_mode=coordinate_transformation_mode,
                   nearest_mode=nearest_mode, cubic_coeff_a=cubic_coeff_a,
                   exclude_outside=exclude_outside, extrapolation_value=extrapolation_value,
                   antialias=antialias, axes=axes, keep_aspect_ratio_policy=keep_aspect_ratio_policy)


@register("Upsample", since=7, host_inputs=(1,))
def Upsample_7(X, *, mode="nearest", scales):
    """ONNX Upsample (opset 7-8): scales as an attribute; Resize-10's semantics."""
    return Resize_10(X, torch.tensor(scales), mode=mode)


@register("Upsample", since=9, host_inputs=(1,))
def Upsample(X, scales, *, mode="nearest"):
    """ONNX Upsample (opset 9): scales as an input; Resize-10's semantics."""
    if mode == "bilinear":
        mode = "linear"
    return Resize_10(X, scales, mode=mode)




_GRID_MODES = {"linear": "bilinear", "bilinear": "bilinear", "nearest": "nearest", "cubic": "bicubic", "bicubic": "bicubic"}


@register("GridSample", since=16)
def GridSample(X, grid, *, align_corners=0, mode="linear", padding_mode="zeros"):
    """ONNX GridSample (opsets 16, 20): torch's grid_sample for 2-D (linear, nearest, cubic)
    and 3-D (linear, nearest) inputs; padding zeros, border or reflection."""
    if mode not in _GRID_MODES:
        raise InvalidArgument(f"GridSample: mode={mode!r}, expected one of {', '.join(_GRID_MODES)}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise InvalidArgument(f"GridSample: padding_mode={padding_mode!r}, expected zeros, border or reflection")
    tmode = _GRID_MODES[mode]
    if X.dim() not in (4, 5) or (X.dim() == 5 and tmode == "bicubic"):
        raise NotImplemented(f"GridSample: {X.dim() - 2}-D input with mode {mode!r}; supported: 2-D, and 3-D linear/nearest")
    cdt = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
    y = torch.nn.functional.grid_sample(X.to(cdt), grid.to(cdt), mode=tmode, padding_mode=padding_mode,
                                        align_corners=bool(align_corners))
    return y.to(X.dtype)
