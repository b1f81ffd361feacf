"""onnxruntime's own ops (domain ``com.microsoft``) that its tools write into models.

Found by generating the files for every zoo model (tiny): ``optimized_model_filepath`` at
``ORT_ENABLE_EXTENDED`` writes FusedConv, FusedGemm, FusedMatMul, BiasGelu and
SkipLayerNormalization; ``quantize_dynamic`` writes DynamicQuantizeLSTM for the LSTMs (its other
ops, and all of ``quantize_static``'s QDQ ones, are standard: `quant.py`). Gelu, FastGelu,
QuickGelu and BiasAdd, which the same optimizer writes for other models, are here too.
``quantize_static`` in the QOperator format writes QGemm and the QLinear ops (Add, Mul,
Sigmoid, LeakyRelu, Softmax, Concat, GlobalAveragePool, AveragePool): each dequantizes its
inputs, computes in float64 (integer products exact) and quantizes once, half to even;
onnxruntime's lookup tables and fixed-point steps can land one quantization step apart.
Semantics follow onnxruntime's ContribOperators.md; each handler is tested against
onnxruntime on the files it writes (tests/runtime/test_ort_written_models.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime.ops.nn import AveragePool, Conv, Gemm, LayerNormalization, MatMul
from tritonnx.runtime.ops.quant import saturate_to
from tritonnx.runtime.registry import MS_DOMAIN, register
from tritonnx.triton_kernels import rnn_reference



def _activate(op: str, y: torch.Tensor, activation: str | None, params) -> torch.Tensor:
    """FusedConv/FusedGemm's ``activation`` (an ONNX op name) with its parameters."""
    if not activation:
        return y
    params = list(params or ())
    if activation == "Clip":
        lo, hi = (params + [-math.inf, math.inf][len(params):])[:2]
        return torch.clamp(y, lo, hi)
    defaults = {"LeakyRelu": [0.01], "HardSigmoid": [0.2, 0.5], "Elu": [1.0]}.get(activation, [])
    alpha, beta = (params + defaults[len(params):] + [0.0, 0.0])[:2]
    try:
        return rnn_reference.apply_activation(y, activation, alpha, beta)
    except NotImplemented:
        raise NotImplemented(f"{op}: activation {activation!r} is not supported (Relu, Tanh, Sigmoid, "
                             "LeakyRelu, HardSigmoid, Elu, Clip, ...)") from None


@register("FusedConv", since=1, domain=MS_DOMAIN)
def FusedConv(X, W, B=None, Z=None, *, activation=None, activation_params=None, auto_pad="NOTSET",
              dilations=None, group=1, kernel_shape=None, pads=None, strides=None):
    """activation(Conv(X, W, B) + Z): onnxruntime's Conv with its following activation (and an
    optional sum input) fused."""
    y = Conv(X, W, B, auto_pad=auto_pad, dilations=dilations, group=group, kernel_shape=kernel_shape,
             pads=pads, strides=strides)
    if Z is not None:
        y = y + Z
    return _activate("FusedConv", y, activation, activation_params)


@register("FusedGemm", since=1, domain=MS_DOMAIN)
def FusedGemm(A, B, C=None, *, activation=None, activation_alpha=None, activation_beta=None,
              activation_gamma=None, alpha=1.0, beta=1.0, transA=0, transB=0):
    """activation(Gemm(A, B, C)); the activation's parameters are activation_alpha/beta."""
    y = Gemm(A, B, C, alpha=alpha, beta=beta, transA=transA, transB=transB)
    params = [p for p in (activation_alpha, activation_beta) if p is not None]
    return _activate("FusedGemm", y, activation, params)


def _batch_transpose(t: torch.Tensor, trans: int, trans_batch: int) -> torch.Tensor:
    """FusedMatMul's operand: transBatch moves the first (batch) axis to just before the last
    two; trans swaps the last two."""
    if trans_batch and t.dim() > 2:
        t = t.permute(*range(1, t.dim() - 1), 0, t.dim() - 1)
    if trans:
        t = t.transpose(-1, -2) if t.dim() >= 2 else t
    return t


@register("FusedMatMul", since=1, domain=MS_DOMAIN)
def FusedMatMul(A, B, *, alpha=1.0, transA=0, transB=0, transBatchA=0, transBatchB=0):
    """alpha * MatMul(A', B') with A', B' optionally transposed (and batch-transposed)."""
    y = MatMul(_batch_transpose(A, transA, transBatchA), _batch_transpose(B, transB, transBatchB))
    return y if alpha == 1.0 else y * alpha


def _gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    cdt = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    return F.gelu(x.to(cdt), approximate=approximate).to(x.dtype)


@register("Gelu", since=1, domain=MS_DOMAIN)
def Gelu(X):
    """x * Φ(x) (the erf form)."""
    return _gelu(X)


@register("BiasGelu", since=1, domain=MS_DOMAIN)
def BiasGelu(A, B):
    """Gelu(A + B), B a 1-D bias over the last axis."""
    return _gelu(A + B)


