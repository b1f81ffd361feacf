"""The ``tritonnx::ConvReluPool`` family: everything about the fused op itself, in one module.

- `ATTRIBUTES`: every attribute of the node, with its schema kind and its default (what an
  absent attribute means: no activation, no pool);
- `fused_attributes`: the attributes the fusion rule (`tritonnx.runtime.passes.fuse_conv`)
  emits for a matched Conv (+ activation) (+ pool);
- `kernel_kwargs` / `output_hw`: the ONE translation of node attributes into the keyword
  arguments of `conv_relu_pool` (and of its reference), and the output size they give; used by
  the handler, by the schema's shape inference and by the kernel benchmark
  (`bench/kernels/conv.py`);
- `SCHEMA`: the ``onnx.defs.OpSchema`` (registered by the fusion rule);
- the handler and its prepare step.

Handler: ``kernels == "triton"``: the fused Triton kernel (`conv_relu_pool`; on the CPU under the
interpreter); ``"torch"``: its plain-torch reference. With ``"triton"`` the weights are packed
(`pack_conv_weight`) once per node at session creation, by the prepare step
(`tritonnx.runtime.registry`); a node whose weights were not prepared (not constant, overridden
by a feed, or a call outside a session) packs them on the fly. On a GPU the input is handed
to the kernel channels-last (its fast layout) and the output stays channels-last: logically
still NCHW.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.passes.framework import CUSTOM_DOMAIN, custom_schema
from tritonnx.runtime.registry import register
from tritonnx.triton_kernels.conv_relu_pool import (
    auto_pads,
    conv_out_size,
    conv_relu_pool,
    conv_relu_pool_reference,
    pack_conv_weight,
    pool_out_size,
)

OP_TYPE = "ConvReluPool"

#: name -> (schema kind, default when the attribute is absent). The fusion rule always writes
#: the Conv's attributes, ``activation`` and ``pool``; the others only where they apply.
ATTRIBUTES: dict[str, tuple[str, Any]] = {
    "auto_pad": ("string", "NOTSET"),
    "pads": ("ints", (0, 0, 0, 0)),
    "strides": ("ints", (1, 1)),
    "dilations": ("ints", (1, 1)),
    "group": ("int", 1),
    "kernel_shape": ("ints", None),  # W's spatial shape (W is what the kernel reads)
    "activation": ("string", "none"),  # "none" | "relu" | "leaky_relu" | "clip"
    "alpha": ("float", 0.01),
    "clip_min": ("float", -math.inf),
    "clip_max": ("float", math.inf),
    "pool": ("string", "none"),  # "none" | "max" | "avg"
    "pool_kernel": ("ints", None),
    "pool_strides": ("ints", (1, 1)),
    "pool_pads": ("ints", (0, 0, 0, 0)),
    "pool_auto_pad": ("string", "NOTSET"),
    "ceil_mode": ("int", 0),
    "count_include_pad": ("int", 0),
}

#: the standard ops the kernel's activation and pool stand for
ACTIVATION_OPS = {"Relu": "relu", "LeakyRelu": "leaky_relu", "Clip": "clip"}
POOL_OPS = {"MaxPool": "max", "AveragePool": "avg"}


# ----------------------------------------------------------------------------- emitted attributes
def _scalar(value, default: float) -> float:
    if value is None or value.const_value is None:
        return default
    return float(np.asarray(value.const_value.numpy()).reshape(-1)[0])


def _clip_bounds(clip) -> tuple[float, float]:
    """Clip's (min, max): inputs 1 and 2 from opset 11, attributes ``min`` and ``max`` before."""
    a = clip.attributes
    if "min" in a or "max" in a:
        return a.get_float("min", -math.inf), a.get_float("max", math.inf)
    return (_scalar(clip.inputs[1] if len(clip.inputs) > 1 else None, -math.inf),
            _scalar(clip.inputs[2] if len(clip.inputs) > 2 else None, math.inf))


