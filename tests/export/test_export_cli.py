"""`tritonnx export NAME -o FILE` and `--all -o DIR`; bad input gives one line and exit 2."""
import subprocess
import sys

import onnx
import pytest

from tritonnx.cli import main


def test_export_one(tmp_path, capsys):
    out = tmp_path / "sub" / "lenet.onnx"
    assert main(["export", "lenet5", "-o", str(out), "--config", "tiny"]) == 2  # no folder is created
    assert "the folder" in capsys.readouterr().err and not (tmp_path / "sub").exists()
    (tmp_path / "sub").mkdir()
    assert main(["export", "lenet5", "-o", str(out), "--config", "tiny", "--dtype", "fp16", "--opset", "17"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {out} (") and "tiny, fp16, opset 17" in line and "verified in onnxruntime at batch 1, 3" in line
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["tritonnx.dtype"] == "fp16" and props["tritonnx.zoo_name"] == "lenet5"


def test_export_all_table(tmp_path, capsys, monkeypatch):
    from tritonnx.export import exporter
    monkeypatch.setattr(exporter.zoo, "names", lambda: ["mlp", "gru_lm"])
    assert main(["export", "--all", "-o", str(tmp_path), "--config", "tiny", "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["model", "file", "size", "max", "rel", "err", "max", "abs", "err", "seconds", "ok"]
    assert [line.split()[0] for line in out[2:4]] == ["mlp", "gru_lm"]
    assert all(line.split()[-1] == "ok" for line in out[2:4])
    assert "e-0" in out[2]  # errors in scientific notation
    assert out[-1] == "2/2 exported (tiny, fp32, opset 18)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gru_lm_tiny_fp32.onnx", "mlp_tiny_fp32.onnx"]


def test_export_all_reports_failures(tmp_path, capsys, monkeypatch):
    from tritonnx.export import exporter
    monkeypatch.setattr(exporter.zoo, "names", lambda: ["mlp"])
    monkeypatch.setitem(exporter.TOLERANCE, "fp32", 0.0)
    assert main(["export", "--all", "-o", str(tmp_path), "--config", "tiny", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "mlp: mlp (fp32) disagrees with torch" in out and "0/1 exported" in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, message", [
    (["export", "vgg", "-o", "x.onnx"], "unknown zoo model 'vgg'; available: mlp, lenet5"),
    (["export", "mlp", "--dtype", "bf16"], "'bf16' is a kernel dtype, not an export dtype"),
    (["export", "mlp", "--dtype", "fp8"], "unsupported export dtype 'fp8'"),
    (["export", "mlp", "--opset", "13"], "unsupported opset 13; the exporter supports 17..20"),
    (["export", "mlp", "--config", "huge"], "zoo model 'mlp' has no config 'huge'"),
    (["export"], "give one zoo model NAME or --all"),
    (["export", "mlp", "--all"], "give one zoo model NAME or --all"),
])
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tritonnx export: error: ") and message in err
    assert list(tmp_path.iterdir()) == []


def test_default_file_name_is_the_one_scheme(tmp_path, capsys, monkeypatch):
    from tritonnx.export import file_name

    monkeypatch.chdir(tmp_path)
    assert main(["export", "mlp", "--config", "tiny", "--no-verify"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [file_name("mlp", "tiny", "fp32")] == ["mlp_tiny_fp32.onnx"]


@pytest.mark.parametrize("argv, message", [
    (["export", "mlp", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["export", "mlp", "-o", "/nonexistent/x.onnx"], "the folder '/nonexistent' does not exist"),
    (["export", "--all", "-o", "/nonexistent/dir"], "the folder '/nonexistent' does not exist"),
])
def test_usage_errors_are_one_line_before_any_work(tmp_path, capsys, argv, message):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not __import__("os").path.exists("/nonexistent")


def test_weights_that_are_not_a_state_dict_file(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello world\n")  # was KeyError: 101 from torch.load
    assert main(["export", "mlp", "--weights", str(tmp_path / "notes.txt"), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "not a file written by torch.save" in err and err.count("\n") == 1


def test_weights_that_are_a_pickled_module_say_so(tmp_path, capsys):
    import torch

    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")  # a whole module, not its state_dict
    assert main(["export", "mlp", "--config", "tiny", "--weights", str(tmp_path / "module.pt"),
                 "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err  # was torch's multi-sentence message with terminal bold codes
    assert err == (f"tritonnx export: error: cannot read weights {str(tmp_path / 'module.pt')!r}: it holds pickled "
                   "Python objects (a whole module?), not a state_dict: save torch.save(model.state_dict(), path)\n")
    assert not (tmp_path / "m.onnx").exists()


def test_unwritable_output(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["export", "mlp", "--config", "tiny", "-o", str(tmp_path / "f" / "m.onnx")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_console_error_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "tritonnx", "export", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and "Traceback" not in proc.stderr


def test_export_trained_weights(tmp_path, capsys):
    import numpy as np
    import torch

    from tritonnx import zoo
    trained = zoo.get("mlp").build("tiny", seed=11).state_dict()
    torch.save(trained, tmp_path / "w.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", "mlp", "--config", "tiny", "--weights", str(tmp_path / "w.pt"), "-o", str(out)]) == 0
    weights = [onnx.numpy_helper.to_array(i) for i in onnx.load(str(out)).graph.initializer]
    assert any(w.shape == (10,) and np.array_equal(w, trained["net.4.bias"].numpy()) for w in weights)
    assert main(["export", "mlp", "--weights", str(tmp_path / "missing.pt"), "-o", str(out)]) == 2
    assert "weights file" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"junk")
    assert main(["export", "mlp", "--weights", str(tmp_path / "bad.pt"), "-o", str(out)]) == 2
    assert "cannot read weights" in capsys.readouterr().err
    assert main(["export", "mlp", "--config", "paper", "--weights", str(tmp_path / "w.pt"), "-o", str(out)]) == 2
    assert "state_dict does not fit zoo model 'mlp' (paper)" in capsys.readouterr().err
