"""Bad input to export_model/export_all: one clear tritonnx error, raised early, nothing written."""
import onnx
import pytest
import torch
from torch import nn

from tritonnx.errors import ExportError, InvalidArgument
from tritonnx.export import export_all, export_model, file_name, normalize_dtype


class Unexportable(nn.Module):
    def forward(self, x):
        return torch.linalg.eigh(x @ x.transpose(-1, -2))[0]


class BatchBakedIn(nn.Module):
    """Traces to a constant: the trace batch (2) is baked into the graph, so batch 1 disagrees."""

    def forward(self, x):
        return x * int(x.shape[0])


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


def test_unknown_model_lists_the_names(tmp_path):
    with pytest.raises(InvalidArgument, match="unknown zoo model 'lenet6'; available: mlp, lenet5"):
        export_model("lenet6", tmp_path / "x.onnx")
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("dtype, message", [
    ("bf16", "'bf16' is a kernel dtype, not an export dtype"),
    ("bfloat16", "'bf16' is a kernel dtype"),
    ("int8", "unsupported export dtype 'int8'; choose one of fp32, fp16"),
])
def test_unsupported_dtype(tmp_path, dtype, message):
    with pytest.raises(InvalidArgument, match=message):
        export_model("mlp", tmp_path / "x.onnx", config="tiny", dtype=dtype)
    assert _leftovers(tmp_path) == []


def test_dtype_aliases():
    assert normalize_dtype("float32") == "fp32" and normalize_dtype(torch.float16) == "fp16"
    assert file_name("lenet5", "tiny", "float16") == "lenet5_tiny_fp16.onnx"


@pytest.mark.parametrize("opset, message", [
    (16, "unsupported opset 16; the exporter supports 17..20"),
    (21, "unsupported opset 21"),
    (18.5, "opset must be an integer, got 18.5"),
    ("x", "opset must be an integer"),
])
def test_unsupported_opset(tmp_path, opset, message):
    with pytest.raises(InvalidArgument, match=message):
        export_model("mlp", tmp_path / "x.onnx", config="tiny", opset=opset)


def test_opset_17_and_20_export(tmp_path):
    for opset in (17, 20):
        r = export_model("transformer_encoder", tmp_path / f"t{opset}.onnx", config="tiny", opset=opset)
        model = onnx.load(str(r.path))
        assert [o.version for o in model.opset_import if o.domain == ""] == [opset]


def test_unwritable_paths(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with pytest.raises(InvalidArgument, match="cannot write .*file.txt/x.onnx"):
        export_model("mlp", blocker / "x.onnx", config="tiny")
    with pytest.raises(InvalidArgument, match="it is a directory"):
        export_model("mlp", tmp_path, config="tiny")
    with pytest.raises(InvalidArgument, match="it is a file, not a directory"):
        export_all(blocker, names=["mlp"], config="tiny")


def test_unexportable_module_is_one_line(tmp_path, capfd):
    with pytest.raises(ExportError, match=r"^torch could not export 'Unexportable': UnsupportedOperatorError: .*linalg_eigh"):
        export_model(Unexportable(), tmp_path / "u.onnx", example_inputs=(torch.randn(2, 3, 3),))
    assert _leftovers(tmp_path) == []
    out, err = capfd.readouterr()
    assert "Torch IR graph" not in out + err


def test_disagreement_fails_with_the_max_error_and_writes_nothing(tmp_path):
    with pytest.raises(ExportError, match=r"BatchBakedIn \(fp32\) disagrees with torch at batch 1: max relative error 1 > tolerance 0.0001"):
        export_model(BatchBakedIn(), tmp_path / "b.onnx", example_inputs=(torch.randn(2, 4),))
    with pytest.raises(ExportError, match="max relative error .* > tolerance 0 "):
        export_model("mlp", tmp_path / "m.onnx", config="tiny", tolerance=0.0)
    assert _leftovers(tmp_path) == []


def test_failed_export_keeps_an_existing_file(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(ExportError):
        export_model("mlp", path, config="tiny", tolerance=0.0)
    assert path.read_bytes() == b"old" and _leftovers(tmp_path) == ["m.onnx"]


def test_plain_module_with_defaults(tmp_path):
    module = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    r = export_model(module, tmp_path / "s.onnx", example_inputs=(torch.randn(2, 6),))
    assert r.ok and r.verified and r.config == "custom" and r.max_rel_err < 1e-5
    model = onnx.load(str(r.path))
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    with pytest.raises(InvalidArgument, match="needs example_inputs"):
        export_model(module, tmp_path / "t.onnx")
    with pytest.raises(InvalidArgument, match="takes a zoo model name or an nn.Module, got int"):
        export_model(3, tmp_path / "t.onnx")


def test_fp16_export_leaves_the_callers_module_fp32(tmp_path):
    module = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    r16 = export_model(module, tmp_path / "h.onnx", dtype="fp16", example_inputs=(torch.randn(2, 6),))
    assert r16.verified and all(p.dtype == torch.float32 for p in module.parameters())
    r32 = export_model(module, tmp_path / "f.onnx", example_inputs=(torch.randn(2, 6),))  # was: mixed-dtype failure
    assert r32.verified and r32.max_rel_err < 1e-5

def test_state_dict_is_exported(tmp_path):
    from tritonnx import zoo
    trained = zoo.get("mlp").build("tiny", seed=42).state_dict()
    r = export_model("mlp", tmp_path / "m.onnx", config="tiny", state_dict=trained)
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.load(str(r.path)).graph.initializer}
    assert any(w.shape == tuple(trained["net.0.bias"].shape) and (w == trained["net.0.bias"].numpy()).all() for w in weights.values())


def test_export_all_subset(tmp_path):
    results = export_all(tmp_path / "out", names=["mlp", "rnn_lm"], config="tiny", dtype="fp16", progress=False)
    assert [r.name for r in results] == ["mlp", "rnn_lm"] and all(r.ok and r.verified for r in results)
    assert _leftovers(tmp_path / "out") == ["mlp_tiny_fp16.onnx", "rnn_lm_tiny_fp16.onnx"]
    with pytest.raises(InvalidArgument, match="unknown zoo model 'nope'"):
        export_all(tmp_path / "out2", names=["mlp", "nope"], config="tiny")
    assert not (tmp_path / "out2").exists()


def test_written_file_has_a_normal_mode(tmp_path):
    import os
    mask = os.umask(0o022)
    try:
        r = export_model("mlp", tmp_path / "m.onnx", config="tiny", verify=False)
    finally:
        os.umask(mask)
    assert r.path.stat().st_mode & 0o777 == 0o644 and not r.verified