@register("FastGelu", since=1, domain=MS_DOMAIN)
def FastGelu(X, bias=None):
    """The tanh approximation of Gelu, of X (+ bias)."""
    return _gelu(X if bias is None else X + bias, approximate="tanh")


@register("QuickGelu", since=1, domain=MS_DOMAIN)
def QuickGelu(X, *, alpha=1.702):
    """x * sigmoid(alpha * x)."""
    return X * torch.sigmoid(alpha * X)


@register("BiasAdd", since=1, domain=MS_DOMAIN)
def BiasAdd(X, bias, skip):
    """X + bias + skip (X: N x S x C, bias: C, skip: N x S x C)."""
    return X + bias + skip


@register("SkipLayerNormalization", since=1, domain=MS_DOMAIN)
def SkipLayerNormalization(input, skip, gamma, beta=None, bias=None, *, epsilon=1e-12, num_outputs=1):
    """LayerNorm(input + skip (+ bias)) over the last axis, scaled by gamma, shifted by beta.
    Outputs: output, mean, inv_std_var, and the sum input + skip + bias (each optional)."""
    if input.shape[-1] != gamma.shape[-1]:
        raise InvalidArgument(f"SkipLayerNormalization: gamma has {gamma.shape[-1]} elements, the input's "
                              f"last axis {input.shape[-1]}")
    total = input + skip
    if bias is not None:
        total = total + bias
    if num_outputs == 1:
        return LayerNormalization(total, gamma, beta, axis=-1, epsilon=epsilon)
    y, mean, inv = LayerNormalization(total, gamma, beta, axis=-1, epsilon=epsilon, num_outputs=3)
    return y, mean, inv, total


def _dequantize_weight(op: str, name: str, w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None):
    """A quantized (num_directions, K, 4H) weight as float, per direction or per column."""
    if scale.dim() not in (1, 2) or scale.shape[0] != w.shape[0]:
        raise InvalidArgument(f"{op}: {name}_scale has shape {list(scale.shape)}, expected [num_directions] or "
                              f"[num_directions, {w.shape[-1]}]")
    shape = (w.shape[0], 1, 1) if scale.dim() == 1 else (w.shape[0], 1, w.shape[-1])
    z = torch.zeros((), dtype=torch.float32, device=w.device) if zero is None else zero.to(torch.float32).reshape(shape)
    return (w.to(torch.float32) - z) * scale.to(torch.float32).reshape(shape)


@register("DynamicQuantizeLSTM", since=1, domain=MS_DOMAIN)
def DynamicQuantizeLSTM(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None,
                        W_scale=None, W_zero_point=None, R_scale=None, R_zero_point=None, *,
                        activation_alpha=None, activation_beta=None, activations=None, clip=None,
                        direction="forward", hidden_size=None, input_forget=0):
    """ONNX LSTM with int8/uint8 weights stored transposed, (num_directions, input_size, 4H) and
    (num_directions, H, 4H), and their scales / zero points. The weights are dequantized and the
    float LSTM runs (onnxruntime quantizes X and h per step too, so its results differ from ours
    by that rounding, about 1e-2 of the range)."""
    if W_scale is None or R_scale is None:
        raise InvalidArgument("DynamicQuantizeLSTM: W_scale and R_scale are required")
    w = _dequantize_weight("DynamicQuantizeLSTM", "W", W, W_scale, W_zero_point).transpose(1, 2)
    r = _dequantize_weight("DynamicQuantizeLSTM", "R", R, R_scale, R_zero_point).transpose(1, 2)
    return rnn_reference.lstm(
        X, w.to(X.dtype).contiguous(), r.to(X.dtype).contiguous(), B, sequence_lens, initial_h, initial_c, P,
        activation_alpha=activation_alpha, activation_beta=activation_beta, activations=activations,
        clip=clip, direction=direction, hidden_size=hidden_size, input_forget=input_forget, layout=0,
    )


# ----------------------------------------------------------------------------- QOperator format
def _deq(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None) -> torch.Tensor:
    """(x - zero) * scale in float64; scale and zero scalars (or [1])."""
    y = x.to(torch.float64)
    if zero is not None:
        y = y - zero.to(torch.float64).reshape(())
    return y * scale.to(torch.float64).reshape(())


