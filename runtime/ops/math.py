"""Element-wise ops: arithmetic, comparisons, logic, activations, Clip, Where, Cast.

Broadcasting is numpy's (multidirectional) from opset 7; the opset 1-6 forms with the
``broadcast``/``axis`` attributes are handled too. uint16/32/64 have no torch arithmetic:
those compute through numpy, whose wrap-around and unsigned semantics are ONNX's.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import needs_widening, scalar, via_numpy
from tritonnx.runtime.registry import register

def _legacy_broadcast(a: torch.Tensor, b: torch.Tensor, broadcast: int, axis) -> torch.Tensor:
    """Opset < 7: with ``broadcast=1`` B's shape is aligned to A's at ``axis`` (default: trailing)."""
    if not broadcast or axis is None or b.dim() == 0:
        return b
    axis = axis % a.dim() if a.dim() else 0
    return b.reshape([1] * axis + list(b.shape) + [1] * (a.dim() - axis - b.dim()))


def _broadcastable(op: str, names, *ts: torch.Tensor) -> None:
    """Raise `InvalidArgument` naming the inputs when their shapes do not broadcast (numpy rules)."""
    shapes = [tuple(t.shape) for t in ts]
    if len(set(shapes)) <= 1:
        return
    try:
        np.broadcast_shapes(*shapes)  # numpy's rules are ONNX's; torch.broadcast_shapes costs ~40x more
    except ValueError:
        desc = ", ".join(f"{n} {list(s)}" for n, s in zip(names, shapes))
        raise InvalidArgument(f"{op}: input shapes do not broadcast: {desc}") from None


def _binary(op: str, a: torch.Tensor, b: torch.Tensor, torch_fn, np_fn) -> torch.Tensor:
    if a.dtype != b.dtype:
        raise InvalidArgument(f"{op}: inputs A ({a.dtype}) and B ({b.dtype}) must have the same dtype")
    _broadcastable(op, ("A", "B"), a, b)
    if needs_widening(a, b):
        return via_numpy(lambda x, y: np_fn(x, y).astype(x.dtype), a, b)
    return torch_fn(a, b)


def _int_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.dtype.is_floating_point or a.dtype.is_complex:
        return torch.div(a, b)
    return torch.div(a, b, rounding_mode="trunc")


def _np_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return x // y if x.dtype.kind == "u" else x / y


_BINARY = {
    "Add": (torch.add, np.add),
    "Sub": (torch.sub, np.subtract),
    "Mul": (torch.mul, np.multiply),
    "Div": (_int_div, _np_div),
}


def _make_binary(op: str):
    torch_fn, np_fn = _BINARY[op]

    def modern(A, B):
        return _binary(op, A, B, torch_fn, np_fn)

    def legacy(A, B, *, broadcast=0, axis=None, consumed_inputs=None):
        return _binary(op, A, _legacy_broadcast(A, B, broadcast, axis), torch_fn, np_fn)

    modern.__name__ = legacy.__name__ = op
    modern.__doc__ = legacy.__doc__ = f"ONNX {op}: element-wise with numpy broadcasting (Y = A op B)."
    register(op, since=1, host_chain=True)(legacy)
    register(op, since=7, host_chain=True)(modern)


for _op in _BINARY:
    _make_binary(_op)


@register("Pow", since=1)
def Pow(X, Y, *, broadcast=0, axis=None):
    """ONNX Pow: X ** Y, result in X's dtype (Y may have another numeric dtype from opset 12)."""
    Y = _legacy_broadcast(X, Y, broadcast, axis)
    if needs_widening(X, Y):
        return via_numpy(lambda x, y: np.power(x, y).astype(x.dtype), X, Y)
    if not X.dtype.is_floating_point and Y.dtype.is_floating_point:
        return torch.pow(X.double(), Y.double()).to(X.dtype)
    if X.dtype.is_floating_point and X.dtype != torch.float64:
        return torch.pow(X.float(), Y.float() if Y.dtype.is_floating_point else Y).to(X.dtype)
    return torch.pow(X, Y).to(X.dtype)


