"""Opset-version forms of the handlers (attributes that became inputs, changed defaults and
semantics) against onnxruntime (CPU) on the same single-node model, and the errors handlers
raise for bad inputs (type, op, input and what was expected in the message)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops import OPS

ort = pytest.importorskip("onnxruntime")

_RNG = np.random.default_rng(11)
X = _RNG.standard_normal((2, 3, 4)).astype(np.float32)
X4 = _RNG.standard_normal((1, 2, 5, 4)).astype(np.float32)
I64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731


def _run_ort(op, opset, inputs, attrs, n_out):
    names = [f"x{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = [f"y{i}" for i in range(n_out)]
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a in zip(names, inputs) if a is not None]
    graph = helper.make_graph([helper.make_node(op, names, outs, **attrs)], "g", vis,
                              [onnx.ValueInfoProto(name=o) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {n: a for n, a in zip(names, inputs) if a is not None})


def _run_ours(op, opset, inputs, attrs, n_out):
    impl = OPS.resolve("", op, opset)
    args = [None if a is None else dtypes.from_numpy(a) for a in inputs]
    while args and args[-1] is None:
        args.pop()
    kwargs = dict(attrs)
    if impl.wants_num_outputs:
        kwargs["num_outputs"] = n_out
    out = impl.fn(*args, **kwargs)
    out = out if isinstance(out, tuple) else (out,)
    return [dtypes.to_numpy(o) for o in out[:n_out]]


#: id -> (op, opset, inputs, attributes, number of outputs)
CASES = {
    "Softmax-11-coerced-2d": ("Softmax", 11, [X], dict(axis=1), 1),
    "Softmax-13-one-axis": ("Softmax", 13, [X], dict(axis=1), 1),
    "LogSoftmax-11-default-axis": ("LogSoftmax", 11, [X], {}, 1),
    "Clip-6-attrs": ("Clip", 6, [X], dict(min=-0.5, max=0.7), 1),
    "Clip-11-max-only": ("Clip", 11, [X, None, np.array(0.3, np.float32)], {}, 1),
    "Pad-2-reflect-attrs": ("Pad", 2, [X4], dict(mode="reflect", pads=[0, 0, 2, 1, 0, 0, 1, 3]), 1),
    "Pad-11-edge-negative": ("Pad", 11, [X4, I64(0, 0, 2, -1, 0, 0, -1, 2)], dict(mode="edge"), 1),
    "Pad-18-axes": ("Pad", 18, [X4, I64(1, 2, 3, 0), np.array(1.5, np.float32), I64(-1, 2)], {}, 1),
    "Pad-19-wrap": ("Pad", 19, [X4, I64(0, 0, 3, 2, 0, 0, 1, 1)], dict(mode="wrap"), 1),
    "Split-11-attr": ("Split", 11, [X], dict(axis=2, split=[1, 3]), 2),
    "Split-13-input": ("Split", 13, [X, I64(2, 1)], dict(axis=1), 2),
    "Split-18-uneven": ("Split", 18, [X4], dict(axis=2, num_outputs=2), 2),
    "Squeeze-11-attr": ("Squeeze", 11, [X4[:1, :, :1]], dict(axes=[0, -2]), 1),
    "Unsqueeze-11-negative": ("Unsqueeze", 11, [X], dict(axes=[-1, 0]), 1),
    "Unsqueeze-13-input": ("Unsqueeze", 13, [X, I64(1, 4)], {}, 1),
    "ReduceMean-13-attr": ("ReduceMean", 13, [X], dict(axes=[0, 2], keepdims=0), 1),
    "ReduceMean-18-input": ("ReduceMean", 18, [X, I64(-1)], {}, 1),
    "ReduceSum-11-attr": ("ReduceSum", 11, [X], dict(axes=[1]), 1),
    "ReduceSum-13-noop": ("ReduceSum", 13, [X, np.zeros(0, np.int64)], dict(noop_with_empty_axes=1), 1),
    "Dropout-7-inference": ("Dropout", 7, [X], dict(ratio=0.3), 1),
    "TopK-1-k-attr": ("TopK", 9, [X], dict(axis=1, k=2), 2),
    "Dropout-12-ratio-input": ("Dropout", 12, [X, np.array(0.3, np.float32)], {}, 2),
    "Slice-9-attrs": ("Slice", 9, [X], dict(starts=[1, -3], ends=[100, -1], axes=[2, 1]), 1),
    "Slice-13-neg-steps": ("Slice", 13, [X, I64(-1, 3), I64(-100, 0), I64(2, 1), I64(-2, -1)], {}, 1),
    "BatchNorm-9-inference": ("BatchNormalization", 9, [X4] + [
        np.abs(_RNG.standard_normal(2)).astype(np.float32) + 0.5 for _ in range(4)], dict(epsilon=1e-3), 1),
    "Reshape-5-zero-minus-one": ("Reshape", 5, [X, I64(0, -1)], {}, 1),
    "Flatten-9-axis0": ("Flatten", 9, [X], dict(axis=0), 1),
    "Flatten-13-negative": ("Flatten", 13, [X4], dict(axis=-1), 1),
    "Gemm-9-bias-row": ("Gemm", 9, [X[0], X[1], X[0, 0, :3].copy()], dict(alpha=0.5, beta=2.0, transB=1), 1),
    "Gemm-13-no-C": ("Gemm", 13, [X[0].T.copy(), X[1].T.copy()], dict(transA=1), 1),
    "MaxPool-8-pads": ("MaxPool", 8, [X4], dict(kernel_shape=[2, 3], pads=[1, 0, 0, 1]), 1),
    "AveragePool-7-count-pad": ("AveragePool", 7, [X4], dict(kernel_shape=[3, 2], pads=[1, 1, 1, 0], count_include_pad=1), 1),
    "Transpose-default": ("Transpose", 13, [X], {}, 1),
    "Gather-negative-indices": ("Gather", 13, [X, I64(-1, 0, -2)], dict(axis=1), 1),
    "Expand-bidirectional": ("Expand", 13, [X[:, :1], I64(3, 1, 1, 1)], {}, 1),
    "Tile": ("Tile", 13, [X, I64(1, 2, 3)], {}, 1),
    "Resize-10-nearest-down": ("Resize", 10, [X4, np.array([1, 1, 0.6, 0.7], np.float32)], {}, 1),
    "Resize-10-nearest-up": ("Resize", 10, [X4, np.array([1, 1, 2.5, 1.5], np.float32)], {}, 1),
    "Resize-10-linear": ("Resize", 10, [X4, np.array([1, 1, 1.7, 0.5], np.float32)], dict(mode="linear"), 1),
    "Upsample-9-nearest": ("Upsample", 9, [X4, np.array([1, 1, 2, 3], np.float32)], {}, 1),
    "Upsample-7-linear": ("Upsample", 7, [X4], dict(mode="linear", scales=[1.0, 1.0, 2.0, 1.5]), 1),
    "Resize-13-cubic-sizes": ("Resize", 13, [X4, None, None, I64(1, 2, 7, 3)],
                              dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel"), 1),
    "Resize-18-linear-axes-antialias": ("Resize", 18, [X4, None, np.array([0.5, 0.6], np.float32)],
                                        dict(mode="linear", axes=[2, 3], antialias=1), 1),
    "Resize-13-uint8-linear": ("Resize", 13, [(np.abs(X4) * 90).astype(np.uint8), None,
                                              np.array([1, 1, 1.5, 2], np.float32)], dict(mode="linear"), 1),
    "QuantizeLinear-13-per-axis": ("QuantizeLinear", 13, [X * 50, np.array([0.5, 0.25, 1.0], np.float32),
                                                         np.array([3, -2, 0], np.int8)], dict(axis=1), 1),
    "DequantizeLinear-10-uint8": ("DequantizeLinear", 10, [(np.abs(X) * 60).astype(np.uint8),
                                                           np.array(0.2, np.float32), np.array(7, np.uint8)], {}, 1),
    "MatMulInteger-zp": ("MatMulInteger", 10, [(np.abs(X[0]) * 60).astype(np.uint8), (np.abs(X[1].T) * 40).astype(np.uint8),
                                               np.array(3, np.uint8), np.array(2, np.uint8)], {}, 1),
    "QLinearMatMul": ("QLinearMatMul", 10, [(np.abs(X[0]) * 60).astype(np.uint8), np.array(0.05, np.float32),
                                            np.array(4, np.uint8), (np.abs(X[1].T) * 60).astype(np.uint8),
                                            np.array(0.03, np.float32), np.array(2, np.uint8),
                                            np.array(0.2, np.float32), np.array(10, np.uint8)], {}, 1),
    "QLinearConv-per-channel": ("QLinearConv", 10, [
        (np.abs(X4) * 60).astype(np.uint8), np.array(0.05, np.float32), np.array(3, np.uint8),
        (_RNG.standard_normal((3, 2, 2, 2)) * 40).astype(np.int8), np.array([0.02, 0.03, 0.01], np.float32),
        np.zeros(3, np.int8), np.array(0.1, np.float32), np.array(5, np.uint8), np.array([10, -20, 30], np.int32)],
        dict(pads=[1, 0, 0, 1], strides=[2, 1]), 1),
    "Range-int": ("Range", 11, [np.array(10, np.int32), np.array(-3, np.int32), np.array(-4, np.int32)], {}, 1),
}


#: onnxruntime truncates integer Resize results; we round, as onnx's reference does: off by <= 1.
ATOL = {"Resize-13-uint8-linear": 1}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_opset_form_matches_onnxruntime(case):
    op, opset, inputs, attrs, n_out = CASES[case]
    want = _run_ort(op, opset, inputs, attrs, n_out)
    got = _run_ours(op, opset, inputs, attrs, n_out)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g.astype(np.float64), w, rtol=1e-5, atol=ATOL.get(case, 1e-6))


def _call(op, opset, *inputs, **attrs):
    impl = OPS.resolve("", op, opset)
    if impl.wants_num_outputs:
        attrs.setdefault("num_outputs", 1)
    return impl.fn(*inputs, **attrs)


@pytest.mark.parametrize("call,error,words", [
    (lambda: _call("Conv", 18, torch.ones(1, 3, 5, 5), torch.ones(4, 2, 3, 3)), InvalidArgument,
     ["Conv", "X", "3 channels", "W.shape[1] * group"]),
    (lambda: _call("Conv", 18, torch.ones(1, 3, 5, 5), torch.ones(4, 3, 3, 3), torch.ones(5)), InvalidArgument,
     ["Conv", "B", "[5]", "[4]"]),
    (lambda: _call("Reshape", 18, torch.ones(2, 3), torch.tensor([4, 2])), InvalidArgument,
     ["Reshape", "[2, 3]", "[4, 2]"]),
    (lambda: _call("Gemm", 13, torch.ones(2, 3), torch.ones(4, 5)), InvalidArgument, ["Gemm", "inner"]),
    (lambda: _call("MatMul", 13, torch.ones(2, 3), torch.ones(4, 5)), InvalidArgument, ["MatMul", "inner"]),
    (lambda: _call("Concat", 13, torch.ones(2, 3), torch.ones(2, 3, 1), axis=0), InvalidArgument,
     ["Concat", "input 1", "rank 2"]),
    (lambda: _call("Gather", 13, torch.ones(2, 3), torch.tensor([5])), InvalidArgument,
     ["Gather", "index 5", "size 2"]),
    (lambda: _call("Add", 14, torch.ones(2), torch.ones(2, dtype=torch.float64)), InvalidArgument,
     ["Add", "torch.float32", "torch.float64"]),
    (lambda: _call("Cast", 21, torch.ones(2), to=TensorProto.INT4), NotImplemented, ["Cast", "INT4"]),
    (lambda: _call("Split", 13, torch.ones(5), torch.tensor([2, 2])), InvalidArgument, ["Split", "sums to 4", "5"]),
    (lambda: _call("Transpose", 13, torch.ones(2, 3), perm=[0, 0]), InvalidArgument, ["Transpose", "perm"]),
    (lambda: _call("MaxPool", 12, torch.ones(1, 1, 2, 2), kernel_shape=[3, 3]), InvalidArgument,
     ["MaxPool", "smaller than the kernel"]),
    (lambda: _call("Conv", 18, torch.ones(1, 3, 5, 5), torch.ones(4, 3, 3, 3), auto_pad="SAME"), InvalidArgument,
     ["Conv", "auto_pad", "SAME_UPPER"]),
    (lambda: _call("Add", 14, torch.ones(2, 3), torch.ones(4)), InvalidArgument,
     ["Add", "do not broadcast", "A [2, 3]", "B [4]"]),
    (lambda: _call("Sum", 13, torch.ones(2, 3), torch.ones(3), torch.ones(2)), InvalidArgument,
     ["Sum", "input 2 [2]"]),
], ids=["conv-channels", "conv-bias", "reshape", "gemm", "matmul", "concat", "gather", "add-dtypes", "cast-int4",
        "split-sizes", "transpose-perm", "pool-too-small", "auto-pad", "add-broadcast", "sum-broadcast"])
def test_bad_input_raises_named_error(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_legacy_experimental_ops():
    x = torch.from_numpy(X4)
    got = _call("ImageScaler", 8, x, bias=[1.0, -2.0], scale=0.5)
    torch.testing.assert_close(got, x * 0.5 + torch.tensor([1.0, -2.0]).reshape(1, 2, 1, 1))
    torch.testing.assert_close(_call("Affine", 8, x, alpha=2.0, beta=1.0), 2 * x + 1)
    torch.testing.assert_close(_call("ScaledTanh", 8, x, alpha=2.0, beta=0.5), 2 * torch.tanh(0.5 * x))
    assert _call("Crop", 8, x, border=[1, 2, 0, 1]).shape == (1, 2, 2, 3)
    assert _call("Crop", 8, x, border=[1, 1, 0, 0], scale=[2, 2]).shape == (1, 2, 2, 2)


@pytest.mark.parametrize("opset,mask_dtype", [(7, torch.float32), (10, torch.bool), (13, torch.bool)])
def test_inference_dropout_mask_keeps_everything(opset, mask_dtype):
    """The spec's mask (1 = kept; dtype T before opset 10, bool from 10), as onnx's reference
    gives it; onnxruntime 1.32 returns an all-zero mask for opsets 7-11."""
    x = torch.from_numpy(X)
    y, mask = _call("Dropout", opset, x, num_outputs=2)
    assert y is x or torch.equal(y, x)
    assert mask.dtype == mask_dtype and bool(mask.all())
