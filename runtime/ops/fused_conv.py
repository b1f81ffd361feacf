"""Handler of ``tritonnx::ConvReluPool`` (written by `tritonnx.runtime.passes.fuse_conv`).

``kernels == "triton"``: the fused Triton kernel (`conv_relu_pool`; on the CPU under the
interpreter); ``"torch"``: its plain-torch reference. Weights are packed once per weight tensor
(cached while the tensor lives and is unmodified). On a GPU the input is handed to the kernel
channels-last (its fast layout) and the output stays channels-last: logically still NCHW.
"""
from __future__ import annotations

import math
import threading
import weakref

import torch

from tritonnx.runtime.registry import register
from tritonnx.triton_kernels.conv_relu_pool import (
    PackedConvWeight,
    auto_pads,
    conv_out_size,
    conv_relu_pool,
    conv_relu_pool_reference,
    pack_conv_weight,
)

#: id(W) -> (weak reference to W, W's version, group, packed). Keyed by id: a tensor compares
#: elementwise, so a WeakKeyDictionary's lookup (which compares referents with ==) fails on a hit.
_PACKED: dict[int, tuple[weakref.ref, int, int, PackedConvWeight]] = {}
_LOCK = threading.Lock()


def packed_weight(w: torch.Tensor, group: int) -> PackedConvWeight:
    """`pack_conv_weight(w, group)`, computed once per weight tensor (and version)."""
    with _LOCK:
        hit = _PACKED.get(id(w))
    if hit is not None and hit[0]() is w and hit[1] == w._version and hit[2] == group:
        return hit[3]
    packed = pack_conv_weight(w, group)
    key = id(w)
    ref = weakref.ref(w, lambda _r, key=key: _PACKED.pop(key, None))
    with _LOCK:
        _PACKED[key] = (ref, w._version, group, packed)
    return packed


@register("ConvReluPool", since=1, domain="tritonnx")
def ConvReluPool(X, W, B=None, R=None, *, auto_pad="NOTSET", pads=None, strides=None, dilations=None,
                 group=1, kernel_shape=None, activation="relu", alpha=0.01, clip_min=-math.inf,
                 clip_max=math.inf, pool="none", pool_kernel=None, pool_strides=None, pool_pads=None,
                 pool_auto_pad="NOTSET", ceil_mode=0, count_include_pad=0, ctx=None):
    """Fused Conv + bias (+ R) + activation + pool. X: [N, C, H, W], W: [O, C/group, KH, KW],
    B: [O], R: [N, O, OH, OW] -> [N, O, PH, PW] (see `tritonnx.triton_kernels.conv_relu_pool`)."""
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
    return conv_relu_pool(X, packed_weight(W, int(group)), B, R, allow_tf32=allow_tf32, **kw)
