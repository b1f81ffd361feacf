"""The fused Conv+bias+act(+residual)+pool kernel against its float64 torch reference.

Kernels run under Triton's interpreter on the CPU; shapes are tiny and never tile multiples.
"""
from __future__ import annotations

import pytest
import tolerances
import torch
import torch.nn.functional as F

from tritonnx.errors import InvalidArgument
from tritonnx.triton_kernels.conv_relu_pool import (
    auto_pads,
    conv_configs,
    conv_out_size,
    conv_relu_pool,
    conv_relu_pool_reference,
    pack_conv_weight,
    pool_out_size,
)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# name: (N, C, H, W, O, R, S, conv kwargs, epilogue/pool kwargs)
MAX2 = dict(pool="max", pool_kernel=(2, 2))
MAX3S2 = dict(pool="max", pool_kernel=(3, 3), pool_strides=(2, 2))
CASES = {
    "3x3p1-relu-max2x2": (2, 3, 9, 7, 5, 3, 3, dict(pads=(1, 1, 1, 1)), dict(activation="relu", **MAX2)),
    "5x5-relu-max3x3s2": (1, 4, 12, 11, 6, 5, 5, dict(), dict(activation="relu", **MAX3S2)),
    "stem7x7s2-max3x3s2p1": (1, 3, 15, 13, 8, 7, 7, dict(strides=(2, 2), pads=(3, 3, 3, 3)),
                             dict(activation="relu", pool_pads=(1, 1, 1, 1), **MAX3S2)),
    "max2x2-ceil": (2, 2, 7, 9, 3, 3, 3, dict(), dict(activation="relu", ceil_mode=True, **MAX2)),
    "max3x3s2-ceil-pad": (1, 3, 8, 8, 4, 1, 1, dict(),
                          dict(activation="relu", ceil_mode=True, pool_pads=(1, 1, 1, 1), **MAX3S2)),
    "avg3x3s1p1-cip0": (2, 3, 6, 7, 4, 3, 3, dict(pads=(1, 1, 1, 1)),
                        dict(activation="relu", pool="avg", pool_kernel=(3, 3), pool_strides=(1, 1),
                             pool_pads=(1, 1, 1, 1), count_include_pad=False)),
    "avg3x3s1p1-cip1": (1, 3, 6, 7, 4, 3, 3, dict(pads=(1, 1, 1, 1)),
                        dict(activation="relu", pool="avg", pool_kernel=(3, 3), pool_strides=(1, 1),
                             pool_pads=(1, 1, 1, 1), count_include_pad=True)),
    "avg2x2-ceil-cip1": (1, 2, 9, 9, 3, 2, 2, dict(),
                         dict(activation="relu", pool="avg", pool_kernel=(2, 2), ceil_mode=True,
                              pool_pads=(1, 1, 0, 0), count_include_pad=True)),
    "avg3x3s2-ceil-cip0": (2, 2, 10, 10, 3, 3, 3, dict(),
                           dict(activation="none", pool="avg", pool_kernel=(3, 3), pool_strides=(2, 2),
                                ceil_mode=True, count_include_pad=False)),
    "11x11s4-alexnet": (1, 3, 27, 23, 6, 11, 11, dict(strides=(4, 4), pads=(2, 2, 2, 2)),
                        dict(activation="relu", **MAX3S2)),
    "1x1-relu": (2, 5, 5, 6, 7, 1, 1, dict(), dict(activation="relu")),
    "asym-pads-dil2": (1, 3, 9, 10, 4, 3, 3, dict(pads=(0, 1, 2, 3), dilations=(2, 2)),
                       dict(activation="relu")),
    "stride3-5x3": (1, 2, 13, 11, 5, 5, 3, dict(strides=(3, 2), pads=(1, 0, 2, 1)), dict(activation="relu", **MAX2)),
    "leaky-max2x2": (1, 3, 8, 8, 4, 3, 3, dict(), dict(activation="leaky_relu", alpha=0.2, **MAX2)),
    "clip-relu6": (1, 3, 7, 7, 4, 3, 3, dict(pads=(1, 1, 1, 1)),
                   dict(activation="clip", clip_min=0.0, clip_max=0.5)),
    "clip-max2x2": (1, 3, 8, 8, 4, 3, 3, dict(), dict(activation="clip", clip_min=-0.3, clip_max=0.4, **MAX2)),
    "groups2": (1, 4, 7, 7, 6, 3, 3, dict(pads=(1, 1, 1, 1), group=2), dict(activation="relu", **MAX2)),
    "depthwise": (2, 4, 6, 6, 4, 3, 3, dict(pads=(1, 1, 1, 1), group=4), dict(activation="relu")),
    "no-act-no-pool": (1, 3, 5, 5, 4, 3, 3, dict(), dict(activation="none")),
}


