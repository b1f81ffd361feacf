import subprocess
import sys

import tritonnx
from tritonnx.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"tritonnx {tritonnx.__version__}"


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "tritonnx", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert tritonnx.__version__ in proc.stdout


def test_run_makes_random_inputs_of_every_torch_type(tmp_path, capsys):
    from onnx import TensorProto, helper, save

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT8E4M3FN, [2, 3]) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", io[:1], io[1:]),
                              opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    save(model, str(tmp_path / "f8.onnx"))
    assert main(["run", str(tmp_path / "f8.onnx")]) == 0  # was a StopIteration traceback
    assert "float8_e4m3fn" in capsys.readouterr().out
