"""Dtypes the conformance cases cover thinly: uint16/32/64 (no torch arithmetic: computed
through numpy, checked here with values past 2**63 and wrap-around), fp16/bf16/fp64 through
the float handlers against a float64 reference with one tolerance table, int8 wrap-around."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import tolerances
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops import OPS

#: relative tolerance per dtype, one table for every float check here.

UNSIGNED = [np.uint16, np.uint32, np.uint64]


def _op(op, opset=18):
    return OPS.resolve("", op, opset).fn


def _t(a):
    return dtypes.from_numpy(np.asarray(a))


def _unsigned(dtype, shape, seed):
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(1, info.max, size=shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", UNSIGNED, ids=lambda d: d.__name__)
@pytest.mark.parametrize("op,fn", [
    ("Add", np.add), ("Sub", np.subtract), ("Mul", np.multiply), ("Div", np.floor_divide),
    ("Max", np.maximum), ("Min", np.minimum),
], ids=["Add", "Sub", "Mul", "Div", "Max", "Min"])
def test_unsigned_binary_wraps_like_numpy(op, fn, dtype):
    a, b = _unsigned(dtype, (3, 4), 0), _unsigned(dtype, (4,), 1)
    got = _op(op)(_t(a), _t(b))
    assert got.dtype == dtypes.torch_dtype_of_numpy(dtype)
    np.testing.assert_array_equal(dtypes.to_numpy(got), fn(a, b).astype(dtype))


@pytest.mark.parametrize("dtype", UNSIGNED, ids=lambda d: d.__name__)
def test_unsigned_compare_clip_where_reduce(dtype):
    a, b = _unsigned(dtype, (2, 5), 2), _unsigned(dtype, (2, 5), 3)
    np.testing.assert_array_equal(dtypes.to_numpy(_op("Greater")(_t(a), _t(b))), a > b)
    np.testing.assert_array_equal(dtypes.to_numpy(_op("Equal")(_t(a), _t(a))), np.ones_like(a, bool))
    lo, hi = np.array(5, dtype), np.array(np.iinfo(dtype).max // 2, dtype)
    np.testing.assert_array_equal(dtypes.to_numpy(_op("Clip")(_t(a), _t(lo), _t(hi))), np.clip(a, lo, hi))
    cond = a > b
    np.testing.assert_array_equal(dtypes.to_numpy(_op("Where")(_t(cond), _t(a), _t(b))), np.where(cond, a, b))
    got = _op("ReduceMax")(_t(a), _t(np.array([1])), keepdims=0)
    np.testing.assert_array_equal(dtypes.to_numpy(got), a.max(axis=1))
    got = _op("Concat")(_t(a), _t(b), axis=0)
    np.testing.assert_array_equal(dtypes.to_numpy(got), np.concatenate([a, b]))


def test_uint64_above_int64_range_orders_correctly():
    big = np.array([2**64 - 1, 2**63, 5], dtype=np.uint64)
    small = np.array([1, 2**63 - 1, 7], dtype=np.uint64)
    np.testing.assert_array_equal(dtypes.to_numpy(_op("Max")(_t(big), _t(small))), np.maximum(big, small))
    np.testing.assert_array_equal(dtypes.to_numpy(_op("Less")(_t(big), _t(small))), big < small)
    np.testing.assert_array_equal(dtypes.to_numpy(_op("ArgMax")(_t(big), axis=0, keepdims=0)), np.argmax(big))


def test_int8_add_wraps():
    a = np.array([120, -128, 5], np.int8)
    b = np.array([10, -1, 3], np.int8)
    np.testing.assert_array_equal(_op("Add")(_t(a), _t(b)).numpy(), (a.astype(np.int16) + b).astype(np.int8))


def test_int_div_truncates_toward_zero():
    a, b = np.array([-7, 7, -7], np.int32), np.array([2, -2, -2], np.int32)
    np.testing.assert_array_equal(_op("Div")(_t(a), _t(b)).numpy(), np.array([-3, -3, 3], np.int32))


FLOAT_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
_LN_REF = lambda x: torch.nn.functional.layer_norm(x, x.shape[-1:], eps=1e-5)  # noqa: E731
_P = lambda x: torch.linspace(0.5, 1.5, 6, dtype=x.dtype)  # noqa: E731  BatchNorm parameters
FLOAT_OPS = {
    "Sigmoid": (lambda x: _op("Sigmoid")(x), torch.sigmoid),
    "Erf": (lambda x: _op("Erf")(x), torch.erf),
    "Softmax": (lambda x: _op("Softmax", 13)(x, axis=1), lambda x: torch.softmax(x, 1)),
    "LayerNorm": (lambda x: _op("LayerNormalization", 17)(x, torch.ones(x.shape[-1], dtype=x.dtype)), _LN_REF),
    "LayerNorm-stats": (lambda x: _op("LayerNormalization", 17)(x, torch.ones(x.shape[-1], dtype=x.dtype),
                                                               num_outputs=3)[0], _LN_REF),
    "BatchNorm": (lambda x: _op("BatchNormalization", 15)(x, _P(x), _P(x), _P(x), _P(x)),
                  lambda x: (x - _P(x)[:, None]) / torch.sqrt(_P(x)[:, None] + 1e-5) * _P(x)[:, None] + _P(x)[:, None]),
    "Gemm": (lambda x: _op("Gemm", 13)(x[0], x[1], x[2, :, 0], alpha=0.5, beta=2.0, transB=1),
             lambda x: 0.5 * x[0] @ x[1].T + 2.0 * x[2, :, 0]),
    "ReduceMean": (lambda x: _op("ReduceMean")(x, torch.tensor([1]), keepdims=0), lambda x: x.mean(1)),
    "MatMul": (lambda x: _op("MatMul")(x, x.transpose(-1, -2)), lambda x: x @ x.transpose(-1, -2)),
    "GlobalAveragePool": (lambda x: _op("GlobalAveragePool")(x[None]), lambda x: x[None].mean((2, 3), keepdim=True)),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: str(d).removeprefix("torch."))
@pytest.mark.parametrize("name", list(FLOAT_OPS))
def test_float_dtypes_against_float64_reference(name, dtype):
    gen = torch.Generator().manual_seed(7)
    x64 = torch.randn(3, 6, 5, generator=gen, dtype=torch.float64)
    ours, ref = FLOAT_OPS[name]
    got = ours(x64.to(dtype))
    assert got.dtype == dtype
    want = ref(x64.to(dtype).double())
    scale = want.abs().max().item()
    err = (got.double() - want).abs().max().item()
    assert err <= tolerances.rtol(dtype) * max(scale, 1.0) * 4, f"{name} {dtype}: max abs err {err:.3e}"


def test_pow_keeps_base_dtype():
    base = torch.tensor([2, 3, 4], dtype=torch.int64)
    assert _op("Pow", 15)(base, torch.tensor([0.5, 2.0, 1.0])).tolist() == [1, 9, 4]
    f16 = _op("Pow", 15)(torch.tensor([2.0, 3.0], dtype=torch.float16), torch.tensor([3, 2], dtype=torch.int64))
    assert f16.dtype == torch.float16 and f16.tolist() == [8.0, 9.0]


def test_cast_float8_saturates_unless_told_not_to():
    x = torch.tensor([1000.0, -1000.0, float("inf"), 1.5])
    sat = _op("Cast", 21)(x, to=17)  # FLOAT8E4M3FN
    assert sat.float().tolist() == [448.0, -448.0, 448.0, 1.5]
    nosat = _op("Cast", 21)(x, to=17, saturate=0).float()
    assert torch.isnan(nosat[:3]).all() and nosat[3].item() == 1.5


def test_dtype_mapping_round_trips():
    for elem, tdt in dtypes.ONNX_TO_TORCH.items():
        assert dtypes.onnx_dtype(tdt) == elem
        t = torch.ones(2, 3, dtype=tdt)
        back = dtypes.from_numpy(dtypes.to_numpy(t))
        assert back.dtype == tdt
        assert torch.equal(back, t) if tdt.is_complex else torch.equal(back.float(), t.float())
    assert dtypes.ort_type_string(1) == "tensor(float)"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_to_numpy_copy_owns_its_memory_and_is_c_contiguous(dtype):
    t = torch.arange(1, 7, dtype=dtype).reshape(2, 3).t()  # a non-contiguous view
    a = dtypes.to_numpy(t, copy=True)
    assert a.flags.c_contiguous and a.shape == (3, 2)
    a[0, 0] = 99
    assert t[0, 0].item() == 1
    np.testing.assert_array_equal(a[1:].astype(np.float32), t[1:].float().numpy())