def fused_attributes(conv, act=None, pool=None) -> dict:
    """The attributes of the ConvReluPool node that replaces `conv` (+ `act`) (+ `pool`)
    (onnx-ir nodes; `conv`'s weight is constant and 4-D)."""
    a = conv.attributes
    w_shape = conv.inputs[1].const_value.shape
    attrs = {
        "auto_pad": a.get_string("auto_pad", "NOTSET"),
        "pads": list(a.get_ints("pads", None) or (0, 0, 0, 0)),
        "strides": list(a.get_ints("strides", None) or (1, 1)),
        "dilations": list(a.get_ints("dilations", None) or (1, 1)),
        "group": a.get_int("group", 1),
        "kernel_shape": [int(w_shape[2]), int(w_shape[3])],
        "activation": "none",
    }
    if act is not None:
        attrs["activation"] = ACTIVATION_OPS[act.op_type]
        if act.op_type == "LeakyRelu":
            attrs["alpha"] = act.attributes.get_float("alpha", 0.01)
        elif act.op_type == "Clip":
            lo, hi = _clip_bounds(act)
            attrs.update(clip_min=max(lo, -3.0e38), clip_max=min(hi, 3.0e38))
    attrs["pool"] = "none"
    if pool is not None:
        p = pool.attributes
        attrs.update(
            pool=POOL_OPS[pool.op_type],
            pool_kernel=list(p.get_ints("kernel_shape")),
            pool_strides=list(p.get_ints("strides", None) or (1, 1)),
            pool_pads=list(p.get_ints("pads", None) or (0, 0, 0, 0)),
            pool_auto_pad=p.get_string("auto_pad", "NOTSET"),
            ceil_mode=p.get_int("ceil_mode", 0),
            count_include_pad=p.get_int("count_include_pad", 0),
        )
    return attrs


# ----------------------------------------------------------------------------- attributes -> kernel
def _with_defaults(attrs: Mapping[str, Any]) -> dict:
    unknown = sorted(set(attrs) - set(ATTRIBUTES))
    if unknown:
        raise InvalidArgument(f"{OP_TYPE}: unknown attribute(s) {unknown}; expected some of {list(ATTRIBUTES)}")
    return {name: default if attrs.get(name) is None else attrs[name] for name, (_, default) in ATTRIBUTES.items()}


def _conv_hw(kw: Mapping[str, Any], in_hw: Sequence[int], kernel: Sequence[int]) -> list[int]:
    s, p, d = kw["strides"], kw["pads"], kw["dilations"]
    return [conv_out_size(in_hw[i], kernel[i], s[i], p[i], p[i + 2], d[i]) for i in range(2)]


def kernel_kwargs(attrs: Mapping[str, Any], in_hw: Sequence[int], kernel: Sequence[int]) -> dict:
    """The keyword arguments of `conv_relu_pool` (and `conv_relu_pool_reference`) for a node
    with attributes `attrs` (absent ones: `ATTRIBUTES`' defaults) on an input of spatial size
    `in_hw` with a weight of spatial size `kernel`: padding resolved (``auto_pad``,
    ``pool_auto_pad``), pool keywords only when there is a pool."""
    a = _with_defaults(attrs)
    kernel = [int(k) for k in kernel]
    strides, dilations = list(a["strides"]), list(a["dilations"])
    pads = list(a["pads"])
    if a["auto_pad"] not in ("NOTSET", ""):
        pads = list(auto_pads(a["auto_pad"], in_hw, kernel, strides, dilations))
    kw = dict(strides=strides, pads=pads, dilations=dilations, group=int(a["group"]),
              activation=a["activation"], alpha=float(a["alpha"]), clip_min=float(a["clip_min"]),
              clip_max=float(a["clip_max"]), pool=a["pool"])
    if kw["pool"] != "none":
        if a["pool_kernel"] is None:
            raise InvalidArgument(f"{OP_TYPE}: pool={kw['pool']!r} needs the attribute pool_kernel")
        pk, ps = list(a["pool_kernel"]), list(a["pool_strides"])
        pp = list(a["pool_pads"])
        if a["pool_auto_pad"] not in ("NOTSET", "") and len(in_hw) == 2 and len(kernel) == 2:
            pp = list(auto_pads(a["pool_auto_pad"], _conv_hw(kw, in_hw, kernel), pk, ps))
        kw.update(pool_kernel=pk, pool_strides=ps, pool_pads=pp, ceil_mode=bool(a["ceil_mode"]),
                  count_include_pad=bool(a["count_include_pad"]))
    return kw


def output_hw(kw: Mapping[str, Any], in_hw: Sequence[int], kernel: Sequence[int]) -> list[int]:
    """The output's spatial size [PH, PW] for `kernel_kwargs` `kw` on an `in_hw` input."""
    hw = _conv_hw(kw, in_hw, kernel)
    if kw["pool"] != "none":
        pk, ps, pp = kw["pool_kernel"], kw["pool_strides"], kw["pool_pads"]
        hw = [pool_out_size(hw[i], pk[i], ps[i], pp[i], pp[i + 2], kw["ceil_mode"]) for i in range(2)]
    return hw


