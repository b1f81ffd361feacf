"""Every zoo CNN (tiny config) exported to ONNX, run fused through `InferenceSession` with the
Triton kernels (interpreter on the CPU), matches onnxruntime on the same file."""
from __future__ import annotations

import numpy as np
import pytest

import tritonnx
import tritonnx.zoo as zoo
from tritonnx.export import export_model

ort = pytest.importorskip("onnxruntime")

# name -> (ConvReluPool nodes expected, Conv nodes expected left standing)
EXPECTED = {
    "lenet5": (2, 0),
    "alexnet": (5, 0),
    "vgg16": (13, 0),
    "googlenet": (27, 0),
    "resnet18": (9, 3),  # the three 1x1 downsampling shortcuts feed a fused node's residual input
}


def test_every_zoo_cnn_is_covered():
    cnns = {name for name in zoo.names() if zoo.get(name).family == "cnn"}
    assert cnns == set(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_zoo_cnn_fused_matches_onnxruntime(name, tmp_path):
    entry = zoo.get(name)
    path = tmp_path / f"{name}.onnx"
    export_model(name, path, config="tiny", verify=False)
    feed = {n: x.numpy() for n, x in zip(entry.input_names, entry.example_inputs("tiny", batch=1, seed=3))}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    sess = tritonnx.InferenceSession(str(path), kernels="triton")
    ops = [n.op_type for n in sess.rewritten_model().graph.node]
    fused, convs_left = EXPECTED[name]
    assert (ops.count("ConvReluPool"), ops.count("Conv")) == (fused, convs_left), str(sess.fusion_report())
    report = sess.fusion_report()
    assert len(report.declined) == convs_left and all(d.reason for d in report.declined)
    for got, ref in zip(sess.run(None, feed), want):
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * scale)


def test_fp16_export_fused_matches_onnxruntime(tmp_path):
    """An fp16 model: the fused node gets fp16 weights, bias and input (Triton under the interpreter)."""
    entry = zoo.get("lenet5")
    path = tmp_path / "lenet5-fp16.onnx"
    export_model("lenet5", path, config="tiny", dtype="fp16", verify=False)
    feed = {n: x.half().numpy() for n, x in zip(entry.input_names, entry.example_inputs("tiny", batch=2, seed=4))}
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    sess = tritonnx.InferenceSession(str(path), kernels="triton")
    assert [n.op_type for n in sess.rewritten_model().graph.node].count("ConvReluPool") == 2
    for got, ref in zip(sess.run(None, feed), want):
        assert got.dtype == np.float16
        scale = max(1.0, float(np.abs(ref.astype(np.float32)).max()))
        np.testing.assert_allclose(got.astype(np.float32), ref.astype(np.float32), rtol=2e-2, atol=2e-2 * scale)
