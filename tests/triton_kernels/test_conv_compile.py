"""Ahead-of-time build check: the conv kernel compiles for sm_90 and sm_80 (no GPU needed).

A subprocess started with TRITON_INTERPRET=0 compiles the kernel with `triton.compile` for a
`GPUTarget`, specialised as the JIT would for channels-last activations (unit channel strides,
16-aligned pointers and sizes). Checks: each dtype on both archs, the two largest tiles and a few flag variants build and fit
shared memory; on sm_90 the fp16/bf16 tiles use wgmma (all configs have BLOCK_M >= 64 and >= 4
warps); the loads are pipelined (cp.async). Every config x flag combination is compiled by the
compile gate (`tritonnx.triton_kernels.catalog`, tests/triton_kernels/test_aot_gate.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SCRIPT = r'''
import json, sys
import triton
from triton.compiler import ASTSource
from triton.backends.compiler import GPUTarget
from tritonnx.triton_kernels import conv_relu_pool as m

fn = m.conv_relu_pool_kernel.fn
PTR = {"fp32": "*fp32", "fp16": "*fp16", "bf16": "*bf16"}
ONES = ("stride_xc", "stride_wn", "stride_rc", "stride_yc")
DIV16 = ("C_G", "COUT_G", "stride_xn", "stride_xh", "stride_xw", "stride_wk",
         "stride_rn", "stride_rh", "stride_rw", "stride_yn", "stride_yh", "stride_yw")
BASE = dict(KH=3, KW=3, POOL_KIND=1, POOL_KH=2, POOL_KW=2, COUNT_INCLUDE_PAD=False, HAS_BIAS=True,
            HAS_RESIDUAL=False, ACTIVATION=1, ALLOW_TF32=True, DOT_FP32=False)


def build(arch, dtype, cfg, flags):
    const = dict(BASE, **flags, **cfg.kwargs, **{k: 1 for k in ONES})
    sig, attrs = {}, {}
    for i, name in enumerate(fn.arg_names):
        if name in const:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            sig[name] = PTR[dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name in ("alpha", "clip_min", "clip_max"):
            sig[name] = "fp32"
        else:
            sig[name] = "i32"
            if name in DIV16:
                attrs[(i,)] = [["tt.divisibility", 16]]
    src = ASTSource(fn=fn, signature=sig, constexprs=const, attrs=attrs)
    k = triton.compile(src, target=GPUTarget("cuda", arch, 32),
                       options=dict(num_warps=cfg.num_warps, num_stages=cfg.num_stages))
    ptx = k.asm["ptx"]
    return dict(arch=arch, dtype=dtype, config=str(cfg.kwargs), warps=cfg.num_warps, flags=flags,
                shared=k.metadata.shared, wgmma="wgmma.mma_async" in ptx, mma_sync="mma.sync" in ptx,
                cp_async="cp.async" in ptx)


configs = m.conv_configs(interpret=False)
biggest = sorted(configs, key=lambda c: c.num_stages * c.kwargs["BLOCK_K"]
                 * (c.kwargs["BLOCK_M"] + c.kwargs["BLOCK_N"]))[-2:]
jobs = [(80, "fp32", c, {}, "smem") for c in biggest]
jobs += [(arch, dtype, configs[0], {}, "dtype") for arch in (90, 80) for dtype in ("fp16", "bf16", "fp32")]
jobs += [(90, "fp16", configs[0], flags, "variant") for flags in (
    dict(POOL_KIND=2, POOL_KH=3, POOL_KW=3, COUNT_INCLUDE_PAD=True, ACTIVATION=2),
    dict(POOL_KIND=0, POOL_KH=1, POOL_KW=1, HAS_RESIDUAL=True, ACTIVATION=3),
    dict(KH=11, KW=11, POOL_KH=3, POOL_KW=3, HAS_BIAS=False),
)]
for *job, kind in jobs:
    print(json.dumps(dict(build(*job), kind=kind)), flush=True)
'''

SHARED_LIMIT = {90: 227 * 1024, 80: 163 * 1024}


@pytest.fixture(scope="module")
def reports():
    env = dict(os.environ, TRITON_INTERPRET="0")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def test_builds_for_sm90_and_sm80(reports):
    assert len(reports) == 11
    assert {(r["arch"], r["dtype"]) for r in reports if r["kind"] == "dtype"} == {
        (a, d) for a in (90, 80) for d in ("fp16", "bf16", "fp32")}
    for r in reports:
        assert 0 < r["shared"] <= SHARED_LIMIT[r["arch"]], r


def test_tensor_core_instructions(reports):
    for r in reports:
        if r["arch"] == 90 and r["dtype"] in ("fp16", "bf16"):
            assert r["wgmma"], f"no wgmma on sm_90: {r}"
        if r["arch"] == 80 and r["dtype"] in ("fp16", "bf16"):
            assert r["mma_sync"] and not r["wgmma"], r


def test_channels_last_loads_are_pipelined(reports):
    """With unit channel strides the A/B tiles go through cp.async (software pipelining)."""
    for r in reports:
        assert r["cp_async"], r
