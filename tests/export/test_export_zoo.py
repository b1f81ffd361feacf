"""Every zoo model exports (tiny; fp16 and paper for some), and the file is what it claims:
checked graph, symbolic batch/sequence axes, ONNX RNN/LSTM/GRU nodes, metadata, and agreement
with torch in onnxruntime at two batch sizes (and two sequence lengths)."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import tritonnx
from tritonnx import zoo
from tritonnx.export import TOLERANCE, export_model

MODELS = tuple(zoo.names())
# model -> (ONNX op, number of nodes): one node per nn.RNN/LSTM/GRU layer.
RECURRENT_NODES = {
    "rnn_lm": ("RNN", 1), "char_lstm": ("LSTM", 2), "lstm_lm": ("LSTM", 2), "gru_lm": ("GRU", 1),
    "seq2seq": ("LSTM", 4), "bilstm_speech": ("LSTM", 2), "captioner": ("LSTM", 1),
}
FP16_MODELS = ("lenet5", "lstm_lm", "transformer_encoder")
PAPER_MODELS = ("lenet5", "alexnet", "lstm_lm", "resnet18", "googlenet")
SLOW_PAPER_MODELS = ("vgg16",)  # 40-60 s on 2 busy cores (553 MB file)
ONNX_DTYPE = {"fp32": onnx.TensorProto.FLOAT, "fp16": onnx.TensorProto.FLOAT16}


def _ort_vs_torch(path, name, config, dtype, batch, seq_len, seed):
    """Max relative error of onnxruntime on `path` against the torch model in float64."""
    entry = zoo.get(name)
    tdtype = {"fp32": torch.float32, "fp16": torch.float16}[dtype]
    inputs = entry.example_inputs(config, batch=batch, seq_len=seq_len, seed=seed)
    inputs = tuple(x.to(tdtype) if x.is_floating_point() else x for x in inputs)
    ref_model = entry.build(config).to(tdtype).double()
    with torch.no_grad():
        ref = ref_model(*(x.double() if x.is_floating_point() else x for x in inputs)).numpy()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {n: x.numpy() for n, x in zip(entry.input_names, inputs)})
    assert got.shape == ref.shape
    assert got.dtype == (np.float16 if dtype == "fp16" else np.float32)
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def _check_file(path, name, config, dtype, result):
    entry = zoo.get(name)
    assert result.path == path and path.is_file() and result.size_bytes == path.stat().st_size
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert not model.graph.node or not any(n.op_type in ("Loop", "Scan", "If") for n in model.graph.node)
    assert all(i.data_location != onnx.TensorProto.EXTERNAL for i in model.graph.initializer)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) == 18
    props = {p.key: p.value for p in model.metadata_props}
    assert props["tritonnx.zoo_name"] == name
    assert props["tritonnx.paper"] == entry.paper
    assert props["tritonnx.config"] == config
    assert props["tritonnx.dtype"] == dtype
    assert props["tritonnx.version"] == tritonnx.__version__
    values = {v.name: v for v in (*model.graph.input, *model.graph.output)}
    assert [i.name for i in model.graph.input] == entry.input_names
    assert [o.name for o in model.graph.output] == entry.output_names
    for tensor, axes in entry.dynamic_axes.items():
        dims = values[tensor].type.tensor_type.shape.dim
        for axis, axis_name in axes.items():
            assert dims[axis].dim_param == axis_name and not dims[axis].HasField("dim_value")
    for inp, x in zip(model.graph.input, entry.example_inputs(config)):
        want = onnx.TensorProto.INT64 if x.dtype == torch.int64 else ONNX_DTYPE[dtype]
        assert inp.type.tensor_type.elem_type == want
    ops = [n.op_type for n in model.graph.node]
    if name in RECURRENT_NODES:
        op, count = RECURRENT_NODES[name]
        assert ops.count(op) == count and result.ops[op] == count
    else:
        assert not {"RNN", "LSTM", "GRU"} & set(ops)
    if name == "bilstm_speech":
        lstm = next(n for n in model.graph.node if n.op_type == "LSTM")
        assert onnx.helper.get_attribute_value(next(a for a in lstm.attribute if a.name == "direction")) == b"bidirectional"
    # export_model's own verification: two batch sizes, two sequence lengths, within tolerance
    assert result.verified and [c["batch"] for c in result.checks] == [1, 3]
    if entry.is_sequence:
        assert len({c["seq_len"] for c in result.checks}) == 2
    assert result.max_rel_err <= TOLERANCE[dtype] == result.tolerance


@pytest.mark.parametrize("name", MODELS)
def test_tiny_export_fp32(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    result = export_model(name, path, config="tiny", seed=0)
    _check_file(path, name, "tiny", "fp32", result)
    # an independent run at a batch and sequence length the export never saw
    assert _ort_vs_torch(path, name, "tiny", "fp32", batch=5, seq_len=11, seed=123) <= TOLERANCE["fp32"]


@pytest.mark.parametrize("name", FP16_MODELS)
def test_tiny_export_fp16(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    result = export_model(name, path, config="tiny", dtype="float16")
    _check_file(path, name, "tiny", "fp16", result)
    model = onnx.load(str(path))
    assert {i.data_type for i in model.graph.initializer if i.data_type in (1, 10)} == {onnx.TensorProto.FLOAT16}
    assert _ort_vs_torch(path, name, "tiny", "fp16", batch=2, seq_len=9, seed=7) <= TOLERANCE["fp16"]


@pytest.mark.parametrize("name", PAPER_MODELS)
def test_paper_export(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    _check_file(path, name, "paper", "fp32", export_model(name, path, config="paper"))


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("TRITONNX_SLOW_TESTS") != "1", reason="slow: set TRITONNX_SLOW_TESTS=1")
@pytest.mark.parametrize("name", SLOW_PAPER_MODELS)
def test_paper_export_slow(tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    _check_file(path, name, "paper", "fp32", export_model(name, path, config="paper"))


def test_tiny_onnx_fixture_caches(tiny_onnx):
    first = tiny_onnx("lenet5")
    assert first.is_file() and tiny_onnx("lenet5") == first
    assert {p.key: p.value for p in onnx.load(str(first)).metadata_props}["tritonnx.config"] == "tiny"