def _quant(y: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """saturate(round(y / scale) + zero) in the zero point's dtype (else `like`'s)."""
    q = torch.round(y / scale.to(torch.float64).reshape(()))
    if zero is not None:
        q = q + zero.to(torch.float64).reshape(())
    return saturate_to(q, zero.dtype if zero is not None else like.dtype)


@register("QLinearAdd", since=1, domain=MS_DOMAIN)
def QLinearAdd(A, A_scale, A_zero_point=None, B=None, B_scale=None, B_zero_point=None, C_scale=None,
               C_zero_point=None):
    """Quantized A + B (broadcast), requantized to C_scale / C_zero_point."""
    return _quant(_deq(A, A_scale, A_zero_point) + _deq(B, B_scale, B_zero_point), C_scale, C_zero_point, A)


@register("QLinearMul", since=1, domain=MS_DOMAIN)
def QLinearMul(A, A_scale, A_zero_point=None, B=None, B_scale=None, B_zero_point=None, C_scale=None,
               C_zero_point=None):
    """Quantized A * B (broadcast), requantized to C_scale / C_zero_point."""
    return _quant(_deq(A, A_scale, A_zero_point) * _deq(B, B_scale, B_zero_point), C_scale, C_zero_point, A)


@register("QLinearSigmoid", since=1, domain=MS_DOMAIN)
def QLinearSigmoid(X, X_scale, X_zero_point=None, Y_scale=None, Y_zero_point=None):
    """Quantized Sigmoid."""
    return _quant(torch.sigmoid(_deq(X, X_scale, X_zero_point)), Y_scale, Y_zero_point, X)


@register("QLinearLeakyRelu", since=1, domain=MS_DOMAIN)
def QLinearLeakyRelu(X, X_scale, X_zero_point=None, Y_scale=None, Y_zero_point=None, *, alpha=0.01):
    """Quantized LeakyRelu."""
    return _quant(F.leaky_relu(_deq(X, X_scale, X_zero_point), alpha), Y_scale, Y_zero_point, X)


@register("QLinearSoftmax", since=1, domain=MS_DOMAIN)
def QLinearSoftmax(X, X_scale, x_zero_point=None, y_scale=None, y_zero_point=None, *, axis=-1, opset=13):
    """Quantized Softmax; `opset` is the original Softmax's (before 13: over the axes from `axis`
    on, the input seen as 2-D)."""
    x = _deq(X, X_scale, x_zero_point)
    if opset < 13:
        a = axis % X.dim()
        y = torch.softmax(x.reshape(list(X.shape[:a]) + [-1]), dim=-1).reshape(X.shape)
    else:
        y = torch.softmax(x, dim=axis)
    return _quant(y, y_scale, y_zero_point, X)


@register("QLinearConcat", since=1, domain=MS_DOMAIN)
def QLinearConcat(Y_scale, Y_zero_point, *inputs, axis):
    """Quantized Concat: inputs as (X, X_scale, X_zero_point) triples, each requantized to Y's."""
    if not inputs or len(inputs) % 3:
        raise InvalidArgument(f"QLinearConcat: expected (tensor, scale, zero point) triples after Y_scale and "
                              f"Y_zero_point, got {len(inputs)} inputs")
    parts = [_deq(*inputs[i:i + 3]) for i in range(0, len(inputs), 3)]
    return _quant(torch.cat(parts, dim=axis), Y_scale, Y_zero_point, inputs[0])


@register("QLinearGlobalAveragePool", since=1, domain=MS_DOMAIN)
def QLinearGlobalAveragePool(X, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, *, channels_last=0):
    """Quantized GlobalAveragePool over the spatial axes (NCHW..., or NHWC... when channels_last)."""
    dims = list(range(1, X.dim() - 1)) if channels_last else list(range(2, X.dim()))
    return _quant(_deq(X, x_scale, x_zero_point).mean(dim=dims, keepdim=True), y_scale, y_zero_point, X)


@register("QLinearAveragePool", since=1, domain=MS_DOMAIN)
def QLinearAveragePool(X, x_scale, x_zero_point=None, y_scale=None, y_zero_point=None, *, auto_pad="NOTSET",
                       ceil_mode=0, channels_last=0, count_include_pad=0, kernel_shape=None, pads=None,
                       strides=None):
    """Quantized AveragePool (NHWC... when channels_last)."""
    x = _deq(X, x_scale, x_zero_point)
    if channels_last:
        x = x.movedim(-1, 1)
    y = AveragePool(x, auto_pad=auto_pad, ceil_mode=ceil_mode, count_include_pad=count_include_pad,
                    kernel_shape=kernel_shape, pads=pads, strides=strides)
    if channels_last:
        y = y.movedim(1, -1)
    return _quant(y, y_scale, y_zero_point, X)


@register("QGemm", since=1, domain=MS_DOMAIN)
def QGemm(A, a_scale, a_zero_point, B, b_scale, b_zero_point, C=None, y_scale=None, y_zero_point=None, *,
          alpha=1.0, transA=0, transB=0):
    """alpha * (A' - a_zp) @ (B' - b_zp) * a_scale * b_scale + C * a_scale * b_scale (C int32, its
    zero point 0); b_scale / b_zero_point scalar or per column (N). Float out without y_scale,
    else quantized to y_scale / y_zero_point."""
    a = A.to(torch.float64).t() if transA else A.to(torch.float64)
    b = B.to(torch.float64).t() if transB else B.to(torch.float64)
    a = a - a_zero_point.to(torch.float64).reshape(())
    b = b - b_zero_point.to(torch.float64).reshape(-1 if b_zero_point.numel() > 1 else ())
    scale = a_scale.to(torch.float64).reshape(()) * b_scale.to(torch.float64).reshape(-1 if b_scale.numel() > 1 else ())
    acc = torch.matmul(a, b) * alpha
    if C is not None:
        acc = acc + C.to(torch.float64)
    y = acc * scale
    if y_scale is None:
        return y.to(a_scale.dtype)
    return _quant(y, y_scale, y_zero_point, A)
