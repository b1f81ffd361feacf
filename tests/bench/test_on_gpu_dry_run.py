"""`bench/on_gpu.sh --dry-run`: every step on the CPU, GPU-only parts say so, and it resumes."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "on_gpu.sh"
pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("timeout") is None,
                                reason="needs bash and coreutils timeout")


def _run(statedir, *args, out=None):
    env = dict(os.environ, PYTHON=sys.executable, ON_GPU_DRY_MODELS="mlp")
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(["bash", str(SCRIPT), str(statedir), "--dry-run", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_dry_run_twice_second_redoes_nothing(tmp_path):
    state, out = tmp_path / "state", tmp_path / "out"
    first = _run(state, "--budget", "150", out=out)
    assert first.returncode == 0, first.stdout + first.stderr
    for line in ("env: done", "install: done", "models: done"):
        assert line in first.stdout
    logs = "".join(p.read_text() for p in (state / "logs").glob("*.log"))
    assert "skipped: no GPU" in logs  # nvidia-smi, onnxruntime-gpu, pytest -m gpu
    assert "dry run: installs nothing" in logs
    assert "tests collected" in (state / "logs" / "tests.log").read_text()  # the GPU tests import here
    returned = sorted(p.name for p in out.iterdir())
    assert len(returned) <= 8 and {"summary.txt", "state.tgz", "table.md", "results.json"} <= set(returned)
    assert "CPU-interpreter times" in (out / "table.md").read_text()

    second = _run(state, out=out)
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.stdout.count("already done, skipped") == 6
    assert "running" not in second.stdout

    # After a cold start the returned state.tgz goes back into a fresh STATEDIR and resumes.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(out / "state.tgz", fresh / "state.tgz")
    third = _run(fresh, "--steps", "models,gather")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "restoring" in third.stdout and "models: already done" in third.stdout


def test_bad_usage(tmp_path):
    assert _run(tmp_path / "s", "--steps", "env,nosuch").returncode == 2
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 2 and "STATEDIR" in proc.stdout


def test_gather_gzips_a_file_over_the_return_limit(tmp_path):
    state, out = tmp_path / "state", tmp_path / "out"
    (state / "results").mkdir(parents=True)
    (state / "results" / "results.json").write_text('{"rows": [' + "0.0123456789, " * 1_400_000 + "0]}")
    (state / "results" / "table.md").write_text("| a |\n")
    proc = _run(state, "--steps", "gather", out=out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    returned = {p.name: p.stat().st_size for p in out.iterdir()}
    assert "results.json.gz" in returned and "results.json" not in returned and "table.md" in returned
    assert all(size <= 16 * 2**20 for size in returned.values())
