"""Conv fusion rules (runtime/passes/fuse_conv.py) on small ONNX models written as text.

Each case: how many ConvReluPool nodes the rules made, which standard nodes remain, the
fused model's outputs (kernels under the Triton interpreter) against onnxruntime on the
original model, and the declines recorded for the Convs left standing.
"""
from __future__ import annotations

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.parser
import pytest

import tritonnx

ort = pytest.importorskip("onnxruntime")

def _model(body: str, inits: dict[str, tuple | np.ndarray], *, seed=0, opset=18) -> onnx.ModelProto:
    """A model from ONNX text; `inits`: name -> shape (seeded random values) or an array."""
    model = onnx.parser.parse_model(f'<ir_version: 8, opset_import: ["" : {opset}]>\n' + body)
    rng = np.random.default_rng(seed)
    for name, shape in inits.items():
        if isinstance(shape, np.ndarray):
            arr = shape
        else:
            arr = rng.standard_normal(shape).astype(np.float32)
            if len(shape) == 4:
                arr /= np.sqrt(np.prod(shape[1:]))
        model.graph.initializer.append(onnx.numpy_helper.from_array(arr, name))
    onnx.checker.check_model(model)
    return model


def _check(model, *, fused, remaining, declined=(), x_shape=(1, 3, 9, 9), kernels="triton", seed=1):
    x = np.random.default_rng(seed).standard_normal(x_shape).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    sess = tritonnx.InferenceSession(model.SerializeToString(), kernels=kernels)
    rewritten = sess.rewritten_model()
    ops = [n.op_type for n in rewritten.graph.node]
    assert ops.count("ConvReluPool") == fused, ops
    assert sorted(op for op in ops if op != "ConvReluPool") == sorted(remaining), ops
    report = sess.fusion_report()
    assert len(report.declined) == len(declined), str(report)
    for d, text in zip(report.declined, declined):
        assert text in d.reason, str(report)
    got = sess.run(None, {"x": x})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-4 * max(1.0, float(np.abs(w).max())))
    return rewritten, report


CONV = "<float[4,3,3,3] w, float[4] b>"


@pytest.mark.parametrize("pool,attrs,out_hw", [
    ("MaxPool", "kernel_shape=[2,2], strides=[2,2]", 3),
    ("MaxPool", "kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1]", 4),
    ("MaxPool", "kernel_shape=[2,2], strides=[2,2], ceil_mode=1", 4),
    ("AveragePool", "kernel_shape=[3,3], strides=[1,1], pads=[1,1,1,1]", 7),
    ("AveragePool", "kernel_shape=[3,3], strides=[1,1], pads=[1,1,1,1], count_include_pad=1", 7),
    ("AveragePool", "kernel_shape=[2,2], strides=[2,2], ceil_mode=1", 4),
    ("AveragePool", "kernel_shape=[3,3], strides=[2,2], pads=[1,1,1,1], ceil_mode=1, count_include_pad=1", 4),
    ("AveragePool", "kernel_shape=[2,2], strides=[2,2], pads=[1,1,1,1], ceil_mode=1, count_include_pad=1", 4),
    ("MaxPool", "kernel_shape=[2,2], strides=[2,2], pads=[1,1,1,1], ceil_mode=1", 4),
])
def test_conv_relu_pool(pool, attrs, out_hw):
    model = _model(f"""
    g (float[N,3,9,9] x) => (float[N,4,{out_hw},{out_hw}] y) {CONV} {{
        c = Conv<kernel_shape=[3,3]>(x, w, b)
        r = Relu(c)
        y = {pool}<{attrs}>(r)
    }}""", {"w": (4, 3, 3, 3), "b": (4,)})
    rewritten, report = _check(model, fused=1, remaining=[], x_shape=(2, 3, 9, 9))
    assert report.fused[0].replaced_ops == ("Conv", "Relu", pool)
    onnx.checker.check_model(rewritten)
    inferred = onnx.shape_inference.infer_shapes(rewritten, strict_mode=True)
    fused_out = [v for v in inferred.graph.value_info if v.name == rewritten.graph.node[0].output[0]]
    fused_out = fused_out or list(inferred.graph.output)
    dims = [d.dim_value or d.dim_param for d in fused_out[0].type.tensor_type.shape.dim]
    assert dims == ["N", 4, out_hw, out_hw]


def test_activations_and_auto_pad():
    model = _model("""
    g (float[1,3,9,9] x) => (float[1,4,5,5] y) <float[4,3,3,3] w1, float[4] b1, float[4,4,3,3] w2,
                                               float[4,4,1,1] w3, float lo, float hi> {
        c1 = Conv<auto_pad="SAME_UPPER", strides=[1,1]>(x, w1, b1)
        a1 = LeakyRelu<alpha=0.2>(c1)
        c2 = Conv<pads=[0,1,1,0], dilations=[1,1]>(a1, w2)
        a2 = Clip(c2, lo, hi)
        p2 = MaxPool<kernel_shape=[2,2], strides=[2,2], ceil_mode=1>(a2)
        c3 = Conv(p2, w3)
        y = Relu(c3)
    }""", {"w1": (4, 3, 3, 3), "b1": (4,), "w2": (4, 4, 3, 3), "w3": (4, 4, 1, 1),
          "lo": np.array(-0.2, np.float32), "hi": np.array(0.3, np.float32)})
    _check(model, fused=3, remaining=[])


def test_clip_bounds_as_attributes_before_opset_11():
    model = _model(f"""
    g (float[1,3,9,9] x) => (float[1,4,7,7] y) {CONV} {{
        c = Conv(x, w, b)
        y = Clip<min=-0.1, max=0.2>(c)
    }}""", {"w": (4, 3, 3, 3), "b": (4,)}, opset=10)
    _check(model, fused=1, remaining=[])


