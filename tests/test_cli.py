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
