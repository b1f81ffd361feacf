"""Fusion inside If/Loop/Scan bodies: an LSTM and a Conv+Relu+MaxPool in a Loop body are fused
as at the top level, their weights (from the main graph, or the body's own initializers)
prepared once, run by the Triton kernels (interpreter on the CPU, tiny shapes), and match
onnxruntime; the fusion report says where each group (and each declined candidate) lives."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tritonnx.runtime import InferenceSession

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
HIDDEN, INPUT, STEPS, BATCH, TRIPS = 3, 4, 2, 1, 2


def _r(rng, *shape):
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)).astype(np.float32)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _loop_model(weights_in_body: bool) -> onnx.ModelProto:
    """Loop 'loop0' (2 trips): body = Conv->Relu->MaxPool on the outer `img` (summed into a
    carried scalar) and an LSTM on the outer `x` carrying its hidden state."""
    rng = np.random.default_rng(0)
    lstm_w = [numpy_helper.from_array(_r(rng, 1, 4 * HIDDEN, INPUT), "W"),
              numpy_helper.from_array(_r(rng, 1, 4 * HIDDEN, HIDDEN), "R"),
              numpy_helper.from_array(_r(rng, 1, 8 * HIDDEN), "B")]
    body = helper.make_graph([
        helper.make_node("Conv", ["img", "cw", "cb"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["rl"], name="relu"),
        helper.make_node("MaxPool", ["rl"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("ReduceSum", ["p"], ["ps"], keepdims=0, name="psum"),
        helper.make_node("LSTM", ["x", "W", "R", "B", "", "h_in"], ["Y", "Yh"], hidden_size=HIDDEN, name="lstm"),
        helper.make_node("Identity", ["Yh"], ["h_out"], name="h_next"),
        helper.make_node("Add", ["acc_in", "ps"], ["acc_out"], name="acc"),
        helper.make_node("Identity", ["cond_in"], ["cond_out"], name="cond"),
    ], "loop_body",
        [_vi("i", I64, []), _vi("cond_in", B, []), _vi("h_in", F, [1, BATCH, HIDDEN]), _vi("acc_in", F, [])],
        [_vi("cond_out", B, []), _vi("h_out", F, [1, BATCH, HIDDEN]), _vi("acc_out", F, []),
         _vi("Y", F, [STEPS, 1, BATCH, HIDDEN])],
        initializer=lstm_w if weights_in_body else [])
    inits = [numpy_helper.from_array(_r(rng, 2, 1, 3, 3), "cw"), numpy_helper.from_array(_r(rng, 2), "cb"),
             numpy_helper.from_array(np.array(TRIPS, np.int64), "M")] + ([] if weights_in_body else lstm_w)
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "", "h0", "acc0"], ["h", "acc", "Ys"], body=body, name="loop0")], "g",
        [_vi("img", F, [1, 1, 6, 6]), _vi("x", F, [STEPS, BATCH, INPUT]), _vi("h0", F, [1, BATCH, HIDDEN]),
         _vi("acc0", F, [])],
        [_vi("h", F, [1, BATCH, HIDDEN]), _vi("acc", F, []), _vi("Ys", F, [TRIPS, STEPS, 1, BATCH, HIDDEN])],
        initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def _feeds():
    rng = np.random.default_rng(1)
    return {"img": _r(rng, 1, 1, 6, 6), "x": _r(rng, STEPS, BATCH, INPUT), "h0": _r(rng, 1, BATCH, HIDDEN),
            "acc0": np.array(0.5, np.float32)}


@pytest.mark.parametrize("weights_in_body", [False, True], ids=["outer-weights", "body-initializers"])
def test_loop_body_lstm_and_conv_relu_pool_fused_with_triton_kernels(weights_in_body):
    model = _loop_model(weights_in_body)
    sess = InferenceSession(model.SerializeToString(), kernels="triton")
    report = sess.fusion_report()
    assert sorted(g.op_type for g in report.fused) == ["ConvReluPool", "LSTM"]
    assert all(g.where == "in Loop 'loop0' body" for g in report.fused), str(report)
    assert "in Loop 'loop0' body" in str(report)
    assert not report.declined
    assert sess.get_providers()[0] == "TritonExecutionProvider"
    loop = next(s for s in sess._executor.steps if s.op_type == "Loop")
    body = loop.attrs["body"].executor
    fused = [s for s in body.steps if s.domain == "tritonnx"]
    assert sorted(s.op_type for s in fused) == ["ConvReluPool", "LSTM"]
    assert all(s.prepared is not None for s in fused), "weights packed once, at session creation"
    assert not {"W", "R", "B", "cw", "cb"} & {n.split("\x00")[0] for n in loop.inputs}
    feeds = _feeds()
    ours = sess.run(None, feeds)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for a, b in zip(ours, ref):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_declined_candidate_in_nested_subgraph_says_where():
    """A Conv whose weights are not constant, inside If 'pick' inside Loop 'loop0': declined,
    the report names both levels."""
    conv_then = helper.make_graph([helper.make_node("Conv", ["img", "w_in"], ["y"], name="dyn_conv")], "then", [],
                                  [_vi("y", F, [1, 1, 4, 4])])
    conv_else = helper.make_graph([helper.make_node("Neg", ["img"], ["z"], name="neg")], "else", [],
                                  [_vi("z", F, [1, 1, 6, 6])])
    body = helper.make_graph(
        [helper.make_node("If", ["flag"], ["o"], then_branch=conv_then, else_branch=conv_else, name="pick"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["o"], ["o_out"])],
        "body", [_vi("i", I64, []), _vi("cond_in", B, [])], [_vi("cond_out", B, []), _vi("o_out", F, ["A", "B", "C", "D"])])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", ""], ["os"], body=body, name="loop0")], "g",
        [_vi("img", F, [1, 1, 6, 6]), _vi("w_in", F, [1, 1, 3, 3]), _vi("flag", B, []), _vi("M", I64, [])],
        [_vi("os", F, ["T", "A", "B", "C", "D"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    (declined,) = InferenceSession(model.SerializeToString()).fusion_report().declined
    assert declined.node == "dyn_conv"
    assert declined.where == "in If 'pick' then_branch, in Loop 'loop0' body"
    assert "not constant" in declined.reason
