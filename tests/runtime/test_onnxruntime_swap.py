"""One script written for onnxruntime runs unchanged after swapping the import for tritonnx."""
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

SCRIPT = '''
import warnings

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


API_SCRIPT = '''
import json, os, threading
import warnings

import numpy as np
import onnxruntime as rt
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

R = {"version": isinstance(rt.__version__, str), "device": rt.get_device(),
     "all_providers": "CPUExecutionProvider" in rt.get_all_providers()}
so = rt.SessionOptions()
so.enable_profiling = True
so.profile_file_prefix = os.path.join(OUT_DIR, "prof")
so.optimized_model_filepath = os.path.join(OUT_DIR, "optimized.onnx")
sess = rt.InferenceSession(MODEL_PATH, sess_options=so, providers="CPUExecutionProvider")
R["providers"] = sess.get_providers()
R["optimized_written"] = os.path.exists(so.optimized_model_filepath)
x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)

# OrtValue
v = rt.OrtValue.ortvalue_from_numpy(x)
R["ortvalue"] = (v.shape(), v.data_type(), v.element_type(), v.device_name(), v.is_tensor(), v.has_value(),
                 isinstance(v.data_ptr(), int) and v.data_ptr() != 0)
x_shared = x.copy()
shared = rt.OrtValue.ortvalue_from_numpy(x_shared)
x_shared[0, 0, 0, 0] = 42.0
R["ortvalue_shares_numpy"] = float(shared.numpy()[0, 0, 0, 0])
empty = rt.OrtValue.ortvalue_from_shape_and_type([2, 5], np.int64)
R["from_shape_and_type"] = (empty.shape(), empty.data_type())
outs = sess.run_with_ort_values(None, {"x": v})
R["run_with_ort_values"] = [(type(o).__name__, o.shape(), o.data_type()) for o in outs]
R["ort_values_probs"] = outs[0].numpy()

# IOBinding with OrtValues
probs_out = rt.OrtValue.ortvalue_from_shape_and_type([2, 5], np.float32)
binding = sess.io_binding()
binding.bind_ortvalue_input("x", v)
binding.bind_ortvalue_output("probs", probs_out)
binding.bind_output("logits")
sess.run_with_iobinding(binding)
got = binding.get_outputs()
R["binding_outputs"] = [type(o).__name__ for o in got]
R["binding_probs_in_bound_value"] = probs_out.numpy()
R["binding_copy"] = binding.copy_outputs_to_cpu()[1]

# feeds as Python lists (converted to the input's type) and a scalar (refused)
R["list_feed"] = sess.run(["probs"], {"x": x.tolist()})[0]
try:
    sess.run(None, {"x": 1.5})
    R["scalar_feed"] = "accepted"
except Exception as exc:
    R["scalar_feed"] = "Unable to handle object of type" in str(exc)
try:
    sess.run(None, {"x": x.astype(np.float64)})
except InvalidArgument as exc:
    R["invalid_argument_caught"] = True

# run_async
done = threading.Event()
got_async = {}
def callback(results, user_data, err):
    got_async.update(n=len(results), user_data=user_data, err=err, probs=results[0] if results else None)
    done.set()
sess.run_async(None, {"x": x}, callback, "my data")
done.wait(60)
R["run_async"] = (got_async["n"], got_async["user_data"], got_async["err"])
R["run_async_probs"] = got_async["probs"]
done.clear()
sess.run_async(None, {"x": x[:, :, :4]}, callback, "bad")
done.wait(60)
R["run_async_error"] = (got_async["n"], got_async["user_data"], "invalid dimensions" in got_async["err"])

# providers and fallback
sess.disable_fallback()
sess.enable_fallback()
sess.set_providers(["CPUExecutionProvider"])
R["after_set_providers"] = sess.get_providers()
R["after_set_providers_probs"] = sess.run(["probs"], {"x": x})[0]

