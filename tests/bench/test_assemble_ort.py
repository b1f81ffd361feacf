"""`bench/assemble_ort.sh`: a wheel carried in parts, one per call, installs once whole."""
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "assemble_ort.sh"
WHEEL = "onnxruntime_gpu-0.0.1-py3-none-any.whl"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and sha256sum")


def _fake_wheel(path: Path) -> bytes:
    files = {
        "onnxruntime/__init__.py": "def get_available_providers():\n    return ['CUDAExecutionProvider']\n"
                                   + "# padding\n" * 2000,
        "onnxruntime_gpu-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: onnxruntime-gpu\nVersion: 0.0.1\n",
        "onnxruntime_gpu-0.0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("onnxruntime_gpu-0.0.1.dist-info/RECORD", "")
    return path.read_bytes()


@pytest.mark.parametrize("with_checksum", [True, False], ids=["sha256", "zip-check"])
def test_parts_one_per_call_then_install(tmp_path, with_checksum):
    data = _fake_wheel(tmp_path / WHEEL)
    chunk = len(data) // 3 + 1
    parts = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    carried, ort_dir, site = tmp_path / "carried", tmp_path / "ort", tmp_path / "site"
    env = dict(os.environ, PY=sys.executable, ORT_WHEEL_NAME=WHEEL)

    def call():
        return subprocess.run(["bash", str(SCRIPT), str(carried), str(ort_dir), str(site)],
                              capture_output=True, text=True, env=env, timeout=120)

    carried.mkdir()
    assert call().returncode == 4  # nothing carried yet
    for i, part in enumerate(parts):
        shutil.rmtree(carried)
        carried.mkdir()
        (carried / f"part-{i:02d}").write_bytes(part)  # each call brings one part
        if with_checksum:
            (carried / "wheel.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  {WHEEL}\n")
        proc = call()
        expected = 0 if i == len(parts) - 1 else 3
        assert proc.returncode == expected, proc.stdout + proc.stderr
    assert (site / "onnxruntime" / "__init__.py").exists()
    assert call().returncode == 0 and "already installed" in call().stdout
