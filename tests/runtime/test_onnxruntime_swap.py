"""One script written for onnxruntime runs unchanged after swapping the import for tritonnx."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SCRIPT = '''
import numpy as np
import onnxruntime as rt

wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"]
providers = [p for p in wanted if p in rt.get_available_providers()]
so = rt.SessionOptions()
so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
sess = rt.InferenceSession(MODEL_PATH, sess_options=so, providers=providers)

inp = sess.get_inputs()[0]
out_names = [o.name for o in sess.get_outputs()]
batch = 3
shape = [batch if isinstance(d, str) else d for d in inp.shape]
x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
probs, logits = sess.run(None, {inp.name: x})
(only_logits,) = sess.run([out_names[1]], {inp.name: x})
meta = sess.get_modelmeta()
try:
    sess.run(None, {inp.name: x.astype(np.float64)})
    wrong_dtype_error = None
except Exception as exc:
    wrong_dtype_error = "data type" in str(exc)
RESULT = {
    "input": (inp.name, inp.type, inp.shape),
    "outputs": [(o.name, o.type, o.shape) for o in sess.get_outputs()],
    "probs": probs, "logits": logits, "only_logits": only_logits,
    "producer": meta.producer_name, "wrong_dtype_error": wrong_dtype_error,
    "providers_ok": set(sess.get_providers()) <= set(rt.get_available_providers()),
}
'''


def _classic_cnn(path):
    rng = np.random.default_rng(42)

    def init(name, *shape, scale=0.3, offset=0.0):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale + offset).astype(np.float32), name)

    inits = [init("w", 4, 1, 3, 3), init("b", 4, scale=0.1), init("gamma", 4, offset=1.0), init("beta", 4, scale=0.1),
             init("mean", 4, scale=0.1), numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), "var"),
             init("fc_w", 5, 4 * 4 * 4, scale=0.2), init("fc_b", 5, scale=0.1)]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(nodes, "classic_cnn",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 5]),
                               helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="swap-test")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _run(script: str, model_path) -> dict:
    scope = {"MODEL_PATH": str(model_path)}
    exec(compile(script, "<swap script>", "exec"), scope)
    return scope["RESULT"]


def test_same_script_onnxruntime_and_tritonnx(tmp_path):
    path = tmp_path / "cnn.onnx"
    _classic_cnn(path)
    ours_script = SCRIPT.replace("import onnxruntime as rt", "import tritonnx as rt")
    assert ours_script != SCRIPT
    theirs = _run(SCRIPT, path)
    ours = _run(ours_script, path)
    for key in ("input", "outputs", "producer", "wrong_dtype_error", "providers_ok"):
        assert ours[key] == theirs[key], key
    assert ours["wrong_dtype_error"] is True
    for key in ("probs", "logits", "only_logits"):
        assert ours[key].dtype == theirs[key].dtype and ours[key].shape == theirs[key].shape
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-4, atol=1e-5)