# ----------------------------------------------------------------------------- schema
def _infer(ctx) -> None:
    """Y: X's element type; shape [N, O, PH, PW] when X's spatial dims and W's shape are known."""
    import onnx
    import onnx.helper

    attrs = {}
    for name in ATTRIBUTES:
        proto = ctx.get_attribute(name)
        if proto is not None:
            value = onnx.helper.get_attribute_value(proto)
            attrs[name] = value.decode() if isinstance(value, bytes) else value
    x_type = ctx.get_input_type(0).tensor_type
    out = onnx.TypeProto()
    out.tensor_type.elem_type = x_type.elem_type
    w_type = ctx.get_input_type(1)
    x_dims = list(x_type.shape.dim) if x_type.HasField("shape") else []
    w_dims = list(w_type.tensor_type.shape.dim) if w_type is not None and w_type.tensor_type.HasField("shape") else []
    if len(x_dims) == 4 and len(w_dims) == 4 and all(d.HasField("dim_value") for d in x_dims[2:] + w_dims):
        in_hw = [d.dim_value for d in x_dims[2:]]
        kernel = [d.dim_value for d in w_dims[2:]]
        hw = output_hw(kernel_kwargs(attrs, in_hw, kernel), in_hw, kernel)
        shape = out.tensor_type.shape
        shape.dim.add().CopyFrom(x_dims[0])
        shape.dim.add().dim_value = w_dims[0].dim_value
        for v in hw:
            shape.dim.add().dim_value = v
    ctx.set_output_type(0, out)


SCHEMA = custom_schema(
    OP_TYPE,
    inputs=["X", "W", "B?", "R?"],
    outputs=["Y"],
    attributes={name: kind for name, (kind, _) in ATTRIBUTES.items()},
    types=("tensor(float)", "tensor(float16)", "tensor(bfloat16)"),
    doc="Fused Conv + bias (+ residual R) + activation + pool (tritonnx.triton_kernels.conv_relu_pool).",
    infer=_infer,
)


# ----------------------------------------------------------------------------- handler
def prepare_ConvReluPool(X=None, W=None, B=None, R=None, *, group=ATTRIBUTES["group"][1], ctx=None, **_attrs):
    """tritonnx::ConvReluPool's prepare step: W packed for the Triton kernel, or None (torch
    kernels, W not constant or not 4-D: the handler decides at run time)."""
    if W is None or W.dim() != 4 or getattr(ctx, "kernels", "triton") == "torch":
        return None
    return pack_conv_weight(W, int(group))


@register(OP_TYPE, since=1, domain=CUSTOM_DOMAIN, prepare=prepare_ConvReluPool)
def ConvReluPool(X, W, B=None, R=None, *, ctx=None, prepared=None, **attrs):
    """Fused Conv + bias (+ R) + activation + pool. X: [N, C, H, W], W: [O, C/group, KH, KW],
    B: [O], R: [N, O, OH, OW] -> [N, O, PH, PW] (see `tritonnx.triton_kernels.conv_relu_pool`).
    `attrs`: the node's attributes (`ATTRIBUTES`, their defaults where absent); `prepared`:
    `prepare_ConvReluPool`'s packed W."""
    kernel = list(W.shape[2:]) if W.dim() == 4 else list(attrs.get("kernel_shape") or ())
    kw = kernel_kwargs(attrs, X.shape[2:], kernel)
    allow_tf32 = bool(getattr(ctx, "tf32", True))
    if getattr(ctx, "kernels", "triton") == "torch":
        if X.device.type == "cpu" and X.dtype in (torch.float16, torch.bfloat16):
            up = [None if t is None else t.float() for t in (X, W, B, R)]
            return conv_relu_pool_reference(*up, **kw).to(X.dtype)
        return conv_relu_pool_reference(X, W, B, R, **kw)
    if X.is_cuda and X.dim() == 4:
        X = X.contiguous(memory_format=torch.channels_last)
    packed = prepared if prepared is not None else pack_conv_weight(W, int(kw["group"]))
    return conv_relu_pool(X, packed, B, R, allow_tf32=allow_tf32, **kw)