def _variadic(op: str, tensors, torch_fn, np_fn) -> torch.Tensor:
    if not tensors:
        raise InvalidArgument(f"{op}: needs at least one input, got none")
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.dtype != first.dtype:
            raise InvalidArgument(f"{op}: input {i} has dtype {t.dtype}, expected {first.dtype} (input 0's)")
    _broadcastable(op, [f"input {i}" for i in range(len(tensors))], *tensors)
    if needs_widening(*tensors):
        def fn(*arrs):
            out = arrs[0]
            for a in arrs[1:]:
                out = np_fn(out, a)
            return np.array(out, dtype=arrs[0].dtype)
        return via_numpy(fn, *tensors)
    out = first
    for t in tensors[1:]:
        out = torch_fn(out, t)
    if len(tensors) == 1:
        out = out.clone()
    return out


@register("Sum", since=1)
def Sum(*data_0):
    """ONNX Sum: element-wise sum of all inputs (broadcast from opset 8)."""
    return _variadic("Sum", data_0, torch.add, np.add)


@register("Mean", since=1)
def Mean(*data_0):
    """ONNX Mean: element-wise mean of all inputs (floats)."""
    s = _variadic("Mean", data_0, torch.add, np.add)
    return (s / len(data_0)).to(s.dtype)


@register("Max", since=1, host_chain=True)
def Max(*data_0):
    """ONNX Max: element-wise maximum (NaN propagates, as numpy.maximum)."""
    return _variadic("Max", data_0, torch.maximum, np.maximum)


@register("Min", since=1, host_chain=True)
def Min(*data_0):
    """ONNX Min: element-wise minimum (NaN propagates, as numpy.minimum)."""
    return _variadic("Min", data_0, torch.minimum, np.minimum)


# --- comparisons and logic -------------------------------------------------------------------

_COMPARE = {
    "Equal": (torch.eq, np.equal),
    "Greater": (torch.gt, np.greater),
    "Less": (torch.lt, np.less),
    "GreaterOrEqual": (torch.ge, np.greater_equal),
    "LessOrEqual": (torch.le, np.less_equal),
    "And": (torch.logical_and, np.logical_and),
    "Or": (torch.logical_or, np.logical_or),
    "Xor": (torch.logical_xor, np.logical_xor),
}


def _make_compare(op: str):
    torch_fn, np_fn = _COMPARE[op]

    def fn(A, B, *, broadcast=0, axis=None, ctx=None):
        if isinstance(A, np.ndarray) or isinstance(B, np.ndarray):  # string tensors (numpy object arrays)
            if not (isinstance(A, np.ndarray) and isinstance(B, np.ndarray)):
                raise InvalidArgument(f"{op}: inputs A and B must both be string tensors or both numeric")
            return dtypes.from_numpy(np.ascontiguousarray(np_fn(A, B)), ctx.device if ctx is not None else "cpu")
        B = _legacy_broadcast(A, B, broadcast, axis)
        if A.dtype != B.dtype:
            raise InvalidArgument(f"{op}: inputs A ({A.dtype}) and B ({B.dtype}) must have the same dtype")
        _broadcastable(op, ("A", "B"), A, B)
        if needs_widening(A, B):
            return via_numpy(np_fn, A, B)
        return torch_fn(A, B)

    fn.__name__ = op
    fn.__doc__ = f"ONNX {op}: element-wise, boolean result, numpy broadcasting."
    register(op, since=1, host_chain=op in ("Equal", "Less", "Greater", "And", "Or"))(fn)


for _op in _COMPARE:
    _make_compare(_op)


@register("Not", since=1, host_chain=True)
def Not(X):
    """ONNX Not: logical negation of a bool tensor."""
    return torch.logical_not(X)


@register("Where", since=9, host_chain=True)
def Where(condition, X, Y):
    """ONNX Where: X where condition else Y (numpy broadcasting)."""
    if X.dtype != Y.dtype:
        raise InvalidArgument(f"Where: inputs X ({X.dtype}) and Y ({Y.dtype}) must have the same dtype")
    _broadcastable("Where", ("condition", "X", "Y"), condition, X, Y)
    if needs_widening(X, Y):
        return via_numpy(np.where, condition, X, Y)
    return torch.where(condition.to(torch.bool), X, Y)


# --- unary -----------------------------------------------------------------------------------

def _unary(op: str, torch_fn, np_fn=None, since: int = 1, host_chain: bool = False):
    def fn(X):
        if needs_widening(X):
            if np_fn is None:
                raise NotImplemented(f"{op}: dtype {X.dtype} is not supported")
            return via_numpy(lambda x: np_fn(x).astype(x.dtype), X)
        return torch_fn(X)

    fn.__name__ = op
    fn.__doc__ = f"ONNX {op}: element-wise."
    register(op, since=since, host_chain=host_chain)(fn)
    return fn


