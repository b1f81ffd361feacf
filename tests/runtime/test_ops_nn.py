"""Conv, ConvTranspose and pooling handlers against onnxruntime (CPU) on random inputs over the
attributes the conformance cases touch only lightly: 1-D/3-D, asymmetric pads, SAME_LOWER,
dilations, groups, ceil_mode, count_include_pad, MaxPool Indices with storage_order; and LRN
against the ONNX formula in float64 (and onnxruntime for odd sizes)."""
from __future__ import annotations

import numpy as np

import pytest
import torch
from onnx import TensorProto, helper

import tolerances
from tritonnx.runtime.ops import OPS

ort = pytest.importorskip("onnxruntime")

#: relative tolerance per dtype (one table); atol is scaled by the reduction length.


def _rng(seed=0):
    return np.random.default_rng(seed)


def _ort(op, inputs, attrs, n_out=1, opset=19, out_types=None):
    names = [f"x{i}" for i in range(len(inputs))]
    outs = [f"y{i}" for i in range(n_out)]
    elem = helper.np_dtype_to_tensor_dtype(inputs[0].dtype)
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape) for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info(o, (out_types or {}).get(i, elem), None) for i, o in enumerate(outs)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip(names, inputs)))


def _ours(op, inputs, attrs, n_out=1, opset=19):
    impl = OPS.resolve("", op, opset)
    kwargs = dict(attrs)
    if impl.wants_num_outputs:
        kwargs["num_outputs"] = n_out
    out = impl.fn(*[torch.from_numpy(a) for a in inputs], **kwargs)
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out[:n_out]]


def _close(got, want, reduce_len=1):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=tolerances.rtol(want.dtype), atol=tolerances.atol(want.dtype, reduce_len))


CONV_CASES = {
    "1d_asym_pads": ((2, 3, 11), (4, 3, 3), dict(pads=[2, 1])),
    "2d_asym_pads_stride": ((1, 4, 9, 8), (6, 4, 3, 2), dict(pads=[0, 1, 2, 0], strides=[2, 3])),
    "2d_same_lower_stride": ((1, 2, 10, 7), (3, 2, 3, 2), dict(auto_pad="SAME_LOWER", strides=[2, 3])),
    "2d_dil_stride": ((1, 2, 10, 9), (3, 2, 3, 2), dict(dilations=[2, 3], strides=[2, 1], pads=[1, 1, 1, 1])),
    "2d_same_upper_groups": ((2, 6, 7, 7), (4, 3, 3, 3), dict(auto_pad="SAME_UPPER", group=2)),
    "2d_depthwise_valid": ((1, 4, 6, 5), (4, 1, 3, 3), dict(auto_pad="VALID", group=4)),
    "3d_pads_dil": ((1, 2, 5, 6, 7), (3, 2, 2, 3, 2), dict(pads=[1, 0, 1, 0, 2, 1], dilations=[1, 2, 2])),
}


@pytest.mark.parametrize("case", list(CONV_CASES), ids=list(CONV_CASES))
def test_conv_matches_onnxruntime(case):
    """fp32 and fp64 (onnxruntime's CPU Conv is fp32 only: fp64 is held to fp32's tolerance)."""
    xs, ws, attrs = CONV_CASES[case]
    rng = _rng(1)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    want = _ort("Conv", [a.astype(np.float32) for a in (x, w, b)], attrs)[0]
    _close(_ours("Conv", [a.astype(np.float32) for a in (x, w, b)], attrs)[0], want, reduce_len=int(np.prod(ws[1:])))
    _close(_ours("Conv", [x, w, b], attrs)[0].astype(np.float32), want, reduce_len=int(np.prod(ws[1:])))


CONVT_CASES = {
    "1d_stride_outpad": ((1, 2, 5), (2, 3, 3), dict(strides=[2], output_padding=[1])),
    "2d_asym_pads_dil": ((1, 3, 4, 5), (3, 2, 3, 2), dict(pads=[1, 0, 0, 1], dilations=[2, 1], strides=[1, 2])),
    "2d_output_shape": ((1, 2, 3, 3), (2, 2, 3, 3), dict(strides=[3, 2], output_shape=[10, 8])),
    "2d_same_upper_groups": ((1, 4, 3, 4), (4, 1, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2, 2], group=2)),
    "3d": ((1, 2, 3, 2, 3), (2, 1, 2, 2, 2), dict(strides=[2, 1, 2])),
}