def _inputs(n, c, h, w, o, r, s, group, dtype, *, bias=True, residual_hw=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=gen).to(dtype)
    wt = (torch.randn(o, c // group, r, s, generator=gen) / (c // group * r * s) ** 0.5).to(dtype)
    b = torch.randn(o, generator=gen).to(dtype) if bias else None
    res = torch.randn(n, o, *residual_hw, generator=gen).to(dtype) if residual_hw else None
    return x, wt, b, res


def _upcast(t):
    return None if t is None else t.double()


def _check(y, ref, dtype_name):
    assert y.shape == ref.shape
    assert not torch.isnan(y).any(), "unwritten (NaN-poisoned) outputs"
    scale = ref.abs().max().item() or 1.0
    err = (y.double().cpu() - ref).abs().max().item() / scale
    # relative to the reference's largest magnitude; fp32 on a GPU runs through tf32 (the default)
    tol = tolerances.kernel_max_rel(dtype_name, DEVICE)
    assert err <= tol, f"max relative error {err:.3g} > {tol}"


def _run(case, dtype_name, *, bias=True):
    n, c, h, w, o, r, s, conv_kw, epi_kw = case
    group = conv_kw.get("group", 1)
    x, wt, b, _ = _inputs(n, c, h, w, o, r, s, group, DTYPES[dtype_name], bias=bias)
    ref = conv_relu_pool_reference(_upcast(x), _upcast(wt), _upcast(b), **conv_kw, **epi_kw)
    out = torch.full(ref.shape, float("nan"), dtype=x.dtype, device=DEVICE)
    y = conv_relu_pool(x.to(DEVICE), wt.to(DEVICE), None if b is None else b.to(DEVICE),
                       out=out, **conv_kw, **epi_kw)
    assert y.data_ptr() == out.data_ptr()
    _check(y, ref, dtype_name)


@pytest.mark.parametrize("name", list(CASES))
def test_case_fp32(name):
    _run(CASES[name], "fp32")


@pytest.mark.parametrize("dtype_name", ["fp16", "bf16"])
@pytest.mark.parametrize("name", ["3x3p1-relu-max2x2", "stem7x7s2-max3x3s2p1", "avg3x3s1p1-cip1", "groups2"])
def test_case_half(name, dtype_name):
    _run(CASES[name], dtype_name)


def test_without_bias():
    _run(CASES["5x5-relu-max3x3s2"], "fp32", bias=False)


@pytest.mark.parametrize("dtype_name", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("activation", ["relu", "none"])
def test_residual_add(dtype_name, activation):
    n, c, h, w, o = 2, 4, 6, 5, 4
    x, wt, b, res = _inputs(n, c, h, w, o, 3, 3, 1, DTYPES[dtype_name], residual_hw=(h, w), seed=3)
    kw = dict(pads=(1, 1, 1, 1), activation=activation)
    ref = conv_relu_pool_reference(_upcast(x), _upcast(wt), _upcast(b), _upcast(res), **kw)
    out = torch.full(ref.shape, float("nan"), dtype=x.dtype, device=DEVICE)
    y = conv_relu_pool(x.to(DEVICE), wt.to(DEVICE), b.to(DEVICE), res.to(DEVICE), out=out, **kw)
    _check(y, ref, dtype_name)


def test_strided_input_and_packed_weight():
    x, wt, b, _ = _inputs(1, 3, 8, 8, 4, 3, 3, 1, torch.float32, seed=5)
    xs = x.to(memory_format=torch.channels_last)
    packed = pack_conv_weight(wt.to(DEVICE))
    ref = conv_relu_pool_reference(_upcast(x), _upcast(wt), _upcast(b), **MAX2)
    y = conv_relu_pool(xs.to(DEVICE), packed, b.to(DEVICE), **MAX2)
    assert y.is_contiguous(memory_format=torch.channels_last)
    _check(y, ref, "fp32")


def _random_case(gen):
    def pick(options):
        return options[int(torch.randint(len(options), (1,), generator=gen))]

    r, s = pick([1, 2, 3, 5]), pick([1, 3, 4])
    group = pick([1, 1, 2])
    c, o = group * pick([1, 3, 5]), group * pick([2, 3, 6])
    conv_kw = dict(strides=(pick([1, 2, 3]), pick([1, 2])), pads=tuple(pick([0, 1, 2]) for _ in range(4)),
                   dilations=(pick([1, 2]), 1), group=group)
    epi = dict(activation=pick(["relu", "none", "leaky_relu", "clip"]), alpha=0.1, clip_min=-0.5, clip_max=0.7)
    pool = pick(["none", "max", "avg"])
    if pool != "none":
        k = pick([2, 3])
        epi.update(pool=pool, pool_kernel=(k, k), pool_strides=(pick([1, 2]),) * 2, ceil_mode=pick([False, True]),
                   pool_pads=tuple(pick([0, k // 2]) for _ in range(4)), count_include_pad=pick([False, True]))
    return (pick([1, 2]), c, pick([9, 11, 12]), pick([8, 10, 13]), o, r, s, conv_kw, epi)


@pytest.mark.parametrize("seed", range(12))
def test_random_attributes(seed):
    case = _random_case(torch.Generator().manual_seed(seed))
    try:
        _run(case, ["fp32", "fp16", "bf16"][seed % 3])
    except InvalidArgument as e:
        pytest.skip(f"invalid random combination: {e}")


# ----------------------------------------------------------------------- reference and helpers
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("pool,k,s,p,cip", [
    ("max", 2, 2, 0, False), ("max", 3, 2, 1, False), ("max", 3, 1, 1, False),
    ("avg", 3, 1, 1, False), ("avg", 3, 1, 1, True), ("avg", 3, 2, 1, True), ("avg", 2, 2, 1, True),
])
def test_reference_pool_matches_torch(pool, k, s, p, cip, ceil_mode):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 11, generator=gen, dtype=torch.float64)
    wt = torch.randn(4, 3, 3, 3, generator=gen, dtype=torch.float64)
    kw = dict(pool=pool, pool_kernel=(k, k), pool_strides=(s, s), pool_pads=(p, p, p, p), ceil_mode=ceil_mode,
              count_include_pad=cip)
    got = conv_relu_pool_reference(x, wt, None, **kw)
    y = torch.relu(F.conv2d(x, wt))
    if pool == "max":
        want = F.max_pool2d(y, k, s, p, ceil_mode=ceil_mode)
    else:
        want = F.avg_pool2d(y, k, s, p, ceil_mode=ceil_mode, count_include_pad=cip)
    torch.testing.assert_close(got, want)


def test_shape_helpers():
    assert auto_pads("SAME_UPPER", (7, 8), (3, 2), (2, 2)) == (1, 0, 1, 0)
    assert auto_pads("SAME_LOWER", (8, 8), (2, 2), (1, 1)) == (1, 1, 0, 0)
    assert auto_pads("VALID", (8, 8), (3, 3), (1, 1)) == (0, 0, 0, 0)
    with pytest.raises(InvalidArgument, match="auto_pad"):
        auto_pads("NOTSET", (8, 8), (3, 3), (1, 1))
    for size, k, s, d in [(7, 3, 2, 1), (8, 2, 1, 1), (9, 3, 2, 2), (224, 7, 2, 1)]:
        pt, _, pb, _ = auto_pads("SAME_UPPER", (size, size), (k, k), (s, s), (d, d))
        assert conv_out_size(size, k, s, pt, pb, d) == -(-size // s)
    assert conv_out_size(224, 11, 4, 2, 2) == 55
    assert pool_out_size(55, 3, 2, 0, 0, False) == 27
    assert pool_out_size(112, 3, 2, 1, 1, False) == 56
    assert pool_out_size(5, 2, 2, 1, 1, True) == 3  # the window starting in the end pad is dropped


def test_configs_interpreter_gets_one():
    assert len(conv_configs(interpret=True)) == 1
    full = conv_configs(interpret=False)
    assert len(full) > 1 and full[0] == conv_configs(interpret=True)[0]
    assert all(c.kwargs["BLOCK_M"] >= 64 for c in full)


@pytest.mark.parametrize("kwargs,match", [
    (dict(x=torch.randn(3, 8, 8)), "4-D NCHW"),
    (dict(x=torch.randn(1, 3, 8, 8, dtype=torch.float64)), "dtype"),
    (dict(w=torch.randn(4, 2, 3, 3)), "channels"),
    (dict(w=torch.randn(4, 3, 3, 3, dtype=torch.float16)), "weight"),
    (dict(bias=torch.randn(5)), "bias"),
    (dict(activation="gelu"), "activation"),
    (dict(pool="lp"), "pool"),
    (dict(pool="max", pool_kernel=(2, 2), residual=torch.randn(1, 4, 6, 6)), "residual"),
    (dict(residual=torch.randn(1, 4, 5, 5)), "residual"),
    (dict(pads=(1, 1)), "pads"),
    (dict(pool="max", pool_kernel=(2, 2), pool_pads=(2, 0, 0, 0)), "pool_pads"),
    (dict(pool="max", pool_kernel=(2, 2), activation="leaky_relu", alpha=-0.5), "alpha"),
    (dict(x=torch.randn(1, 3, 2, 2)), "too small"),
])
def test_bad_input_raises_early(kwargs, match):
    args = dict(x=torch.randn(1, 3, 8, 8), w=torch.randn(4, 3, 3, 3), bias=torch.randn(4))
    args.update(kwargs)
    x, w, b = args.pop("x"), args.pop("w"), args.pop("bias")
    with pytest.raises(InvalidArgument, match=match):
        conv_relu_pool(x, w, b, **args)


def test_explicit_config():
    """`config=` bypasses the autotuner (a smaller tile than the interpreter's default)."""
    cfg = next(c for c in conv_configs(interpret=False) if c.kwargs["BLOCK_K"] == 16)
    n, c, h, w, o, r, s, conv_kw, epi_kw = CASES["3x3p1-relu-max2x2"]
    x, wt, b, _ = _inputs(n, c, h, w, o, r, s, 1, torch.float32, seed=7)
    ref = conv_relu_pool_reference(_upcast(x), _upcast(wt), _upcast(b), **conv_kw, **epi_kw)
    _check(conv_relu_pool(x.to(DEVICE), wt.to(DEVICE), b.to(DEVICE), config=cfg, **conv_kw, **epi_kw), ref, "fp32")
