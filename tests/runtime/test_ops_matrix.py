"""The dtype matrix: each op below, for every dtype onnxruntime (CPU) has a kernel for, gives
onnxruntime's result on the same single-node model (exact for integers and bool, a per-dtype
tolerance for floats). A dtype onnxruntime rejects is not compared; one we reject where it
accepts fails the test."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

import tolerances
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops import OPS

ort = pytest.importorskip("onnxruntime")

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64, np.bool_]
OPSET = 19
I64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731


def _data(dtype, shape, seed, positive=False):
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(1, 9, size=shape).astype(dtype)
    x = rng.standard_normal(shape)
    return (np.abs(x) + 0.1 if positive else x).astype(dtype)


def _x(dt, seed=0, shape=(2, 3, 4), positive=False):
    return _data(dt, shape, seed, positive)


#: op -> (inputs(dtype) -> list of arrays (None: absent), attributes)
OPS_UNDER_TEST = {
    **{op: (lambda dt: [_x(dt)], {}) for op in (
        "Relu", "Neg", "Abs", "Sign", "Floor", "Ceil", "Sigmoid", "Tanh", "Erf", "Not", "Identity",
        "Round", "IsNaN", "Softsign", "Softplus", "BitwiseNot", "Exp", "Sin", "HardSwish")},
    **{op: (lambda dt: [_x(dt, positive=True)], {}) for op in ("Sqrt", "Log", "Reciprocal")},
    **{op: (lambda dt: [_x(dt, 0), _x(dt, 1, (3, 4))], {}) for op in (
        "Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean", "Equal", "Greater", "Less",
        "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor")},
    "Pow": (lambda dt: [_x(dt, positive=True), _x(dt, 1, (4,))], {}),
    "Mod": (lambda dt: [_x(dt, 0), _x(dt, 1, (3, 4), positive=True)],
            {"fmod": 1}),
    "BitShift": (lambda dt: [_x(dt), np.full((4,), 2, dt)], {"direction": "LEFT"}),
    "Where": (lambda dt: [_x(np.bool_, 5), _x(dt, 0), _x(dt, 1, (4,))], {}),
    "Clip": (lambda dt: [_x(dt), np.array(2, dt), np.array(6, dt)], {}),
    "LeakyRelu": (lambda dt: [_x(dt)], {"alpha": 0.25}),
    "Concat": (lambda dt: [_x(dt, 0), _x(dt, 1, (2, 1, 4))], {"axis": 1}),
    "Gather": (lambda dt: [_x(dt), I64(2, -1, 0)], {"axis": 1}),
    "GatherElements": (lambda dt: [_x(dt), np.array([[[0, 1, 2, 0]]] * 2, np.int64)], {"axis": 1}),
    "Transpose": (lambda dt: [_x(dt)], {"perm": [2, 0, 1]}),
    "Reshape": (lambda dt: [_x(dt), I64(4, -1)], {}),
    "Flatten": (lambda dt: [_x(dt)], {"axis": 2}),
    "Squeeze": (lambda dt: [_x(dt, shape=(2, 1, 4)), I64(1)], {}),
    "Unsqueeze": (lambda dt: [_x(dt), I64(0, -1)], {}),
    "Slice": (lambda dt: [_x(dt), I64(0, 3), I64(2, 0), I64(1, 2), I64(1, -2)], {}),
    "Expand": (lambda dt: [_x(dt, shape=(3, 1)), I64(2, 3, 4)], {}),
    "Tile": (lambda dt: [_x(dt), I64(1, 2, 1)], {}),
    "Pad": (lambda dt: [_x(dt), I64(0, 1, 2, 0, 0, 1)], {"mode": "constant"}),
    "Pad-reflect": (lambda dt: [_x(dt), I64(0, 1, 2, 0, 1, 1)], {"mode": "reflect"}),
    "Split": (lambda dt: [_x(dt), I64(1, 3)], {"axis": 2}),
    "ReduceSum": (lambda dt: [_x(dt), I64(1)], {}),
    "ReduceMax": (lambda dt: [_x(dt), I64(0, 2)], {"keepdims": 0}),
    "ReduceMin": (lambda dt: [_x(dt), I64(-1)], {}),
    "ReduceMean": (lambda dt: [_x(dt), I64(1)], {}),
    "ReduceProd": (lambda dt: [_x(dt), I64(2)], {}),
    "ArgMax": (lambda dt: [_x(dt)], {"axis": 1, "select_last_index": 1}),
    "ArgMin": (lambda dt: [_x(dt)], {"axis": 2}),
    "MatMul": (lambda dt: [_x(dt), _x(dt, 1, (4, 5))], {}),
    "Gemm": (lambda dt: [_x(dt, 0, (3, 4)), _x(dt, 1, (5, 4)), _x(dt, 2, (5,))], {"transB": 1}),
    "TopK": (lambda dt: [_x(dt), I64(2)], {"axis": 2}),
    "CumSum": (lambda dt: [_x(dt), np.array(1, np.int64)], {"reverse": 1}),
    "Softmax": (lambda dt: [_x(dt)], {"axis": 1}),
    "MaxPool": (lambda dt: [_x(dt, shape=(1, 2, 5, 5))], {"kernel_shape": [2, 2], "pads": [1, 0, 0, 1]}),
    "AveragePool": (lambda dt: [_x(dt, shape=(1, 2, 5, 5))], {"kernel_shape": [3, 2]}),
    "GlobalAveragePool": (lambda dt: [_x(dt, shape=(1, 2, 3, 3))], {}),
    "GlobalMaxPool": (lambda dt: [_x(dt, shape=(1, 2, 3, 3))], {}),
    "Conv": (lambda dt: [_x(dt, 0, (1, 2, 5, 5)), _x(dt, 1, (3, 2, 3, 3))], {"pads": [1, 0, 1, 1]}),
    "Resize": (lambda dt: [_x(dt, shape=(1, 1, 3, 4)), None, np.array([1, 1, 2, 1.5], np.float32)], {}),
    "Shape": (lambda dt: [_x(dt)], {"start": 1}),
    "Size": (lambda dt: [_x(dt)], {}),
    "Range": (lambda dt: [np.array(1, dt), np.array(8, dt), np.array(2, dt)], {}),
    "Cast-to-float": (lambda dt: [_x(dt)], {"to": onnx.TensorProto.FLOAT}),
    "Cast-from-float": (lambda dt: [(_x(np.float32) * 4).astype(np.float32)], {}),
    "Trilu": (lambda dt: [_x(dt, shape=(3, 4))], {"upper": 0}),
    "Einsum": (lambda dt: [_x(dt, 0, (2, 3)), _x(dt, 1, (3, 4))], {"equation": "ij,jk->ik"}),
}


#: ops with more than one output
N_OUT = {"Split": 2, "TopK": 2}


def _model(op, inputs, attrs, opset):
    names = [f"x{i}" if a is not None else "" for i, a in enumerate(inputs)]
    vis = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
           for n, a in zip(names, inputs) if a is not None]
    outs = [f"y{i}" for i in range(N_OUT.get(op, 1))]
    node = helper.make_node(op, names, outs, **attrs)
    graph = helper.make_graph([node], "g", vis, [onnx.ValueInfoProto(name=o) for o in outs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _compare(case, dt):
    op = case.split("-")[0]
    make, attrs = OPS_UNDER_TEST[case]
    attrs = dict(attrs)
    inputs = make(dt)
    if case == "Cast-from-float":
        attrs["to"] = helper.np_dtype_to_tensor_dtype(np.dtype(dt))
    try:
        model = _model(op, inputs, attrs, OPSET)
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {f"x{i}": a for i, a in enumerate(inputs) if a is not None}
        wants = sess.run(None, feeds)
    except Exception:  # no onnxruntime kernel (or the type is not allowed): nothing to compare
        return None
    impl = OPS.resolve("", op, OPSET)
    args = [None if a is None else dtypes.from_numpy(a) for a in inputs]
    while args and args[-1] is None:
        args.pop()
    kwargs = dict(attrs)
    if impl.wants_num_outputs:
        kwargs["num_outputs"] = len(wants)
    gots = impl.fn(*args, **kwargs)
    gots = gots if isinstance(gots, tuple) else (gots,)
    for got, want in zip(gots, wants):
        _same(case, dt, dtypes.to_numpy(got), want)
    return np.dtype(dt).name


def _same(case, dt, got, want):
    assert got.shape == want.shape, f"{case} {np.dtype(dt).name}: shape {got.shape}, expected {want.shape}"
    assert got.dtype == want.dtype, f"{case} {np.dtype(dt).name}: dtype {got.dtype}, expected {want.dtype}"
    if want.dtype.kind == "f":
        rtol = tolerances.rtol(want.dtype)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=f"{case} {np.dtype(dt).name}")
    else:
        np.testing.assert_array_equal(got, want, err_msg=f"{case} {np.dtype(dt).name}")


#: case -> dtypes compared (filled as the tests run; print with -s for the support matrix)
MATRIX: dict[str, list[str]] = {}


@pytest.mark.parametrize("case", list(OPS_UNDER_TEST))
def test_dtype_matrix_matches_onnxruntime(case):
    compared = [name for dt in DTYPES if (name := _compare(case, dt))]
    MATRIX[case] = compared
    print(f"{case}: {', '.join(compared)}")
    assert compared, f"{case}: onnxruntime ran no dtype at all; the case is wrong"