def _float_op(torch_fn):
    """Run a float op in fp32 for fp16/bf16 on the CPU (its half kernels are partial), cast
    back; on the GPU in the input's dtype."""
    def fn(x):
        if x.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu":
            return torch_fn(x.float()).to(x.dtype)
        return torch_fn(x)
    return fn


Relu = _unary("Relu", lambda x: torch.clamp_min(x, 0), lambda x: x)
Sigmoid = _unary("Sigmoid", _float_op(torch.sigmoid))
Tanh = _unary("Tanh", _float_op(torch.tanh))
Sqrt = _unary("Sqrt", _float_op(torch.sqrt))
Erf = _unary("Erf", _float_op(torch.erf))
Exp = _unary("Exp", _float_op(torch.exp))
Log = _unary("Log", _float_op(torch.log))
Neg = _unary("Neg", torch.neg, host_chain=True)
Abs = _unary("Abs", torch.abs, np.abs, host_chain=True)
Reciprocal = _unary("Reciprocal", _float_op(torch.reciprocal))
Floor = _unary("Floor", torch.floor, host_chain=True)
Ceil = _unary("Ceil", torch.ceil, host_chain=True)
Sin = _unary("Sin", _float_op(torch.sin), since=7)
Cos = _unary("Cos", _float_op(torch.cos), since=7)
Softsign = _unary("Softsign", _float_op(F.softsign))
Sign = _unary("Sign", torch.sign, np.sign, since=9)


@register("Softplus", since=1)
def Softplus(X):
    """ONNX Softplus: log(exp(x) + 1)."""
    return _float_op(lambda x: torch.where(x > 20, x, torch.log1p(torch.exp(x))))(X)


@register("LeakyRelu", since=1)
def LeakyRelu(X, *, alpha=0.01):
    """ONNX LeakyRelu: x if x >= 0 else alpha * x."""
    return torch.where(X >= 0, X, X * alpha)


@register("Elu", since=1)
def Elu(X, *, alpha=1.0):
    """ONNX Elu: x if x >= 0 else alpha * (exp(x) - 1)."""
    return _float_op(lambda x: torch.where(x >= 0, x, alpha * torch.expm1(x)))(X)


@register("Selu", since=1)
def Selu(X, *, alpha=1.67326319217681884765625, gamma=1.05070102214813232421875):
    """ONNX Selu: gamma * (x if x > 0 else alpha * (exp(x) - 1))."""
    return _float_op(lambda x: gamma * torch.where(x > 0, x, alpha * torch.expm1(x)))(X)


@register("HardSigmoid", since=1)
def HardSigmoid(X, *, alpha=0.2, beta=0.5):
    """ONNX HardSigmoid: clip(alpha * x + beta, 0, 1)."""
    return torch.clamp(X * alpha + beta, 0, 1).to(X.dtype)


@register("HardSwish", since=14)
def HardSwish(X):
    """ONNX HardSwish: x * clip(x / 6 + 1/2, 0, 1)."""
    return X * torch.clamp(X * (1 / 6) + 0.5, 0, 1)


@register("Gelu", since=20)
def Gelu(X, *, approximate="none"):
    """ONNX Gelu (opset 20): exact (erf) or ``approximate="tanh"``."""
    if approximate not in ("none", "tanh"):
        raise InvalidArgument(f"Gelu: approximate={approximate!r}, expected 'none' or 'tanh'")
    return _float_op(lambda x: F.gelu(x, approximate=approximate))(X)


@register("PRelu", since=1)
def PRelu(X, slope):
    """ONNX PRelu: x if x >= 0 else slope * x, slope broadcast unidirectionally to X."""
    if X.dtype != slope.dtype:
        raise InvalidArgument(f"PRelu: slope has dtype {slope.dtype}, expected X's ({X.dtype})")
    if needs_widening(X):
        return X.clone()
    return torch.where(X >= 0, X, X * slope)


@register("Clip", since=1)
def Clip_1(input, *, min=-3.4028234663852886e38, max=3.4028234663852886e38, consumed_inputs=None):
    """ONNX Clip (opsets 1-10): bounds as attributes."""
    return Clip(input, torch.tensor(min, device=input.device), torch.tensor(max, device=input.device))


