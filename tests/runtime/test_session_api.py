"""InferenceSession: onnxruntime's calls, settings, providers, run_torch, IOBinding, threads."""
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import parser

import tritonnx
from tritonnx.errors import InvalidArgument
from tritonnx.runtime import GraphOptimizationLevel, InferenceSession, SessionOptions

MODEL_TEXT = """
<ir_version: 8, opset_import: ["" : 18], producer_name: "unit-test", model_version: 3>
mlp (float[N, 4] x) => (float[N, 3] y, float[N, 3] z)
<float[4, 3] w = {0.5, -0.25, 0.1, 0.3, 0.2, -0.4, 0.7, -0.1, 0.05, -0.6, 0.35, 0.15}, float[3] b = {0.1, -0.2, 0.3}>
{
  h = MatMul(x, w)
  y = Add(h, b)
  z = Sigmoid(y)
}
"""


def _model():
    model = parser.parse_model(MODEL_TEXT)
    model.doc_string = "a tiny MLP"
    onnx.helper.set_model_props(model, {"author": "tests"})
    return model


def _x(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 4)).astype(np.float32)


@pytest.fixture(scope="module")
def sess():
    return InferenceSession(_model().SerializeToString())


@pytest.fixture(scope="module")
def ref():
    return ort.InferenceSession(_model().SerializeToString(), providers=["CPUExecutionProvider"])


def test_inputs_outputs_like_onnxruntime(sess, ref):
    for ours, theirs in ((sess.get_inputs(), ref.get_inputs()), (sess.get_outputs(), ref.get_outputs())):
        assert [(a.name, a.type, a.shape) for a in ours] == [(b.name, b.type, b.shape) for b in theirs]
    assert sess.get_inputs()[0].shape == ["N", 4]
    assert sess.get_inputs()[0].type == "tensor(float)"


def test_modelmeta(sess):
    meta = sess.get_modelmeta()
    assert meta.producer_name == "unit-test"
    assert meta.graph_name == "mlp"
    assert meta.version == 3
    assert meta.description == "a tiny MLP"
    assert meta.custom_metadata_map == {"author": "tests"}


def test_run_matches_onnxruntime_and_output_selection(sess, ref):
    x = _x(3)
    ours = sess.run(None, {"x": x})
    theirs = ref.run(None, {"x": x})
    for a, b in zip(ours, theirs):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    (z,) = sess.run(["z"], {"x": x})
    np.testing.assert_allclose(z, theirs[1], rtol=1e-6, atol=1e-6)
    with pytest.raises(InvalidArgument, match="Invalid output name: nope"):
        sess.run(["nope"], {"x": x})


def test_nan_and_inf_propagate(sess, ref):
    x = _x(2)
    x[0, 0], x[1, 2] = np.nan, np.inf
    ours, theirs = sess.run(None, {"x": x}), ref.run(None, {"x": x})
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_run_torch_keeps_tensors_on_device(sess):
    x = torch.from_numpy(_x(2)).to(sess.device)
    y, z = sess.run_torch(None, {"x": x})
    assert isinstance(y, torch.Tensor) and y.device == sess.device
    torch.testing.assert_close(z, torch.sigmoid(y))


def test_io_binding(sess):
    x = _x(2)
    binding = sess.io_binding()
    binding.bind_cpu_input("x", x)
    out = torch.full((2, 3), float("nan"), device=sess.device)
    binding.bind_output("y", out)
    binding.bind_output("z")
    sess.run_with_iobinding(binding)
    y, z = binding.copy_outputs_to_cpu()
    expected = sess.run(None, {"x": x})
    np.testing.assert_allclose(y, expected[0], rtol=1e-6)
    np.testing.assert_allclose(z, expected[1], rtol=1e-6)
    assert binding.get_outputs()[0].torch() is out  # an OrtValue over the bound buffer
    np.testing.assert_allclose(out.cpu().numpy(), expected[0], rtol=1e-6)


