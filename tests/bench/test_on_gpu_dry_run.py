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


def _stand_in(tmp_path) -> Path:
    """A python3 that behaves like this one, except: a pytest collection hangs when FAKE_HANG is
    set, and the first `tritonnx bench --models` process exits 75 (a sticky CUDA error)."""
    fake = tmp_path / "python3"
    fake.write_text(f"""#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = pytest ] && [ -n "${{FAKE_HANG:-}}" ]; then exec sleep 60; fi
if [ "$1" = -m ] && [ "$2" = tritonnx ] && [ "$3" = bench ] && [ "$4" = --models ] && [ ! -f {tmp_path}/exited ]; then
  touch {tmp_path}/exited; echo "RuntimeError: CUDA error: an illegal memory access (stand-in)"; exit 75
fi
exec {sys.executable} "$@"
""")
    fake.chmod(0o755)
    return fake


def _run(statedir, *args, out=None, python=sys.executable):
    env = dict(os.environ, PYTHON=str(python), ON_GPU_DRY_MODELS="mlp")
    env.pop("OUT", None)
    if out is not None:
        env["OUT"] = str(out)
    return subprocess.run(["bash", str(SCRIPT), str(statedir), "--dry-run", *args], capture_output=True,
                          text=True, env=env, timeout=420)


def test_dry_run_twice_second_redoes_nothing(tmp_path):
    state, out = tmp_path / "state", tmp_path / "out"
    first = _run(state, "--budget", "280", out=out, python=_stand_in(tmp_path))
    assert first.returncode == 0, first.stdout + first.stderr
    for line in ("env: done", "install: done", "models: done"):
        assert line in first.stdout
    # Issue 20, item 6: the bench process that exited 75 was followed by a fresh one, which ran
    # every row of the phase (the phase is done only then).
    models_log = (state / "logs" / "models.log").read_text()
    assert "exited with rc 75 (75: sticky CUDA error): resuming in a fresh process" in models_log
    logs = "".join(p.read_text() for p in (state / "logs").glob("*.log"))
    assert "skipped: no GPU" in logs  # nvidia-smi, onnxruntime-gpu, pytest -m gpu
    assert "dry run: installs nothing" in logs
    assert "tests collected" in (state / "logs" / "tests.log").read_text()  # the GPU tests import here
    returned = sorted(p.name for p in out.iterdir())
    assert len(returned) <= 8 and {"summary.txt", "state.tgz", "table.md", "results.json"} <= set(returned)
    table = (out / "table.md").read_text()
    # mlp has no fused node: its rows are CPU wall-clock rows, and none claims the interpreter
    assert "CPU times, not performance figures" in table and "| cpu-wall |" in table
    assert "| cpu-interpreter |" not in table

    assert "compile: 1 rows run this call" in (state / "logs" / "compile.log").read_text()  # one process a row
    assert (out / "not_run.txt").exists() and "not_run.txt" in returned  # the plan's cut rows, listed
    summary = (out / "summary.txt").read_text()
    assert "== Triton cache" in summary and "== not run" in summary
    for step in ("barrier", "graphs", "smoke", "tests", "sweep"):  # the GPU test sub-steps, each its own
        assert (state / "steps" / f"{step}.done").exists(), step
        assert " collected" in (state / "logs" / f"{step}.log").read_text(), step

    second = _run(state, out=out)
    assert second.returncode == 0, second.stdout + second.stderr
    steps = SCRIPT.read_text().split('ALL_STEPS="')[1].split('"')[0].split(",")
    assert second.stdout.count("already done, skipped") == len(steps) - 1  # all but gather
    assert "running" not in second.stdout

    # After a cold start the returned state.tgz goes back into a fresh STATEDIR and resumes.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(out / "state.tgz", fresh / "state.tgz")
    third = _run(fresh, "--steps", "models,gather")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "restoring" in third.stdout and "models: already done" in third.stdout


