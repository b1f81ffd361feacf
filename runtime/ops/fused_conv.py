"""Handler of ``tritonnx::ConvReluPool`` (written by `tritonnx.runtime.passes.fuse_conv`).

``kernels == "triton"``: the fused Triton kernel (`conv_relu_pool`; on the CPU under the
interpreter); ``"torch"``: its plain-torch reference. With ``"triton"`` the weights are packed
(`pack_conv_weight`) once per node at session creation, by the prepare step
(`tritonnx.runtime.registry`); a node whose weights were not prepared (not constant, overridden
by a feed, or a call outside a session) packs them on the fly. On a GPU the input is handed
to the kernel channels-last (its fast layout) and the output stays channels-last: logically
still NCHW.
"""
from __future__ import annotations

import math

import torch

from tritonnx.runtime.registry import register
from tritonnx.triton_kernels.conv_relu_pool import (
    auto_pads,
    conv_out_size,
    conv_relu_pool,
    conv_relu_pool_reference,
    pack_conv_weight,
)


def prepare_ConvReluPool(X=None, W=None, B=None, R=None, *, group=1, ctx=None, **_attrs):
    """tritonnx::ConvReluPool's prepare step: W packed for the Triton kernel, or None (torch
    kernels, W not constant or not 4-D: the handler decides at run time)."""
    if W is None or W.dim() != 4 or getattr(ctx, "kernels", "triton") == "torch":
        return None
    return pack_conv_weight(W, int(group))


@register("ConvReluPool", since=1, domain="tritonnx", prepare=prepare_ConvReluPool)
def ConvReluPool(X, W, B=None, R=None, *, auto_pad="NOTSET", pads=None, strides=None, dilations=None,
                 group=1, kernel_shape=None, activation="relu", alpha=0.01, clip_min=-math.inf,
                 clip_max=math.inf, pool="none", pool_kernel=None, pool_strides=None, pool_pads=None,
                 pool_auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, ctx=None, prepared=None):
    """Fused Conv + bias (+ R) + activation + pool. X: [N, C, H, W], W: [O, C/group, KH, KW],
    B: [O], R: [N, O, OH, OW] -> [N, O, PH, PW] (see `tritonnx.triton_kernels.conv_relu_pool`).
    `prepared`: `prepare_ConvReluPool`'s packed W."""
    strides = list(strides or (1, 1))
    dilations = list(dilations or (1, 1))
    kernel = list(W.shape[2:]) if W.dim() == 4 else list(kernel_shape or ())
    if auto_pad not in ("NOTSET", "", None):
        pads = auto_pads(auto_pad, X.shape[2:], kernel, strides, dilations)
    pads = list(pads or (0, 0, 0, 0))
    kw = dict(strides=strides, pads=pads, dilations=dilations, group=int(group), activation=activation,
              alpha=float(alpha), clip_min=float(clip_min), clip_max=float(clip_max), pool=pool)
    if pool != "none":
        pool_strides = list(pool_strides or (1, 1))
        if pool_auto_pad not in ("NOTSET", "", None) and X.dim() == 4 and W.dim() == 4:
            conv_hw = [conv_out_size(X.shape[2 + i], kernel[i], strides[i], pads[i], pads[i + 2], dilations[i])
                       for i in range(2)]
            pool_pads = auto_pads(pool_auto_pad, conv_hw, pool_kernel, pool_strides)
        kw.update(pool_kernel=list(pool_kernel), pool_strides=pool_strides,
                  pool_pads=list(pool_pads or (0, 0, 0, 0)), ceil_mode=bool(ceil_mode),
                  count_include_pad=bool(count_include_pad))
    allow_tf32 = bool(getattr(ctx, "tf32", True))
    if getattr(ctx, "kernels", "triton") == "torch":
        if X.device.type == "cpu" and X.dtype in (torch.float16, torch.bfloat16):
            up = [None if t is None else t.float() for t in (X, W, B, R)]
            return conv_relu_pool_reference(*up, **kw).to(X.dtype)
        return conv_relu_pool_reference(X, W, B, R, **kw)
    if X.is_cuda and X.dim() == 4:
        X = X.contiguous(memory_format=torch.channels_last)
    packed = prepared if prepared is not None else pack_conv_weight(W, int(group))
    return conv_relu_pool(X, packed, B, R, allow_tf32=allow_tf32, **kw)