@register("Clip", since=11)
def Clip(input, min=None, max=None):
    """ONNX Clip (opset 11+): clip(input, min, max); absent bounds are unbounded; min > max gives max.

    The bounds stay tensors (no host sync, CUDA-graph safe)."""
    if min is None and max is None:
        return input.clone()
    if needs_widening(input):
        lo = None if min is None else scalar(min)
        hi = None if max is None else scalar(max)
        return via_numpy(lambda x: np.minimum(np.maximum(x, lo if lo is not None else x), hi if hi is not None else x).astype(x.dtype), input)
    lo = None if min is None else min.to(device=input.device, dtype=input.dtype).reshape(())
    hi = None if max is None else max.to(device=input.device, dtype=input.dtype).reshape(())
    return torch.clamp(input, lo, hi)


# --- Cast ------------------------------------------------------------------------------------

_FLOAT8 = {
    torch.float8_e4m3fn: (448.0, False),
    torch.float8_e4m3fnuz: (240.0, False),
    torch.float8_e5m2: (57344.0, True),
    torch.float8_e5m2fnuz: (57344.0, False),
}


def cast_tensor(op: str, x: torch.Tensor, to: torch.dtype, saturate: int) -> torch.Tensor:
    """`x` as dtype `to` (a copy), ONNX Cast's rules: float8 targets saturate to their range
    unless ``saturate=0``; `op` names the caller in errors."""
    if x.dtype == to:
        return x.clone()
    if to in _FLOAT8:
        limit, has_inf = _FLOAT8[to]
        xf = x.float()
        if saturate:
            xf = torch.where(torch.isnan(xf), xf, xf.clamp(-limit, limit))
        else:
            bad = torch.isinf(xf) | (xf.abs() > limit)
            if not has_inf:
                xf = torch.where(bad, torch.full_like(xf, float("nan")), xf)
        return xf.to(to)
    if x.dtype in _FLOAT8:
        x = x.float()
    if to == torch.bool and needs_widening(x):
        return via_numpy(lambda a: a != 0, x)
    return x.to(to)


@register("Cast", since=1, host_chain=True)
def Cast(input, *, to, saturate=1, round_mode="up"):
    """ONNX Cast: convert to element type ``to`` (float8 targets saturate unless ``saturate=0``)."""
    if isinstance(to, str):  # opset 1-5 spell the type as a string, e.g. "FLOAT"
        from onnx import TensorProto

        to = TensorProto.DataType.Value(to.upper())
    if to not in dtypes.ONNX_TO_TORCH:
        raise NotImplemented(f"Cast: to={dtypes.onnx_type_name(to)} has no torch dtype")
    return cast_tensor("Cast", input, dtypes.ONNX_TO_TORCH[to], saturate)


@register("CastLike", since=15)
def CastLike(input, target_type, *, saturate=1, round_mode="up"):
    """ONNX CastLike: cast ``input`` to the dtype of ``target_type``."""
    return cast_tensor("CastLike", input, target_type.dtype, saturate)


@register("Identity", since=1, host_chain=True)
def Identity(input=None):
    """ONNX Identity: the input itself (no copy; a sequence, or an empty optional: None)."""
    return input



# --- more unary math and activations ---------------------------------------------------------

Tan = _unary("Tan", _float_op(torch.tan), since=7)
Asin = _unary("Asin", _float_op(torch.asin), since=7)
Acos = _unary("Acos", _float_op(torch.acos), since=7)
Atan = _unary("Atan", _float_op(torch.atan), since=7)
Sinh = _unary("Sinh", _float_op(torch.sinh), since=9)
Cosh = _unary("Cosh", _float_op(torch.cosh), since=9)
Asinh = _unary("Asinh", _float_op(torch.asinh), since=9)
Acosh = _unary("Acosh", _float_op(torch.acosh), since=9)
Atanh = _unary("Atanh", _float_op(torch.atanh), since=9)
IsNaN = _unary("IsNaN", torch.isnan, since=9)


@register("Round", since=11)
def Round(X):
    """ONNX Round: to the nearest integer, halves to even."""
    return torch.round(X)