@pytest.mark.parametrize("case", list(CONVT_CASES), ids=list(CONVT_CASES))
def test_conv_transpose_matches_onnxruntime(case):
    xs, ws, attrs = CONVT_CASES[case]
    rng = _rng(2)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[1] * attrs.get("group", 1)).astype(np.float32)
    want = _ort("ConvTranspose", [x, w, b], attrs)[0]
    _close(_ours("ConvTranspose", [x, w, b], attrs)[0], want, reduce_len=int(np.prod(ws)))


POOL_CASES = {
    "1d_ceil_asym": ((1, 2, 10), dict(kernel_shape=[3], strides=[2], pads=[1, 0], ceil_mode=1)),
    "2d_asym_pads": ((2, 3, 7, 8), dict(kernel_shape=[3, 2], pads=[1, 0, 2, 1], strides=[2, 2])),
    "2d_same_lower": ((1, 2, 7, 6), dict(kernel_shape=[3, 3], auto_pad="SAME_LOWER", strides=[2, 1])),
    "2d_dil_ceil": ((1, 1, 9, 9), dict(kernel_shape=[2, 2], dilations=[2, 3], strides=[2, 2], ceil_mode=1)),
    "3d_pads": ((1, 2, 5, 6, 4), dict(kernel_shape=[2, 3, 2], pads=[1, 1, 0, 0, 1, 1], strides=[2, 2, 1])),
    "2d_sym_pads": ((1, 3, 7, 7), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2])),
    "2d_sym_pads_ceil": ((1, 3, 8, 8), dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2], ceil_mode=1)),
}


@pytest.mark.parametrize("case", list(POOL_CASES), ids=list(POOL_CASES))
def test_maxpool_without_indices_matches_onnxruntime(case):
    """One output: symmetric pads take torch's own padding (no padded copy)."""
    xs, attrs = POOL_CASES[case]
    x = _rng(7).standard_normal(xs).astype(np.float32)
    _close(_ours("MaxPool", [x], attrs, opset=12)[0], _ort("MaxPool", [x], attrs, opset=12)[0])


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("case", list(POOL_CASES), ids=list(POOL_CASES))
def test_maxpool_values_and_indices_match_onnxruntime(case, storage_order):
    xs, attrs = POOL_CASES[case]
    attrs = dict(attrs, storage_order=storage_order)
    x = _rng(3).standard_normal(xs).astype(np.float32)
    want_y, want_i = _ort("MaxPool", [x], attrs, n_out=2, opset=12, out_types={1: TensorProto.INT64})
    got_y, got_i = _ours("MaxPool", [x], attrs, n_out=2, opset=12)
    _close(got_y, want_y)
    np.testing.assert_array_equal(got_i, want_i)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("case", list(POOL_CASES), ids=list(POOL_CASES))
def test_averagepool_matches_onnxruntime(case, count_include_pad):
    xs, attrs = POOL_CASES[case]
    attrs = dict(attrs, count_include_pad=count_include_pad)
    x = _rng(4).standard_normal(xs).astype(np.float32)
    want = _ort("AveragePool", [x], attrs)[0]
    _close(_ours("AveragePool", [x], attrs)[0], want, reduce_len=8)


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_lrn_uses_the_onnx_window(size):
    """ONNX's window is [c - floor((size-1)/2), c + ceil((size-1)/2)] (torch's differs for even sizes)."""
    x = _rng(6).standard_normal((1, 6, 2, 2))
    alpha, beta, bias = 1e-3, 0.75, 2.0
    sq = np.zeros_like(x)
    for c in range(6):
        lo, hi = max(0, c - (size - 1) // 2), min(5, c + (size - 1) - (size - 1) // 2)
        sq[:, c] = (x[:, lo:hi + 1] ** 2).sum(axis=1)
    want = x / (bias + alpha / size * sq) ** beta
    got = OPS.resolve("", "LRN", 13).fn(torch.from_numpy(x), alpha=alpha, beta=beta, bias=bias, size=size)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    if size % 2:  # onnxruntime takes odd sizes only
        want32 = _ort("LRN", [x.astype(np.float32)], dict(alpha=alpha, beta=beta, bias=bias, size=size), opset=13)[0]
        _close(_ours("LRN", [x.astype(np.float32)], dict(alpha=alpha, beta=beta, bias=bias, size=size), opset=13)[0], want32)
