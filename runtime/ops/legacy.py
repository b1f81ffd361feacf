"""Experimental ops of early ONNX (opsets 1-9) that converted Caffe2/CNTK models still carry
(e.g. ImageScaler in tiny-YOLOv2): ImageScaler, Scale, Affine, Crop, ScaledTanh,
ParametricSoftplus. onnx no longer ships their schemas; onnxruntime still runs them."""
from __future__ import annotations

import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.ops._common import check_rank
from tritonnx.runtime.registry import register


@register("ImageScaler", since=1)
def ImageScaler(input, *, bias=None, scale=1.0):
    """ImageScaler: y[n, c] = scale * x[n, c] + bias[c] on (N, C, H, W)."""
    check_rank("ImageScaler", "input", input, 4)
    y = input * scale
    if bias is not None:
        if len(bias) != input.shape[1]:
            raise InvalidArgument(f"ImageScaler: bias has {len(bias)} values, expected {input.shape[1]} (channels)")
        y = y + torch.tensor(list(bias), dtype=input.dtype, device=input.device).reshape(1, -1, 1, 1)
    return y


@register("Scale", since=1)
def Scale(input, *, scale=1.0):
    """Scale: y = scale * x."""
    return input * scale


@register("Affine", since=1)
def Affine(X, *, alpha=1.0, beta=0.0):
    """Affine: y = alpha * x + beta."""
    return X * alpha + beta


@register("ScaledTanh", since=1)
def ScaledTanh(input, *, alpha=1.0, beta=1.0):
    """ScaledTanh: y = alpha * tanh(beta * x)."""
    return alpha * torch.tanh(beta * input)


@register("ParametricSoftplus", since=1)
def ParametricSoftplus(X, *, alpha=1.0, beta=1.0):
    """ParametricSoftplus: y = alpha * ln(exp(beta * x) + 1)."""
    return alpha * torch.nn.functional.softplus(beta * X)


@register("Crop", since=1)
def Crop(input, *, border=None, scale=None):
    """Crop (N, C, H, W) by border = [left, top, right, bottom], or to size `scale` = [h, w]
    starting at (top, left)."""
    check_rank("Crop", "input", input, 4)
    left, top, right, bottom = list(border) if border else (0, 0, 0, 0)
    h, w = input.shape[2:]
    if scale:
        return input[:, :, top:top + scale[0], left:left + scale[1]]
    return input[:, :, top:h - bottom, left:w - right]
