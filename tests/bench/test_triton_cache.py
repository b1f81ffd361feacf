"""The prebuilt Triton cache (issue 18) on the CPU: its key parts, the verdict `check` prints,
the hit/miss log of bench/gpu_site, and the conv kernel's parallel compile of a new shape's
autotune configs (issue 20, item 5)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tritonnx.bench import triton_cache

REPO = Path(__file__).resolve().parents[2]

KERNEL = """
import triton, triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

@triton.jit
def add_one(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    o = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    tl.store(y_ptr + o, tl.load(x_ptr + o, mask=o < n) + 1, mask=o < n)

src = ASTSource(fn=add_one, signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"},
                constexprs={"BLOCK": 64})
for _ in range(2):
    triton.compile(src, target=GPUTarget("cuda", 90, 32))
"""


def test_compiles_for_sm90_are_logged_as_misses_then_hits(tmp_path):
    """The sitecustomize of bench/gpu_site logs each lookup; the same key twice is one compile."""
    script = tmp_path / "k.py"
    script.write_text(KERNEL)
    log = tmp_path / "cache.tsv"
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_CACHE_DIR=str(tmp_path / "cache"),
               TRITONNX_TRITON_CACHE_LOG=str(log), PYTHONPATH=str(REPO / "bench" / "gpu_site"))
    for _ in range(2):  # a second process: its lookup hits the first one's cubin
        proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    kinds = [line.split("\t")[2] for line in log.read_text().splitlines()]
    assert kinds == ["miss", "hit", "hit", "hit"]
    assert triton_cache.summary(log).startswith("4 lookups: 3 hits, 1 misses")


def test_key_parts_and_the_verdict(tmp_path, capsys):
    parts = triton_cache.key_parts()
    assert parts["triton_version"].startswith("3.") and parts["ptxas"].endswith("-90")
    assert "ptxas" in parts["ptxas"].lower() and parts["jit_debug"] is False  # `ptxas --version`, then the arch
    assert "TRITON_INTERPRET" not in dict(parts["env_vars"])  # set to 0 for a build, unset on the GPU
    assert triton_cache.compare(parts, parts) == []
    assert triton_cache.compare(parts, dict(parts, ptxas="Cuda compilation tools, release 12.9-90"))[0].startswith("ptxas")
    assert triton_cache.compare(parts, dict(parts, jit_debug=True))[0].startswith("jit_debug")
    other = dict(parts, triton_key="x", libtriton_sha256="y" * 64, python="3.12.9", abi="cpython-312")
    (line,) = triton_cache.compare(parts, other)
    assert line.startswith("triton_key") and "libtriton differs" in line and "3.12.9" in line
    triton_cache.write_manifest(tmp_path)
    assert triton_cache.check(tmp_path) == 0 and "match this machine's" in capsys.readouterr().out
    (tmp_path / "manifest.json").write_text((tmp_path / "manifest.json").read_text().replace(
        parts["triton_key"], "0" * 64))
    triton_cache.check(tmp_path)
    assert "CANNOT hit" in capsys.readouterr().out
    # built from other kernel sources: the keys can match, changed kernels miss
    manifest = json.loads((tmp_path / "manifest.json").read_text().replace("0" * 64, parts["triton_key"]))
    assert manifest["sources"] == triton_cache.sources_digest()
    (tmp_path / "manifest.json").write_text(json.dumps(dict(manifest, sources="f" * 64)))
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "conv_relu_pool_kernel.autotune.json").write_text("{}")
    triton_cache.check(tmp_path)
    out = capsys.readouterr().out
    assert "other kernel sources" in out and "match this machine's" in out and "1 tuned result(s)" in out
    assert triton_cache.main(["clean", str(tmp_path)]) == 0 and not list(tmp_path.glob(triton_cache.TUNED_GLOB))
    assert "1 tuned result(s)" in capsys.readouterr().out


BUILD_VS_SMOKE = """
import contextlib, glob, json, os, sys
sys.path[:0] = [sys.argv[2], os.path.dirname(sys.argv[2])]  # tests/bench (the smoke tests), tests/ (tolerances)
import torch
from tritonnx.bench import triton_cache as tc

@contextlib.contextmanager
def cuda_as_cpu():  # the smoke tests' own code, its CUDA tensors made on the CPU
    saved = torch.Tensor.to, torch.full, torch.Tensor.cuda, torch.cuda.synchronize
    to, full = saved[:2]
    torch.Tensor.to = lambda self, *a, **k: to(self, *("cpu" if x == "cuda" else x for x in a), **k)
    torch.full = lambda *a, device=None, **k: full(*a, **k)
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.cuda.synchronize = lambda *a: None
    try:
        yield
    finally:
        torch.Tensor.to, torch.full, torch.Tensor.cuda, torch.cuda.synchronize = saved

with tc.compile_only(record_only=True) as built:
    tc.gpu_launches(quick_bench=False)
import test_gpu_smoke as smoke
with tc.compile_only(record_only=True) as launched, cuda_as_cpu():
    for dt in smoke.DTYPES:
        cases = [lambda: smoke.test_conv_per_dtype(dt), lambda: smoke._lstm("step", dt)]
        for case in cases + ([lambda: smoke._lstm("persistent", dt)] if dt == "fp16" else []):
            try:
                case()
            except AssertionError:  # nothing ran (compile only): the outputs are NaN
                pass
tuned = glob.glob(os.path.join(sys.argv[1], "*", "*.autotune.json"))
print(json.dumps({"built": sorted(set(built.compiled)), "launched": sorted(set(launched.compiled)), "tuned": tuned}))
"""


def test_the_build_covers_the_smoke_tests_and_writes_no_tuned_result(tmp_path):
    """The prebuilt cache's launches (`gpu_launches`) against the smoke tests' own code run on CPU
    tensors, both recorded by the compile-only driver (signature, constexprs, specialization,
    warps, stages: what the key hashes): every smoke compile is built. And the autotuner's fake
    timings of a compile-only run never reach the cache (they would skip the GPU's tuning)."""
    script = tmp_path / "b.py"
    script.write_text(BUILD_VS_SMOKE)
    env = dict(os.environ, TRITON_INTERPRET="0", CUDA_VISIBLE_DEVICES="", TRITONNX_COMPILE_THREADS="0",
               TRITON_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "cache"), str(REPO / "tests" / "bench")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.splitlines()[-1])
    built, launched = ({tuple(k) for k in got[n]} for n in ("built", "launched"))
    kernels = {name.rsplit(".", 1)[-1] for name, _ in launched}
    assert {"conv_relu_pool_kernel", "recurrent_step_kernel", "recurrent_persistent_kernel"} <= kernels
    assert launched <= built, sorted(launched - built)[:3]
    assert got["tuned"] == []


def test_a_new_shape_compiles_its_configs_at_once(monkeypatch):
    """`compile_configs_in_parallel` warms the autotuner's configs inside AsyncCompileMode, once
    per autotune key (the key the autotuner itself computes)."""
    pytest.importorskip("triton.runtime._async_compile")
    import torch
    from triton.runtime import _async_compile

    from tritonnx.triton_kernels import conv_relu_pool as crp

    class Tuner:
        arg_names = ["x_ptr", "C_G", "KH"]
        keys = ["C_G", "KH"]
        configs = [1, 2, 3]
        cache: dict = {}
        warmed: list = []

        def warmup(self, *args, grid, **kwargs):
            self.warmed.append((args[1:], kwargs, _async_compile.active_mode.get() is not None))

    tuner = Tuner()
    monkeypatch.setenv("TRITONNX_COMPILE_THREADS", "4")
    x = torch.empty(2, dtype=torch.float16)
    assert crp.compile_configs_in_parallel(tuner, (x, 16), {"KH": 3})
    assert tuner.warmed == [((16,), {"KH": 3}, True)]
    tuner.cache[(16, 3, "torch.float16")] = "tuned"
    assert not crp.compile_configs_in_parallel(tuner, (x, 16), {"KH": 3})  # tuned already
    monkeypatch.setenv("TRITONNX_COMPILE_THREADS", "0")
    assert not crp.compile_configs_in_parallel(tuner, (x, 32), {"KH": 3})  # serial on request
    assert "N_BATCH" in crp.DO_NOT_SPECIALIZE and "stride_xc" not in crp.DO_NOT_SPECIALIZE
    kernel = crp.conv_relu_pool_kernel.fn
    flagged = {p.name for p in getattr(kernel, "params", []) if p.do_not_specialize}
    assert not flagged or flagged == set(crp.DO_NOT_SPECIALIZE)  # (the interpreter has no params)


def test_conv_compiles_per_model_without_the_size_specialisations():
    """Counted through the real launch wrapper and autotuner with the compile-only driver
    (nothing compiled): VGG-16's fp16 conv compiles at batch 1 and 64 drop from 68 to 31, and no
    CNN of the zoo needs more than before."""
    env = dict(os.environ, TRITON_INTERPRET="0", CUDA_VISIBLE_DEVICES="", TRITONNX_COMPILE_THREADS="0")
    proc = subprocess.run([sys.executable, "-m", "tritonnx.bench.triton_cache", "variants"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = {}
    for line in proc.stdout.splitlines():
        model, rest = line.split(":", 1)
        now, before = (int(part.split()[0]) for part in rest.split(": ", 1)[1].split(", "))
        counts[model] = (now, before)
    assert set(counts) == {"lenet5", "alexnet", "vgg16", "googlenet", "resnet18"}
    assert all(now <= before for now, before in counts.values()), counts
    assert counts["vgg16"][0] < counts["vgg16"][1], counts
