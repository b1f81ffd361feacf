"""Ahead-of-time build check: the recurrent kernels compile for sm_90 and sm_80 (no GPU needed).

A subprocess started with TRITON_INTERPRET=0 compiles `recurrent_step_kernel` (every autotune
config, every dtype, every cell) and `recurrent_persistent_kernel` (with its grid barrier) with
`triton.compile` for a `GPUTarget`. Checks: they build, fit shared memory, the fp16/bf16 step
and persistent tiles use wgmma on sm_90 (64 gate rows, >= 4 warps) and mma.sync on sm_80, and the
persistent kernel's barrier is the DESIGN recipe (release atomic add, acquire spin).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys


SCRIPT = r'''
import json
import triton
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget
from tritonnx.triton_kernels import recurrent as m
from tritonnx.triton_kernels.aot import _resource_usage

PTR = {"rp_ptr": None, "xp_ptr": None, "y_ptr": None, "h_ptr": "fp32", "c_ptr": "fp32",
       "lens_ptr": "i32", "p_ptr": "fp32", "rbh_ptr": "fp32", "flag_ptr": "i32", "z_ptr": "fp32",
       "rh_ptr": "fp32"}
FLOATS = ("clip", "alpha_f", "beta_f", "alpha_g", "beta_g", "alpha_h", "beta_h")
DIV16 = ("H", "NJB", "stride_xt", "stride_xb", "stride_yt", "stride_yd", "stride_yb")
CELL_META = {"LSTM": dict(CELL=0, GP=4, BLOCK_J=16), "GRU": dict(CELL=1, GP=4, BLOCK_J=16),
             "RNN": dict(CELL=2, GP=1, BLOCK_J=64), "GRU0": dict(CELL=3, GP=4, BLOCK_J=16)}


def build(kind, arch, dtype, cell, cfg, extra):
    fn = (m.recurrent_step_kernel.fn if kind == "step" else m.recurrent_persistent_kernel)
    const = dict(HAS_PEEP=cell == "LSTM", HAS_CLIP=False, INPUT_FORGET=False, ACT_F=2, ACT_G=1,
                 ACT_H=1, ALLOW_TF32=True, DOT_FP32=False, BLOCK_B=16, **CELL_META[cell])
    if kind == "persistent":
        const.update(USE_BARRIER=True, KPAD=256, ONLY_PHASE=0)
    else:
        const.update(PHASE=0)
    const.update(cfg.kwargs, **extra)
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in const:
            sig[name] = "constexpr"
        elif name in PTR:
            sig[name] = "*" + (PTR[name] or dtype)
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in FLOATS:
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
            if name in DIV16:
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs)
    k = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                       options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
    ptx = k.asm["ptx"]
    usage = _resource_usage(k.asm["cubin"])
    return dict(regs=usage["REG"], stack=usage["STACK"], kpad=const.get("KPAD"), kind=kind, arch=arch, dtype=dtype, cell=cell, config=str(cfg.kwargs),
                warps=cfg.num_warps, stages=cfg.num_stages, shared=k.metadata.shared,
                wgmma="wgmma.mma_async" in ptx, mma_sync="mma.sync" in ptx,
                release="atom.release.gpu" in ptx or "atom.global.gpu.release" in ptx
                        or ".release.gpu" in ptx,
                acquire="acquire" in ptx)


step_cfgs = m.recurrent_step_configs(interpret=False)
pers_cfgs = m.recurrent_persistent_configs()
jobs = [("step", 90, "fp16", "LSTM", c, {}) for c in step_cfgs]
jobs += [("step", 90, dtype, cell, step_cfgs[0], {})
         for dtype in ("fp16", "bf16", "fp32") for cell in ("LSTM", "GRU", "RNN")]
jobs += [("step", 80, dtype, cell, step_cfgs[0], {})
         for dtype, cell in (("fp16", "LSTM"), ("bf16", "GRU"), ("fp32", "RNN"))]
jobs += [("step", 90, "fp16", "LSTM", step_cfgs[1], dict(BLOCK_B=64, HAS_CLIP=True, INPUT_FORGET=True,
                                                         ACT_F=7, ACT_G=8, ACT_H=10))]
jobs += [("step", 90, "fp16", "GRU0", step_cfgs[0], dict(PHASE=ph)) for ph in (1, 2)]
jobs += [("persistent", arch, dtype, cell, c, {})
         for arch, dtype in ((90, "fp16"), (90, "bf16"), (80, "fp16"))
         for cell in ("LSTM", "GRU", "RNN", "GRU0")
         for c in pers_cfgs[:1]]
# the largest tiles `persistent_launchable` admits, with the warps `persistent_config` picks
CODES = {"LSTM": 0, "GRU": 1, "RNN": 2, "GRU0": 3}
for dtype, elem in (("fp16", 2), ("fp32", 4)):
    for cell in ("LSTM", "GRU0"):
        for bb in (16, 32, 64):
            kpads = [k for k in (64, 128, 256, 512) if m.persistent_launchable(CODES[cell], elem, k, bb)]
            if kpads:
                k = kpads[-1]
                cfg = m.persistent_config(64 * k * elem, k * bb * 4)
                jobs.append(("persistent", 90, dtype, cell, cfg,
                             dict(KPAD=k, BLOCK_B=bb, HAS_PEEP=cell == "LSTM", HAS_CLIP=True)))
for job in jobs:
    print(json.dumps(build(*job)), flush=True)
'''

SHARED_LIMIT = {90: 227 * 1024, 80: 163 * 1024}


def _compile_reports():
    env = dict(os.environ, TRITON_INTERPRET="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_recurrent_kernels_compile_for_sm90_and_sm80():
    """One test (one compile run: xdist would otherwise repeat a module fixture per worker)."""
    from tritonnx.triton_kernels.recurrent import recurrent_step_configs

    reports = _compile_reports()
    # every config, dtype and cell builds and fits shared memory
    n = len(recurrent_step_configs(interpret=False))
    assert sum(r["kind"] == "step" and r["arch"] == 90 and r["cell"] == "LSTM"
               and r["dtype"] == "fp16" for r in reports) >= n
    assert {(r["arch"], r["dtype"], r["cell"]) for r in reports if r["kind"] == "step"} >= {
        (90, d, c) for d in ("fp16", "bf16", "fp32") for c in ("LSTM", "GRU", "RNN")} | {(90, "fp16", "GRU0")}
    assert {r["dtype"] for r in reports if r["arch"] == 80} == {"fp16", "bf16", "fp32"}
    for r in reports:
        assert r["shared"] <= SHARED_LIMIT[r["arch"]], r
        # spills would slow every step; the persistent tile budgets are set by this
        assert r["stack"] == 0, f"spills: {r}"
        # tensor cores: wgmma on sm_90 (64 gate rows, >= 4 warps), mma.sync on sm_80
        if r["dtype"] in ("fp16", "bf16"):
            if r["arch"] == 90:
                assert r["wgmma"], f"no wgmma on sm_90: {r}"
            else:
                assert r["mma_sync"] and not r["wgmma"], r
    # the persistent kernel's grid barrier is the DESIGN recipe (release add, acquire spin)
    persistent = [r for r in reports if r["kind"] == "persistent"]
    assert persistent
    for r in persistent:
        assert r["release"] and r["acquire"], r