def _tree_copy(tmp_path) -> Path:
    """The repository's tracked files in a folder of their own (the fallback links into it)."""
    repo = SCRIPT.parents[1]
    dest = tmp_path / "repo"
    dest.mkdir()
    files = subprocess.run(["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True).stdout
    archive = subprocess.run(["tar", "-C", str(repo), "--null", "-T", "-", "-c"], input=files,
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-C", str(dest), "-x"], input=archive, check=True)
    return dest


@pytest.mark.parametrize("pip_error", ["error: externally-managed-environment",
                                       "error: invalid command 'bdist_wheel' (setuptools needs wheel)",
                                       "configuration error: `project.license` must be valid exactly by one definition"],
                         ids=["pep668", "needs-wheel", "old-setuptools"])
def test_install_falls_back_to_no_install(tmp_path, pip_error):
    """A Python whose pip refuses (stand-in): the step ends with tritonnx importable from the tree."""
    repo = _tree_copy(tmp_path)
    site = ":".join(p for p in sys.path if p.endswith("site-packages"))
    fake = tmp_path / "python3"
    # -S: no .pth files, so the editable install of this venv is invisible, as on a fresh machine
    fake.write_text(f"""#!/usr/bin/env bash
if [ "$1" = -m ] && [ "$2" = pip ]; then echo "$*" >> {tmp_path}/pip-calls; echo "{pip_error}" >&2; exit 1; fi
PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{site}" exec {sys.executable} -S "$@"
""")
    fake.chmod(0o755)
    env = dict(os.environ, PYTHON=str(fake), ON_GPU_TEST_INSTALL="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(["bash", str(repo / "bench" / "on_gpu.sh"), str(tmp_path / "s"), "--dry-run",
                           "--steps", "install"], capture_output=True, text=True, env=env, timeout=120)
    log = (tmp_path / "s" / "logs" / "install.log").read_text()
    assert proc.returncode == 0, proc.stdout + log
    calls = (tmp_path / "pip-calls").read_text().splitlines()
    if "externally" in pip_error:
        assert "--break-system-packages" in calls[-1] and len(calls) == 2
    elif "license" in pip_error:  # retried with the table form, in this copy of pyproject.toml only
        assert len(calls) == 2 and 'license = {text = "Apache-2.0"}' in (repo / "pyproject.toml").read_text()
    else:
        assert len(calls) == 1
    assert "no install: links tritonnx/<subpackage>" in log
    assert f"{repo}/tritonnx/__init__.py" in log.splitlines()[-1]  # imported from the tree, with its subpackages
    assert (repo / "tritonnx" / "bench").is_symlink()
    assert (tmp_path / "s" / "pythonpath").read_text().strip() == str(repo)
    # The next call's copy of the tree lacks the links (untracked files): the script links again
    # before any step, the install itself being done for this machine.
    for link in (repo / "tritonnx").iterdir():
        if link.is_symlink():
            link.unlink()
    again = subprocess.run(["bash", str(repo / "bench" / "on_gpu.sh"), str(tmp_path / "s"), "--dry-run",
                            "--steps", "install"], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0 and "install: already done" in again.stdout, again.stdout + again.stderr
    assert (repo / "tritonnx" / "bench").is_symlink() and (repo / "tritonnx" / "runtime").is_symlink()


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


def test_a_carried_cache_is_used_cleaned_and_checked(tmp_path):
    """The plan's first call carries .triton-cache (tests/bench/test_gpu_paths_cpu.py): the script
    points TRITON_CACHE_DIR at it, drops tuned results (fake timings of a compile-only build)
    and prints the key check before any kernel runs."""
    from tritonnx.bench import triton_cache

    repo = _tree_copy(tmp_path)
    cache = repo / ".triton-cache"
    triton_cache.write_manifest(cache)
    (cache / "ab").mkdir()
    (cache / "ab" / "conv_relu_pool_kernel.autotune.json").write_text("{}")
    env = dict(os.environ, PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(repo / "bench" / "on_gpu.sh"), str(tmp_path / "s"), "--dry-run",
                           "--steps", "cache"], capture_output=True, text=True, env=env, timeout=120)
    log = (tmp_path / "s" / "logs" / "cache.log").read_text()
    assert proc.returncode == 0, proc.stdout + log
    assert f"TRITON_CACHE_DIR={cache}: " in log and "1 tuned result(s) (*.autotune.json) dropped" in log
    assert "match this machine's" in log and not (cache / "ab" / "conv_relu_pool_kernel.autotune.json").exists()


def test_a_step_past_its_cap_is_killed_and_not_done(tmp_path):
    """Issue 20, item 1, the script's side: a step that outlives its cap is killed by the script's
    own `timeout` (no pytest plugin) and not marked done, so the next call runs it again."""
    state = tmp_path / "s"
    env = dict(os.environ, PYTHON=str(_stand_in(tmp_path)), FAKE_HANG="1")
    hung = subprocess.run(["bash", str(SCRIPT), str(state), "--dry-run", "--steps", "barrier", "--budget", "8"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert hung.returncode != 0 and "barrier: time cap hit" in hung.stdout, hung.stdout + hung.stderr
    assert not (state / "steps" / "barrier.done").exists()
    assert (state / "steps.tsv").read_text().split("\t")[2] == "timeout"