def test_residual_add_and_declines():
    model = _model("""
    g (float[1,3,9,9] x) => (float[1,4,9,9] y, float[1,4,9,9] t) <float[4,3,3,3] w1, float[4] b1,
                                                                   float[4,4,3,3] w2, float[4,3,1,1] wd> {
        c1 = Conv<pads=[1,1,1,1]>(x, w1, b1)
        a1 = Relu(c1)
        c2 = Conv<pads=[1,1,1,1]>(a1, w2)
        d = Conv(x, wd)
        s = Add(d, c2)
        y = Relu(s)
        t = Sigmoid(a1)
    }""", {"w1": (4, 3, 3, 3), "b1": (4,), "w2": (4, 4, 3, 3), "wd": (4, 3, 1, 1)})
    # c1 -> Relu (a1 also feeds Sigmoid: still fusable, the Relu itself is replaced);
    # Add(d, c2) -> Relu: the residual pattern takes the larger Conv (c2); the 1x1 one stays.
    rewritten, report = _check(model, fused=2, remaining=["Conv", "Sigmoid"], declined=["residual input"])
    assert report.declined[0].node == "Conv_3"


def test_declines_with_reasons():
    model = _model("""
    g (float[1,3,9,9] x, float[4,3,3,3] wx) => (float[1,4,3,3] y, float[1,4,7,7] z, float[1,4,7,7] u,
                                                    float[1,4,5,5] y3) <float[4,3,3,3] w, float[4,3,3,3] w2> {
        c = Conv(x, wx)
        r = Relu(c)
        y = MaxPool<kernel_shape=[2,2], strides=[2,2]>(r)
        c2 = Conv(x, w)
        z = Relu(c2)
        u = Sigmoid(c2)
        c3 = Conv(x, w2)
        r3 = Relu(c3)
        y3 = MaxPool<kernel_shape=[2,2], dilations=[2,2]>(r3)
    }""", {"w": (4, 3, 3, 3), "w2": (4, 3, 3, 3)})
    x = np.random.default_rng(0).standard_normal((1, 3, 9, 9)).astype(np.float32)
    wx = np.random.default_rng(1).standard_normal((4, 3, 3, 3)).astype(np.float32)
    sess = tritonnx.InferenceSession(model.SerializeToString(), kernels="triton")
    ops = [n.op_type for n in sess.rewritten_model().graph.node]
    # The dilated MaxPool is declined by the pool pattern, so its Conv+Relu fuse without it.
    assert sorted(ops) == sorted(["Conv", "Relu", "MaxPool", "Conv", "Relu", "Sigmoid", "ConvReluPool", "MaxPool"])
    reasons = {d.node: d.reason for d in sess.fusion_report().declined}
    assert len(reasons) == 2, reasons
    text = " | ".join(reasons.values())
    assert "not constant" in text and "2 uses" in text, text
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "wx": wx})
    for g, w in zip(sess.run(None, {"x": x, "wx": wx}), want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_no_match_without_activation():
    model = _model(f"""
    g (float[1,3,9,9] x) => (float[1,4,7,7] y) {CONV} {{
        c = Conv(x, w, b)
        y = Sigmoid(c)
    }}""", {"w": (4, 3, 3, 3), "b": (4,)})
    _, report = _check(model, fused=0, remaining=["Conv", "Sigmoid"], declined=["goes to Sigmoid"])


def test_fusion_off_and_torch_kernels():
    model = _model(f"""
    g (float[1,3,9,9] x) => (float[1,4,3,3] y) {CONV} {{
        c = Conv(x, w, b)
        r = Relu(c)
        y = MaxPool<kernel_shape=[2,2], strides=[2,2]>(r)
    }}""", {"w": (4, 3, 3, 3), "b": (4,)})
    _check(model, fused=1, remaining=[], kernels="torch")
    sess = tritonnx.InferenceSession(model.SerializeToString(), fusion=False)
    assert [n.op_type for n in sess.rewritten_model().graph.node] == ["Conv", "Relu", "MaxPool"]
    assert "fusion disabled" in sess.fusion_report().declined[0].reason


def test_grouped_fused_depthwise_declined():
    model = _model("""
    g (float[1,4,9,9] x) => (float[1,32,4,4] y) <float[32,2,3,3] wg, float[32,1,3,3] wd> {
        c1 = Conv<group=2, pads=[1,1,1,1]>(x, wg)
        a1 = Relu(c1)
        c2 = Conv<group=32>(a1, wd)
        a2 = Relu(c2)
        y = MaxPool<kernel_shape=[2,2], strides=[2,2]>(a2)
    }""", {"wg": (32, 2, 3, 3), "wd": (32, 1, 3, 3)})
    _check(model, fused=1, remaining=["Conv", "Relu", "MaxPool"], declined=["depthwise-like"], x_shape=(1, 4, 9, 9))


def test_after_batchnorm_folding():
    model = _model(f"""
    g (float[1,3,9,9] x) => (float[1,4,4,4] y) {CONV[:-1]}, float[4] s, float[4] t, float[4] mu, float[4] var> {{
        c = Conv<pads=[1,1,1,1]>(x, w, b)
        n = BatchNormalization<epsilon=0.001>(c, s, t, mu, var)
        r = Relu(n)
        y = MaxPool<kernel_shape=[3,3], strides=[2,2]>(r)
    }}""", {"w": (4, 3, 3, 3), "b": (4,), "s": (4,), "t": (4,), "mu": (4,),
            "var": np.abs(np.random.default_rng(2).standard_normal(4)).astype(np.float32) + 0.5})
    _, report = _check(model, fused=1, remaining=[])
    assert report.fused[0].replaced_ops == ("Conv", "Relu", "MaxPool")
