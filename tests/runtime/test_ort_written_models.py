"""Models written by onnxruntime's own tools run in tritonnx and match onnxruntime: the files
``optimized_model_filepath`` writes at ORT_ENABLE_EXTENDED (com.microsoft FusedConv, FusedGemm,
FusedMatMul, BiasGelu, SkipLayerNormalization), ``quantize_dynamic`` (DynamicQuantizeLinear,
MatMulInteger, ConvInteger, com.microsoft DynamicQuantizeLSTM) and ``quantize_static`` in QDQ
format and in QOperator format (QLinearConv, QLinearMatMul, com.microsoft QGemm and the QLinear
ops), for zoo models (tiny) that between them hold every op those tools wrote for the zoo (all
17 zoo models were run through the four tools; these five cover their ops), and a small model
for the QLinear ops no zoo model gets (LeakyRelu, AveragePool)."""
import logging
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tolerances

import tritonnx
from tritonnx.runtime import InferenceSession

pytest.importorskip("onnxruntime.quantization")
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_dynamic, quantize_static  # noqa: E402

#: zoo model -> the com.microsoft ops onnxruntime's tools write for it
MODELS = {
    "lenet5": {"FusedConv", "FusedGemm", "QGemm"},
    "transformer_encoder": {"FusedMatMul", "BiasGelu", "SkipLayerNormalization", "QLinearAdd", "QLinearMul",
                            "QLinearSoftmax"},
    "char_lstm": {"DynamicQuantizeLSTM", "QLinearAdd"},
    "googlenet": {"FusedConv", "QGemm", "QLinearConcat", "QLinearGlobalAveragePool"},
    "autoencoder": {"FusedGemm", "QGemm", "QLinearSigmoid"},
}
TOLERANCE = tolerances.ORT_WRITTEN  # max |ours - onnxruntime| / max |onnxruntime| per kind of file


def _feeds(sess, seed):
    rng = np.random.default_rng(seed)
    feeds = {}
    for i in sess.get_inputs():
        shape = [2 if isinstance(d, str) or d is None else d for d in i.shape]
        feeds[i.name] = rng.integers(0, 5, shape) if "int" in i.type else rng.standard_normal(shape).astype(np.float32)
    return feeds


class _Reader(CalibrationDataReader):
    def __init__(self, sess):
        self._it = iter([_feeds(sess, k) for k in range(2)])

    def get_next(self):
        return next(self._it, None)


@pytest.fixture(scope="module", params=sorted(MODELS))
def written(request, tmp_path_factory):
    name = request.param
    d = tmp_path_factory.mktemp(name)
    path = str(d / f"{name}.onnx")
    tritonnx.export_model(name, path, config="tiny")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(d / "opt.onnx")
    plain = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's "consider pre-processing" advice
    quantize_dynamic(path, str(d / "qdyn.onnx"))
    quantize_static(path, str(d / "qdq.onnx"), _Reader(plain), quant_format=QuantFormat.QDQ)
    quantize_static(path, str(d / "qop.onnx"), _Reader(plain), quant_format=QuantFormat.QOperator)
    return name, d


@pytest.mark.parametrize("kind", sorted(TOLERANCE))
def test_runs_and_matches_onnxruntime(written, kind):
    name, d = written
    path = str(d / f"{kind}.onnx")
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = _feeds(ref, 5)
    expected = ref.run(None, feeds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = InferenceSession(path).run(None, feeds)
    for a, b in zip(got, expected):
        assert a.shape == b.shape and a.dtype == b.dtype
        err = float(np.abs(a.astype(np.float64) - b).max() / max(float(np.abs(b).max()), 1e-12))
        assert err <= TOLERANCE[kind], f"{name} {kind}: {err:.2e}"


def test_the_tools_wrote_the_contrib_ops(written):
    name, d = written
    ops = set()
    for kind in TOLERANCE:
        ops |= {n.op_type for n in onnx.load(str(d / f"{kind}.onnx")).graph.node if n.domain == "com.microsoft"}
    assert ops == MODELS[name]


def test_ms_fused_conv_then_pool_is_fused_by_tritonnx(written):
    """onnxruntime's FusedConv(Relu) -> MaxPool becomes tritonnx::ConvReluPool (split back into
    Conv -> Relu before the Conv rules run); outputs still match onnxruntime."""
    name, d = written
    if name != "lenet5":
        pytest.skip("lenet5's optimized file holds FusedConv -> MaxPool")
    path = str(d / "opt.onnx")
    assert any(n.op_type == "FusedConv" for n in onnx.load(path).graph.node)
    sess = InferenceSession(path)
    ops = [n.op_type for n in sess.rewritten_model().graph.node]
    assert ops.count("ConvReluPool") == 2 and "FusedConv" not in ops and "MaxPool" not in ops
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = _feeds(ref, 3)
    np.testing.assert_allclose(sess.run(None, feeds)[0], ref.run(None, feeds)[0], rtol=1e-4, atol=1e-5)


def test_qoperator_leaky_relu_and_average_pool(tmp_path):
    """QLinearLeakyRelu and QLinearAveragePool, which no zoo model gets, from a Conv -> LeakyRelu
    -> AveragePool model quantized in QOperator format; exact against onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b")]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("LeakyRelu", ["c"], ["l"], alpha=0.2),
         helper.make_node("AveragePool", ["l"], ["y"], kernel_shape=[2, 2], strides=[2, 2])],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), tmp_path / "f.onnx")
    logging.getLogger().setLevel(logging.ERROR)
    plain = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), _Reader(plain),
                    quant_format=QuantFormat.QOperator)
    path = str(tmp_path / "q.onnx")
    assert {"QLinearLeakyRelu", "QLinearAveragePool"} <= {n.op_type for n in onnx.load(path).graph.node}
    feeds = _feeds(plain, 7)
    np.testing.assert_array_equal(InferenceSession(path).run(None, feeds)[0],
                                  ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)[0])
