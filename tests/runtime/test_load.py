"""Loading: paths/bytes/ModelProto, bad files, external data, old opsets, unsupported ops,
initializers listed as inputs."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper, parser

from tritonnx.errors import InvalidGraph, InvalidProtobuf, NoSuchFile, NotImplemented
from tritonnx.runtime import InferenceSession
from tritonnx.runtime.registry import OPS

GOOD = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2, 3] x) => (float[2, 3] y) <float[3] b = {1.0, -2.0, 3.0}>
{ t = Add(x, b)
  y = Relu(t) }
"""


def _x(shape=(2, 3), seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _ort(model, feed):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


def test_path_bytes_and_proto_agree(tmp_path):
    model = parser.parse_model(GOOD)
    path = tmp_path / "good.onnx"
    onnx.save(model, str(path))
    before = model.SerializeToString()
    x = _x()
    results = [InferenceSession(src).run(None, {"x": x})[0] for src in (str(path), path, path.read_bytes(), model)]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    np.testing.assert_allclose(results[0], _ort(model, {"x": x})[0], rtol=1e-6)
    assert model.SerializeToString() == before  # the caller's proto is never modified


def test_missing_file(tmp_path):
    with pytest.raises(NoSuchFile, match="does not exist"):
        InferenceSession(str(tmp_path / "nope.onnx"))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_malformed_file_is_one_clear_error(tmp_path, damage):
    data = parser.parse_model(GOOD).SerializeToString()
    data = {"truncated": data[: len(data) // 2], "garbage": b"\x07not an onnx file at all\xff\xfe", "empty": b""}[damage]
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(InvalidProtobuf, match="bad.onnx"):
        InferenceSession(str(path))


@pytest.mark.parametrize("form", ["proto", "bytes", "path"])
def test_invalid_graph(form, tmp_path):
    model = parser.parse_model(GOOD)
    model.graph.node[1].input[0] = "undefined_value"
    source = {"proto": lambda: model, "bytes": model.SerializeToString,
              "path": lambda: (tmp_path / "m.onnx").write_bytes(model.SerializeToString()) and tmp_path / "m.onnx"}[form]()
    with pytest.raises(InvalidGraph, match="invalid ONNX model.*undefined_value"):
        InferenceSession(source)


def test_unsupported_ops_collected_in_one_error():
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18, "com.example" : 1]>
    g (float[2, 3] x) => (float[2, 3] y)
    { a = com.example.Frobnicate(x)
      b = com.example.Frobnicate(a)
      c = Relu(b)
      y = com.example.Twiddle(c) }
    """)
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}"
    with pytest.raises(NotImplemented) as info:
        InferenceSession(model)
    msg = str(info.value)
    assert "2 unsupported op(s)" in msg
    assert "com.example::Frobnicate (opset 1) at nodes [n0, n1]" in msg
    assert "com.example::Twiddle (opset 1) at nodes [n3]" in msg


def test_checker_errors_are_invalid_graph():
    # (IR 3 initializers not listed as inputs were the example here: onnxruntime accepts them,
    # so tritonnx does now too, tests/runtime/test_load_rules.py; an unknown attribute it refuses.)
    model = parser.parse_model(GOOD)
    model.graph.node[1].attribute.append(helper.make_attribute("foo", 1))
    with pytest.raises(InvalidGraph, match="Unrecognized attribute: foo for operator Relu"):
        InferenceSession(model)


def test_old_opset_converted_when_its_handlers_are_missing(monkeypatch):
    """An opset-9 model whose Relu has a handler only from opset 14 is converted and runs."""
    relu = OPS.resolve("", "Relu", 99)
    monkeypatch.setitem(OPS.handlers, ("", "Relu"), [])
    OPS.add("Relu", relu.fn, since=14)
    model = parser.parse_model(GOOD.replace('"" : 18', '"" : 9'))
    x = _x()
    s = InferenceSession(model)
    np.testing.assert_allclose(s.run(None, {"x": x})[0], _ort(model, {"x": x})[0], rtol=1e-6)
    assert s.rewritten_model().opset_import[0].version == 18


@pytest.mark.parametrize("ir_version", [3, 4])
def test_initializers_listed_as_inputs_are_overridable_defaults(ir_version):
    b = numpy_helper.from_array(np.array([1.0, -2.0, 3.0], np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "b"], ["t"]), helper.make_node("Relu", ["t"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=ir_version)
    s = InferenceSession(model)
    model.ir_version = 4  # onnxruntime lets a feed override such an initializer from IR 4 on
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert [i.name for i in s.get_inputs()] == [i.name for i in ref.get_inputs()] == ["x"]
    assert [i.name for i in s.get_overridable_initializers()] == ["b"]
    x = _x()
    np.testing.assert_allclose(s.run(None, {"x": x})[0], ref.run(None, {"x": x})[0], rtol=1e-6)
    other = np.array([10.0, 20.0, 30.0], np.float32)
    np.testing.assert_allclose(s.run(None, {"x": x, "b": other})[0], ref.run(None, {"x": x, "b": other})[0], rtol=1e-6)


def test_fed_small_initializer_is_used_where_a_shape_is_read():
    """A small int initializer listed as an input (here Reshape's shape) must not be read from
    its host copy when a feed overrides it."""
    shape = numpy_helper.from_array(np.array([3, 2], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, None])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    s = InferenceSession(model)
    x = _x()
    assert s.run(None, {"x": x})[0].shape == (3, 2)
    assert s.run(None, {"x": x, "shape": np.array([1, 6], np.int64)})[0].shape == (1, 6)


def _external_model(tmp_path, location="weights.bin"):
    w_array = np.arange(1, 65, dtype=np.float32).reshape(8, 8) / 64.0
    w = numpy_helper.from_array(w_array, "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 8])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    path = tmp_path / "ext" / "model.onnx"
    path.parent.mkdir()
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    return w_array, path


def test_external_data_inside_model_dir(tmp_path):
    w, path = _external_model(tmp_path)
    assert (path.parent / "weights.bin").exists()
    x = _x((2, 8))
    np.testing.assert_allclose(InferenceSession(str(path)).run(None, {"x": x})[0], x @ w, rtol=1e-5)


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_escaping_the_model_dir_is_rejected(tmp_path, location):
    _, path = _external_model(tmp_path)
    (tmp_path / "secret.bin").write_bytes((path.parent / "weights.bin").read_bytes())
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(path))
    with pytest.raises(InvalidGraph, match="outside the model's directory"):
        InferenceSession(str(path))


def test_external_data_from_bytes_is_refused(tmp_path):
    _, path = _external_model(tmp_path)
    with pytest.raises(InvalidGraph, match="external data"):
        InferenceSession(path.read_bytes())
