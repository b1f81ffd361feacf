import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, parser

from tritonnx.bench.counting import count

RNG = np.random.default_rng(0)


def _with_inits(model, shapes, dtype=np.float32):
    for name, shape in shapes.items():
        model.graph.initializer.append(numpy_helper.from_array(RNG.standard_normal(shape).astype(dtype), name))
    return model


def test_conv_relu_pool_gemm_through_dynamic_reshape():
    model = _with_inits(parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[N,3,8,8] x) => (float[N,10] y) {
      c = Conv <pads=[1,1,1,1]> (x, w, b)
      r = Relu(c)
      p = MaxPool <kernel_shape=[2,2], strides=[2,2]> (r)
      s = Shape(p)
      n = Slice(s, zero, one)
      shape = Concat <axis=0> (n, minus1)
      f = Reshape(p, shape)
      y = Gemm <transB=1> (f, fw, fb)
    }"""), {"w": (4, 3, 3, 3), "b": (4,), "fw": (10, 64), "fb": (10,)})
    for name, value in (("zero", [0]), ("one", [1]), ("minus1", [-1])):
        model.graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
    cost = count(model, {"x": [2, 3, 8, 8]})
    conv = 2 * (2 * 4 * 8 * 8) * (3 * 3 * 3) + 2 * 4 * 8 * 8
    pool = 2 * 4 * 4 * 4 * 4
    gemm = 2 * 2 * 10 * 64 + 2 * 10
    assert cost.uncounted == []
    assert cost.by_op["Conv"] == conv and cost.by_op["MaxPool"] == pool and cost.by_op["Gemm"] == gemm
    assert cost.flops == conv + 512 + pool + gemm
    weights = (4 * 27 + 4 + 640 + 10) * 4 + 3 * 8
    assert cost.bytes == 2 * 3 * 64 * 4 + weights + 2 * 10 * 4


def test_batched_matmul_and_fp16_bytes():
    model = _with_inits(parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float16[B,5,7] a) => (float16[B,5,3] y) {
      y = MatMul(a, w)
    }"""), {"w": (7, 3)}, np.float16)
    cost = count(model, {"a": [4, 5, 7]})
    assert cost.flops == 2 * 4 * 5 * 3 * 7
    assert cost.bytes == 2 * (4 * 5 * 7 + 7 * 3 + 4 * 5 * 3)


@pytest.mark.parametrize("op, gates", [("LSTM", 4), ("GRU", 3), ("RNN", 1)])
@pytest.mark.parametrize("direction, dirs", [("forward", 1), ("bidirectional", 2)])
def test_recurrent_counts(op, gates, direction, dirs):
    T, B, I, H = 5, 3, 6, 4
    node = helper.make_node(op, ["X", "W", "R", "Bias"], ["Y", "Y_h"], hidden_size=H, direction=direction)
    graph = helper.make_graph(
        [node], "rnn", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    _with_inits(model, {"W": (dirs, gates * H, I), "R": (dirs, gates * H, H), "Bias": (dirs, 2 * gates * H)})
    cost = count(model, {"X": [T, B, I]})
    assert cost.flops == T * dirs * (2 * B * gates * H * (I + H) + 2 * B * gates * H)
    assert cost.bytes == 4 * (T * B * I + dirs * gates * H * (I + H + 2) + T * dirs * B * H)


def test_unknown_shapes_are_listed_not_guessed():
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[N,4] x, int64[2] s) => (float[M,K] y) {
      r = Reshape(x, s)
      y = Relu(r)
    }""")
    cost = count(model, {"x": [2, 4], "s": [2]})
    assert any("Relu" in name for name in cost.uncounted)
