"""Sampling ops: AffineGrid (torch's ``affine_grid``, which ONNX's follows) and DeformConv
(2-D deformable convolution: bilinear samples at offset kernel positions, zero outside the
image, optionally masked, then a grouped matrix product with the weights), as torch ops on the
session's device."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime.ops._common import ints
from tritonnx.runtime.registry import register


@register("AffineGrid", since=20, host_inputs=(1,))
def AffineGrid(theta, size, *, align_corners=0):
    """ONNX AffineGrid: theta [N, 2, 3] (2-D) or [N, 3, 4] (3-D) and size (N, C, H, W[, D]) ->
    the sampling grid [N, H, W, 2] or [N, D, H, W, 3]."""
    shape = ints(size)
    if len(shape) not in (4, 5) or tuple(theta.shape[1:]) != ((2, 3) if len(shape) == 4 else (3, 4)):
        raise InvalidArgument(f"AffineGrid: theta has shape {list(theta.shape)} and size is {shape}; expected "
                              "[N, 2, 3] with (N, C, H, W) or [N, 3, 4] with (N, C, D, H, W)")
    dtype = theta.dtype if theta.dtype in (torch.float32, torch.float64) else torch.float32
    grid = F.affine_grid(theta.to(dtype), shape, align_corners=bool(align_corners))
    return grid.to(theta.dtype)


def _bilinear(x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Samples of x [N, G, Cg, H, W] at rows `y`, columns `xs` ([N, G, K, P] each, float),
    zero outside: [N, G, Cg, K, P]."""
    n, g, cg, h, w = x.shape
    flat = x.reshape(n, g, cg, h * w)
    y0, x0 = torch.floor(y), torch.floor(xs)
    out = 0
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            weight = (1 - (y - yy).abs()) * (1 - (xs - xx).abs())
            inside = (yy >= 0) & (yy <= h - 1) & (xx >= 0) & (xx <= w - 1)
            index = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).to(torch.int64)  # [N, G, K, P]
            k, p = index.shape[-2:]
            picked = torch.gather(flat, 3, index.reshape(n, g, 1, k * p).expand(n, g, cg, k * p))
            out = out + picked.reshape(n, g, cg, k, p) * (weight * inside)[:, :, None]
    return out


@register("DeformConv", since=19)
def DeformConv(X, W, offset, B=None, mask=None, *, dilations=None, group=1, kernel_shape=None, offset_group=1,
               pads=None, strides=None):
    """ONNX DeformConv (2-D): X [N, C, H, W], W [oC, C/group, kH, kW], offset
    [N, offset_group*kH*kW*2, oH, oW] ((row, column) pairs per kernel position), optional bias
    B [oC] and mask [N, offset_group*kH*kW, oH, oW] -> [N, oC, oH, oW]."""
    if X.dim() != 4:
        raise NotImplemented(f"DeformConv: input X has rank {X.dim()}; supported: 2-D (rank 4)")
    n, c, h, w = X.shape
    oc = W.shape[0]
    kh, kw = kernel_shape or W.shape[2:]
    sh, sw = strides or (1, 1)
    dh, dw = dilations or (1, 1)
    pt, pl = (pads or (0, 0, 0, 0))[:2]
    oh, ow = offset.shape[2:]
    k = kh * kw
    if c != W.shape[1] * group or oc % group or c % offset_group or offset.shape[1] != offset_group * k * 2:
        raise InvalidArgument(f"DeformConv: X {list(X.shape)}, W {list(W.shape)}, offset {list(offset.shape)} "
                              f"do not fit group={group}, offset_group={offset_group}, kernel {kh}x{kw}")
    dtype = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
    dev = X.device
    off = offset.to(dtype).reshape(n, offset_group, k, 2, oh * ow)
    ky, kx = torch.meshgrid(torch.arange(kh, device=dev) * dh, torch.arange(kw, device=dev) * dw, indexing="ij")
    oy, ox = torch.meshgrid(torch.arange(oh, device=dev) * sh - pt, torch.arange(ow, device=dev) * sw - pl,
                            indexing="ij")
    base_y = ky.reshape(k, 1).to(dtype) + oy.reshape(1, -1).to(dtype)  # [K, P]
    base_x = kx.reshape(k, 1).to(dtype) + ox.reshape(1, -1).to(dtype)
    x = X.to(dtype).reshape(n, offset_group, c // offset_group, h, w)
    cols = _bilinear(x, base_y + off[:, :, :, 0], base_x + off[:, :, :, 1])  # [N, G, Cg, K, P]
    if mask is not None:
        cols = cols * mask.to(dtype).reshape(n, offset_group, 1, k, oh * ow)
    cols = cols.reshape(n, group, c // group * k, oh * ow)
    weight = W.to(dtype).reshape(group, oc // group, c // group * k)
    out = torch.einsum("gok,ngkp->ngop", weight, cols).reshape(n, oc, oh, ow)
    if B is not None:
        out = out + B.to(dtype).reshape(1, -1, 1, 1)
    return out.to(X.dtype)
