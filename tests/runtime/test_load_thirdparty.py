"""Third-party ONNX files that ship inside installed packages: onnx's "light" Caffe2-converted
classic CNNs (IR 3, opset 9, weights built by ConstantOfShape, initializers listed as inputs)
and old PyTorch exports (opset 6); each loads and matches onnxruntime or the file's own
expected output."""
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tritonnx.runtime import InferenceSession

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
#: (model, also run the original file with its one-value weights); alexnet's 60M weights make
#: each variant cost seconds on the CPU, so it runs with random weights only.
LIGHT = [("squeezenet", True), ("bvlc_alexnet", False)]
PYTORCH = ["test_operator_maxpool", "test_operator_params", "test_operator_pad", "test_operator_view",
           "test_operator_addmm", "test_operator_flatten"]


def _with_random_weights(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """The same graph with each ConstantOfShape-built weight replaced by a seeded random one
    (the "light" files fill every weight with one value, which would hide layout mistakes)."""
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in model.graph.initializer}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    kept = []
    for node in out.graph.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = [int(d) for d in numpy_helper.to_array(inits[node.input[0]])]
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            w = rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))
            out.graph.initializer.append(numpy_helper.from_array(w, node.output[0]))
            out.graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, shape))
        else:
            kept.append(node)
    del out.graph.node[:]
    out.graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    unused = [t.name for t in out.graph.initializer if t.name not in used and t.name in inits]
    for name in unused:  # the shapes the ConstantOfShape nodes read
        out.graph.initializer.remove(next(t for t in out.graph.initializer if t.name == name))
        out.graph.input.remove(next(v for v in out.graph.input if v.name == name))
    return out


def _compare(model_or_path, feed, rtol=1e-4, atol=1e-5):
    src = model_or_path if isinstance(model_or_path, str) else model_or_path.SerializeToString()
    ours = InferenceSession(src, kernels="torch").run(None, feed)  # 224x224: no interpreter here
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3
    theirs = ort.InferenceSession(src, quiet, providers=["CPUExecutionProvider"]).run(None, feed)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * max(1.0, float(np.abs(b).max())))
    return ours


@pytest.mark.parametrize("name, original", LIGHT, ids=[n for n, _ in LIGHT])
def test_light_caffe2_cnn_matches_onnxruntime(name, original):
    path = DATA / "light" / f"light_{name}.onnx"
    model = onnx.load(str(path))
    assert model.ir_version == 3 and model.producer_name == "onnx-caffe2"
    (inp,) = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    if original:
        _compare(str(path), {inp.name: x})
    # With distinct weights the comparison means something; logits before Softmax too.
    varied = _with_random_weights(model, seed=1)
    softmax = next(n for n in varied.graph.node if n.op_type == "Softmax")
    varied.graph.output.append(onnx.helper.make_tensor_value_info(softmax.input[0], onnx.TensorProto.FLOAT, ["n", "classes"]))
    probs, logits = _compare(varied, {inp.name: x})
    assert logits.std() > 1e-3


@pytest.mark.parametrize("name", PYTORCH)
def test_old_pytorch_export_matches_onnxruntime(name):
    folder = DATA / "pytorch-operator" / name
    model = onnx.load(str(folder / "model.onnx"))
    feed = {}
    for i, value in enumerate(v for v in model.graph.input if v.name not in {t.name for t in model.graph.initializer}):
        tensor = onnx.TensorProto()
        tensor.ParseFromString((folder / "test_data_set_0" / f"input_{i}.pb").read_bytes())
        feed[value.name] = numpy_helper.to_array(tensor)
    ours = InferenceSession(str(folder / "model.onnx")).run(None, feed)  # opset 6: onnxruntime
    expected = onnx.TensorProto()  # refuses some of these (Add-6, Gemm-6); the file's output is the truth
    expected.ParseFromString((folder / "test_data_set_0" / "output_0.pb").read_bytes())
    np.testing.assert_allclose(ours[0], numpy_helper.to_array(expected), rtol=1e-4, atol=1e-5)