@register("IsInf", since=10)
def IsInf(X, *, detect_negative=1, detect_positive=1):
    """ONNX IsInf: True at +inf (if detect_positive) and -inf (if detect_negative)."""
    pos = torch.isposinf(X) if detect_positive else torch.zeros_like(X, dtype=torch.bool)
    neg = torch.isneginf(X) if detect_negative else torch.zeros_like(X, dtype=torch.bool)
    return pos | neg


@register("Celu", since=12)
def Celu(X, *, alpha=1.0):
    """ONNX Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    return _float_op(lambda x: torch.clamp_min(x, 0) + torch.clamp_max(alpha * torch.expm1(x / alpha), 0))(X)


@register("ThresholdedRelu", since=10)
def ThresholdedRelu(X, *, alpha=1.0):
    """ONNX ThresholdedRelu: x if x > alpha else 0."""
    return torch.where(X > alpha, X, torch.zeros_like(X))


@register("Shrink", since=9)
def Shrink(input, *, bias=0.0, lambd=0.5):
    """ONNX Shrink: x + bias if x < -lambd, x - bias if x > lambd, else 0."""
    if needs_widening(input):
        return via_numpy(lambda x: np.where(x > lambd, x - bias, 0).astype(x.dtype), input)
    x = input.to(torch.float64) if not input.dtype.is_floating_point else input
    y = torch.where(x < -lambd, x + bias, torch.where(x > lambd, x - bias, torch.zeros_like(x)))
    return y.to(input.dtype)


@register("Mish", since=18)
def Mish(X):
    """ONNX Mish: x * tanh(softplus(x))."""
    return _float_op(F.mish)(X)


@register("Swish", since=24)
def Swish(X, *, alpha=1.0):
    """ONNX Swish: x * sigmoid(alpha * x)."""
    return _float_op(lambda x: x * torch.sigmoid(alpha * x))(X)


@register("Mod", since=10)
def Mod(A, B, *, fmod=0):
    """ONNX Mod: ``fmod=0`` the remainder with the divisor's sign (floored, numpy.mod),
    ``fmod=1`` the remainder with the dividend's sign (C fmod)."""
    if A.dtype != B.dtype:
        raise InvalidArgument(f"Mod: inputs A ({A.dtype}) and B ({B.dtype}) must have the same dtype")
    if needs_widening(A, B):
        return via_numpy(lambda x, y: (np.fmod(x, y) if fmod else np.mod(x, y)).astype(x.dtype), A, B)
    if A.dtype in (torch.float16, torch.bfloat16):
        return Mod(A.float(), B.float(), fmod=fmod).to(A.dtype)
    return torch.fmod(A, B) if fmod else torch.remainder(A, B)


@register("BitShift", since=11)
def BitShift(X, Y, *, direction):
    """ONNX BitShift on unsigned integers: X << Y or X >> Y."""
    if direction not in ("LEFT", "RIGHT"):
        raise InvalidArgument(f"BitShift: direction={direction!r}, expected LEFT or RIGHT")
    np_fn = np.left_shift if direction == "LEFT" else np.right_shift
    if needs_widening(X, Y) or X.dtype == torch.uint8:
        return via_numpy(lambda x, y: np_fn(x, y).astype(x.dtype), X, Y)
    return (X << Y) if direction == "LEFT" else (X >> Y)


_BITWISE = {
    "BitwiseAnd": (torch.bitwise_and, np.bitwise_and),
    "BitwiseOr": (torch.bitwise_or, np.bitwise_or),
    "BitwiseXor": (torch.bitwise_xor, np.bitwise_xor),
}


def _make_bitwise(op: str):
    torch_fn, np_fn = _BITWISE[op]

    def fn(A, B):
        return _binary(op, A, B, torch_fn, np_fn)

    fn.__name__ = op
    fn.__doc__ = f"ONNX {op}: element-wise on integers, numpy broadcasting."
    register(op, since=18)(fn)


for _op in _BITWISE:
    _make_bitwise(_op)

BitwiseNot = _unary("BitwiseNot", torch.bitwise_not, np.invert, since=18)


@register("SwiGLU", since=28)
def SwiGLU(A, B, *, alpha=1.0):
    """ONNX SwiGLU: A * sigmoid(alpha * A) * B (same shapes)."""
    if A.shape != B.shape:
        raise InvalidArgument(f"SwiGLU: A {list(A.shape)} and B {list(B.shape)} must have the same shape")
    return _float_op(lambda a: a * torch.sigmoid(alpha * a))(A) * B