def test_io_binding_raw_cpu_pointer(sess):
    x = _x(2)
    binding = sess.io_binding()
    binding.bind_input("x", "cpu", 0, np.float32, list(x.shape), x.ctypes.data)
    y_buf = np.full((2, 3), np.nan, dtype=np.float32)
    binding.bind_output("y", "cpu", 0, np.float32, list(y_buf.shape), y_buf.ctypes.data)
    sess.run_with_iobinding(binding)
    np.testing.assert_allclose(y_buf, sess.run(["y"], {"x": x})[0], rtol=1e-6)


def test_providers_and_settings():
    assert "TritonExecutionProvider" in tritonnx.get_available_providers()
    assert "CPUExecutionProvider" in tritonnx.get_available_providers()
    s = InferenceSession(_model(), providers=["CPUExecutionProvider"], fusion=False, kernels="torch")
    assert s.get_providers() == ["CPUExecutionProvider"]
    assert s.context.kernels == "torch" and s.context.fusion is False
    assert s.device == torch.device("cpu")
    with pytest.raises(InvalidArgument, match="TritonExecutionProvider, CUDAExecutionProvider, CPUExecutionProvider"):
        InferenceSession(_model(), providers=["CudaExecutionProvider"])
    with pytest.warns(RuntimeWarning, match="TensorrtExecutionProvider is an onnxruntime provider"):
        s = InferenceSession(_model(), providers=["TensorrtExecutionProvider", "CPUExecutionProvider"])
    assert s.get_providers() == ["CPUExecutionProvider"]
    with pytest.raises(InvalidArgument, match="unknown InferenceSession option 'fusoin'"):
        InferenceSession(_model(), fusoin=False)
    with pytest.raises(InvalidArgument, match="tritonnx.kernels"):
        InferenceSession(_model(), kernels="cudnn")


def test_session_config_entries():
    opts = SessionOptions()
    opts.add_session_config_entry("tritonnx.fusion", "0")
    opts.add_session_config_entry("tritonnx.cuda_graphs.max_shapes", "3")
    opts.add_session_config_entry("session.disable_prepacking", "1")  # onnxruntime's own: kept
    s = InferenceSession(_model(), sess_options=opts)
    assert s.context.fusion is False and s.context.cuda_graphs_max_shapes == 3
    assert s.context.extra == {"session.disable_prepacking": "1"}
    assert s.get_session_options().get_session_config_entry("tritonnx.fusion") == "0"
    with pytest.raises(InvalidArgument, match="expected '1' or '0'"):
        opts.add_session_config_entry("tritonnx.fusion", "maybe")
    # A keyword wins over the config entry.
    assert InferenceSession(_model(), sess_options=opts, fusion=True).context.fusion is True


def test_free_dimension_override():
    opts = SessionOptions()
    opts.add_free_dimension_override_by_name("N", 2)
    s = InferenceSession(_model(), sess_options=opts)
    assert s.get_inputs()[0].shape == [2, 4]
    assert s.run(None, {"x": _x(2)})[0].shape == (2, 3)
    with pytest.raises(InvalidArgument, match="index: 0 Got: 3 Expected: 2"):
        s.run(None, {"x": _x(3)})


def test_disable_all_and_optimized_model_file(tmp_path):
    opts = SessionOptions()
    opts.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    s = InferenceSession(_model(), sess_options=opts)
    assert not s.fusion_report().enabled
    saved = onnx.load(str(tmp_path / "opt.onnx"))
    onnx.checker.check_model(saved)
    assert [n.op_type for n in saved.graph.node] == ["MatMul", "Add", "Sigmoid"]


def test_kernels_default_follows_environment(monkeypatch):
    monkeypatch.setenv("TRITONNX_KERNELS", "triton")
    assert InferenceSession(_model()).context.kernels == "triton"
    monkeypatch.delenv("TRITONNX_KERNELS")
    expected = "triton" if torch.cuda.is_available() else "torch"
    assert InferenceSession(_model()).context.kernels == expected


