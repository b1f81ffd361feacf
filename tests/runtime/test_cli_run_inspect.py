"""`tritonnx run` and `tritonnx inspect` on a small Conv -> Relu -> MaxPool model."""
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import parser

from tritonnx.cli import main

W = ", ".join(f"{v:.5f}" for v in np.random.default_rng(7).standard_normal(3 * 2 * 3 * 3) * 0.3)
MODEL_TEXT = f"""
<ir_version: 8, opset_import: ["" : 18]>
net (float[batch, 2, 6, 6] x) => (float[batch, 3, 3, 3] y, float[batch, 3, 6, 6] side)
<float[3, 2, 3, 3] w = {{{W}}}, float[3] b = {{0.1, -0.2, 0.3}}>
{{ c = Conv<pads=[1, 1, 1, 1]>(x, w, b)
   r = Relu(c)
   y = MaxPool<kernel_shape=[2, 2], strides=[2, 2]>(r)
   c2 = Conv<pads=[1, 1, 1, 1]>(x, w, b)
   side = Sigmoid(c2) }}
"""


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "net.onnx"
    onnx.save(parser.parse_model(MODEL_TEXT), str(path))
    return path


def test_run_with_input_file_matches_onnxruntime(model_path, tmp_path, capsys):
    x = np.random.default_rng(3).standard_normal((2, 2, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(model_path), "--input", f"x={tmp_path / 'x.npy'}", "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "file" in text and "[2, 3, 3, 3]" in text
    saved = np.load(out)
    ref = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(saved["y"], ref[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(saved["side"], ref[1], rtol=1e-5, atol=1e-5)


def test_run_fused_with_triton_kernels(model_path, tmp_path, capsys):
    """The fused node runs its Triton kernel (under the interpreter on the CPU)."""
    x = np.random.default_rng(5).standard_normal((1, 2, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npz"
    assert main(["run", str(model_path), "-i", f"x={tmp_path / 'x.npy'}", "-o", str(out), "--kernels", "triton", "--iterations", "2",
                 "--profile"]) == 0
    text = capsys.readouterr().out
    assert "providers: TritonExecutionProvider, " in text
    assert "tritonnx::ConvReluPool" in text and "triton (" in text
    ref = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    np.testing.assert_allclose(np.load(out)["y"], ref[0], rtol=1e-4, atol=1e-5)


def test_run_random_inputs_with_dim_and_profile(model_path, capsys):
    assert main(["run", str(model_path), "--dim", "batch=3", "--profile", "--no-fusion"]) == 0
    text = capsys.readouterr().out
    assert "[3, 2, 6, 6]" in text and "random" in text
    assert "not a performance figure" in text  # CPU times are labelled
    assert "Conv" in text and "total" in text
    host = re.search(r"host: ([\d.]+) ms per run = wall ([\d.]+) - ops ([\d.]+); (\d+) steps, "
                     r"([\d.]+) µs per step; planned", text)
    assert host, text
    host_ms, wall_ms, ops_ms, steps, per_step = (float(g) for g in host.groups())
    assert steps >= 3 and wall_ms > 0  # Conv, Relu, MaxPool at least
    assert host_ms == pytest.approx(wall_ms - ops_ms, abs=2e-3)
    assert per_step == pytest.approx(host_ms * 1e3 / steps, abs=0.5 / steps + 0.01)  # rounding of the text


def test_run_bad_arguments(model_path, capsys):
    assert main(["run", str(model_path), "--input", "nope=x.npy"]) == 2
    assert "no input 'nope'" in capsys.readouterr().err
    assert main(["run", str(model_path), "--dim", "batch"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err
    assert main(["run", str(model_path.parent / "missing.onnx")]) == 2


@pytest.mark.parametrize("extra, message", [
    (["--dim", "batch=abc"], "--dim batch=abc: expected a non-negative integer"),
    (["--dim", "batch=-1"], "--dim batch=-1: expected a non-negative integer"),
    (["--dim", "bacth=2"], "no symbolic dimension 'bacth'; theirs: ['batch']"),
    (["--input", "x=does-not-exist.npy"], "--input x=does-not-exist.npy: cannot read a .npy array"),
    (["--output", "no/such/dir/out.npz"], "--output no/such/dir/out.npz: cannot write"),
    (["--input", "x=inputs.npz"], "--input x=inputs.npz: a .npz archive (arrays ['x'])"),
])
def test_run_bad_values_are_one_line_errors(model_path, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "inputs.npz", x=np.zeros((1, 2, 6, 6), np.float32))
    assert main(["run", str(model_path), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_output_written_at_the_given_path(model_path, tmp_path, capsys):
    out = tmp_path / "outputs"  # no .npz suffix: still exactly this file
    assert main(["run", str(model_path), "--output", str(out)]) == 0
    assert f"to {out}" in capsys.readouterr().out
    assert set(np.load(out)) == {"y", "side"}


def test_inspect_reports_and_saves(model_path, tmp_path, capsys):
    fused = tmp_path / "fused.onnx"
    assert main(["inspect", str(model_path), "--save", str(fused)]) == 0
    text = capsys.readouterr().out
    assert "before" in text and "after" in text
    assert "declined candidates" in text and "fused groups" in text
    assert "unsupported ops: none" in text
    saved = onnx.load(str(fused))
    onnx.checker.check_model(saved)
    assert "BatchNormalization" not in text


def test_inspect_no_fusion_declines_every_conv(model_path, capsys):
    assert main(["inspect", str(model_path), "--no-fusion"]) == 0
    text = capsys.readouterr().out
    assert "fused groups (0)" in text
    assert text.count("fusion disabled") >= 2


def test_inspect_lists_unsupported_ops(tmp_path, capsys):
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18, "com.example" : 1]>
    g (float[2] x) => (float[2] y) { t = com.example.Frob(x)
      y = Relu(t) }
    """)
    path = tmp_path / "frob.onnx"
    onnx.save(model, str(path))
    assert main(["inspect", str(path)]) == 1
    text = capsys.readouterr().out
    assert "unsupported ops:" in text and "com.example::Frob" in text


def test_inspect_save_to_unwritable_path_is_one_line_error(model_path, tmp_path, capsys):
    target = tmp_path / "no" / "such" / "dir" / "fused.onnx"
    assert main(["inspect", str(model_path), "--save", str(target)]) == 2
    err = capsys.readouterr().err
    assert f"--save {target}: cannot write" in err and "Traceback" not in err


def test_run_wrong_fixed_dim_is_one_line(model_path, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 7, 6), np.float32))
    assert main(["run", str(model_path), "--input", f"x={tmp_path / 'x.npy'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "index: 2 Got: 7 Expected: 6" in err