# profiling
path = sess.end_profiling()
events = json.load(open(path))
R["profile_is_list"] = isinstance(events, list) and os.path.basename(path).startswith("prof")
R["profile_keys"] = all({"cat", "pid", "tid", "dur", "ts", "ph", "name", "args"} <= set(e) for e in events)
R["profile_phases"] = sorted({e["name"] for e in events if e["cat"] == "Session"})
nodes = [e for e in events if e["cat"] == "Node"]
R["profile_nodes"] = bool(nodes) and all(e["name"].endswith("_kernel_time") and "op_name" in e["args"]
                                         and "provider" in e["args"] and e["ph"] == "X" for e in nodes)
RESULT = R
'''


def test_same_api_script_onnxruntime_and_tritonnx(tmp_path):
    """OrtValue, run_with_ort_values, IOBinding with OrtValues, list/scalar feeds, run_async,
    set_providers/fallback, providers as one string, profiling, capi exceptions, the optimized
    model file: one script, both libraries."""
    path = tmp_path / "cnn.onnx"
    _classic_cnn(path)
    ours_script = API_SCRIPT.replace("import onnxruntime as rt", "import tritonnx as rt").replace(
        "from onnxruntime.capi", "from tritonnx.capi")
    results = {}
    for lib, script in (("ort", API_SCRIPT), ("ours", ours_script)):
        out_dir = tmp_path / lib
        out_dir.mkdir()
        scope = {"MODEL_PATH": str(path), "OUT_DIR": str(out_dir)}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # onnxruntime warns once per character of the string
            exec(compile(script, f"<{lib} api script>", "exec"), scope)
        results[lib] = scope["RESULT"]
    theirs, ours = results["ort"], results["ours"]
    arrays = {k for k, v in theirs.items() if isinstance(v, np.ndarray)}
    for key in sorted(set(theirs) - arrays):
        assert ours[key] == theirs[key], key
    for key in sorted(arrays):
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-4, atol=1e-5, err_msg=key)
    assert ours["scalar_feed"] is True and ours["invalid_argument_caught"] is True
    assert ours["ortvalue_shares_numpy"] == 42.0
    assert "model_loading_uri" in ours["profile_phases"] and "session_initialization" in ours["profile_phases"]


def test_capi_exceptions_are_tritonnx_errors():
    from tritonnx import errors
    from tritonnx.capi import onnxruntime_pybind11_state as state

    for name in ("Fail", "InvalidArgument", "NoSuchFile", "InvalidGraph", "InvalidProtobuf", "NotImplemented"):
        assert getattr(state, name) is getattr(errors, name)
    assert issubclass(state.RuntimeException, errors.TritonnxError)


def test_optimized_model_file_warns_about_tritonnx_nodes(tmp_path):
    from tritonnx.runtime import InferenceSession, SessionOptions

    path = tmp_path / "cnn.onnx"
    _classic_cnn(path)
    so = SessionOptions()
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    with pytest.warns(RuntimeWarning, match="domain 'tritonnx'.*only tritonnx runs"):
        InferenceSession(str(path), so)
    assert any(n.domain == "tritonnx" for n in onnx.load(so.optimized_model_filepath).graph.node)
    InferenceSession(so.optimized_model_filepath)  # tritonnx runs its own file


def test_triton_provider_that_cannot_run_warns_and_is_not_reported(tmp_path):
    """Asking for TritonExecutionProvider where its kernels do not run (kernels="torch") warns, as
    onnxruntime warns for an unavailable provider, and get_providers() says what runs."""
    from tritonnx.runtime import InferenceSession

    path = tmp_path / "cnn.onnx"
    _classic_cnn(path)
    with pytest.warns(RuntimeWarning, match="'TritonExecutionProvider' cannot run here"):
        sess = InferenceSession(str(path), providers=["TritonExecutionProvider", "CPUExecutionProvider"],
                                kernels="torch")
    assert sess.get_providers() == ["CPUExecutionProvider"]