def test_threads_share_one_session(sess, ref):
    xs = [_x(i + 1, seed=i) for i in range(6)]
    results: dict[int, list] = {}
    errors = []

    def work(i):
        try:
            for _ in range(3):
                results[i] = sess.run(None, {"x": xs[i]})
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(xs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, x in enumerate(xs):
        for a, b in zip(results[i], ref.run(None, {"x": x})):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_outputs_do_not_alias_weights_or_feeds():
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[2] x) => (float[2] y, float[2] c) <float[2] w = {1.0, 2.0}>
    { y = Identity(x)
      c = Identity(w) }
    """)
    s = InferenceSession(model)
    x = torch.tensor([3.0, 4.0])
    y, c = s.run_torch(None, {"x": x})
    c.add_(100.0)
    y.add_(100.0)
    assert x.tolist() == [3.0, 4.0]
    assert s.run(["c"], {"x": x.numpy()})[0].tolist() == [1.0, 2.0]


@pytest.mark.gpu
def test_cuda_session_run_torch_and_graph_cache():
    model = _model()
    # tf32 off: the 1e-3 tolerance below is an fp32 one (tf32 rounds the operands to 10 bits)
    s = InferenceSession(model, providers=["CUDAExecutionProvider"], cuda_graphs_max_shapes=2, tf32=False)
    assert s.device.type == "cuda" and s.context.cuda_graphs
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (1, 2, 3, 2, 1):
        x = _x(n, seed=n)
        y, z = s.run_torch(None, {"x": torch.from_numpy(x).cuda()})
        assert y.is_cuda
        expected = ref.run(None, {"x": x})
        np.testing.assert_allclose(y.cpu().numpy(), expected[0], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(z.cpu().numpy(), expected[1], rtol=1e-3, atol=1e-4)
    assert len(s._executor.captured_signatures) <= 2
    eager = InferenceSession(model, providers=["CUDAExecutionProvider"], cuda_graphs=False, tf32=False)
    x = torch.from_numpy(_x(4)).cuda()
    torch.testing.assert_close(eager.run_torch(None, {"x": x})[0], s.run_torch(None, {"x": x})[0])


@pytest.mark.gpu
def test_cuda_io_binding_with_device_pointers():
    s = InferenceSession(_model(), providers=["CUDAExecutionProvider"])
    x = torch.from_numpy(_x(2)).cuda()
    y = torch.full((2, 3), float("nan"), device="cuda")
    binding = s.io_binding()
    binding.bind_input("x", "cuda", 0, np.float32, list(x.shape), x.data_ptr())
    binding.bind_output("y", "cuda", 0, np.float32, list(y.shape), y.data_ptr())
    s.run_with_iobinding(binding)
    torch.cuda.synchronize()
    np.testing.assert_allclose(y.cpu().numpy(), s.run(["y"], {"x": x.cpu().numpy()})[0], rtol=1e-4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback warning is for machines without CUDA")
def test_cuda_provider_fallback_warning_points_at_the_caller():
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider is not available") as record:
        InferenceSession(_model().SerializeToString(), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert record[0].filename == __file__  # the user's line, not "sys:1"


def test_empty_output_names_means_every_output_like_onnxruntime(sess, ref):
    ours, theirs = sess.run([], {"x": _x()}), ref.run([], {"x": _x()})
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_outputs_do_not_alias_weights_when_a_feed_overrides_an_initializer():
    """The override path (an initializer fed) runs another executor, with weights of its own."""
    w = onnx.numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "w")
    b = onnx.numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "b")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["x", "b"], ["y"]), onnx.helper.make_node("Identity", ["w"], ["c"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2]),
         onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2]) for n in ("y", "c")], [w, b])
    s = InferenceSession(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]))
    feed = {"x": torch.tensor([3.0, 4.0]), "b": torch.tensor([0.0, 0.0])}
    y, c = s.run_torch(None, feed)
    c.add_(100.0)
    assert s.run_torch(["c"], feed)[0].tolist() == [1.0, 2.0]
