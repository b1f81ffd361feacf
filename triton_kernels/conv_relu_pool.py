"""Fused 2-D convolution + bias + activation (+ residual add) + pooling, as one Triton kernel.

Math (one group g of ``group``; C_g = C / group input and O_g = O / group output channels):

    z[n, o, oh, ow] = sum_{c < C_g, r < R, s < S} x[n, g*C_g + c, oh*sh - pt + r*dh, ow*sw - pl + s*dw]
                                                  * w[o, c, r, s]          (zero outside the input)
    a = act(z + b[o] (+ res[n, o, oh, ow]))                act: none | relu | leaky_relu | clip
    y[n, o, ph, pw] = pool over the taps (i, j) of the window of a[n, o, ph*psh - ppt + i, pw*psw - ppl + j]

pool: none (y = a), max, or average (``count_include_pad`` 0: divide by the taps inside the
conv output; 1: by the taps inside the padded extent, clipped at its end, as torch and
onnxruntime do with ``ceil_mode``). For max-pooling with a monotone non-decreasing activation
(relu, leaky_relu with alpha >= 0, clip), ``max(act(z + b)) == act(max(z) + b)``: the kernel
reduces the raw accumulators first and applies bias and activation once. Average pooling applies
them per tap (the activation does not commute with the mean).

Layouts: logical NCHW at the boundary, any strides (input, residual, output). Weights are
prepacked once (`pack_conv_weight`) from ONNX ``[O, C_g, R, S]`` into ``[R*S*C_g, O]`` (K rows in
(r, s, c) order), so a K step reads BLOCK_K input channels of one filter tap and a B tile is
contiguous along O. Activations are best kept channels-last (torch's ``channels_last``: NCHW
shape, NHWC strides): the A tile is then contiguous along K and the output tile along O, which
is what lets Triton pipeline the loads (cp.async, seen in the sm_80/sm_90 builds) and vectorise
the stores. Plain NCHW inputs work too (gathered loads). The standard choice, unmeasured here
(no GPU): the runtime hands the kernel channels-last tensors and lets its outputs stay so.

Implicit GEMM: M = N * PH * PW pooled positions, N-dim = O_g channels, K = R*S*C_g. Each program
owns a BLOCK_M x BLOCK_N tile of POOLED outputs of one group; for each pool tap (i, j) it runs
the full K loop for the conv outputs under that tap (`tl.dot`, fp32 accumulation) and reduces the
tap into the pooled accumulator, so the conv output never reaches memory. Non-overlapping pools
(2x2/2) compute each conv output once; overlapping ones (3x3/2) recompute the shared taps
(2.25x the FLOPs on the interior): the price of keeping every tile independent (unmeasured).

dtypes: fp32 (``allow_tf32`` picks tf32 tensor cores), fp16, bf16; the accumulator is fp32 and
the output has the input's dtype. Under Triton's interpreter the operands are cast to fp32
before `tl.dot` (``DOT_FP32``), because the interpreter's bf16 dot is wrong.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

from tritonnx.errors import InvalidArgument
from tritonnx.triton_kernels import INTERPRET, catalog

ACTIVATIONS = {"none": 0, "relu": 1, "leaky_relu": 2, "clip": 3}
POOLS = {"none": 0, "max": 1, "avg": 2}
DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


# ---------------------------------------------------------------------------------------------
# Kernel
# ---------------------------------------------------------------------------------------------
@triton.jit
def _conv_tap(
    x_ptr, w_ptr, n_idx, oh, ow, tap_ok, chan, n_ok, g,
    C_G, H, W,
    stride_xn, stride_xc, stride_xh, stride_xw,
    stride_wk, stride_wn,
    CONV_SH, CONV_SW, CONV_PT, CONV_PL, CONV_DH, CONV_DW,
    KH: tl.constexpr, KW: tl.constexpr,
    ALLOW_TF32: tl.constexpr, DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """fp32 [BLOCK_M, BLOCK_N]: the conv outputs at (n_idx, oh, ow) x channels `chan` of group g.

    One flat loop over K = (r, s, channel block): a K step reads BLOCK_K input channels of one
    filter tap, contiguous when the input is channels-last (stride_xc == 1).
    """
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    ih0 = oh * CONV_SH - CONV_PT
    iw0 = ow * CONV_SW - CONV_PL
    x_base = x_ptr + n_idx * stride_xn + (g * C_G) * stride_xc
    c_blocks = tl.cdiv(C_G, BLOCK_K)
    for kk in range(0, KH * KW * c_blocks):
        rs = kk // c_blocks
        offs_c = (kk % c_blocks) * BLOCK_K + tl.arange(0, BLOCK_K)
        c_ok = offs_c < C_G
        ih = ih0 + (rs // KW) * CONV_DH
        iw = iw0 + (rs % KW) * CONV_DW
        row_ok = tap_ok & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
        a_ptrs = (x_base + ih * stride_xh + iw * stride_xw)[:, None] + (offs_c * stride_xc)[None, :]
        a = tl.load(a_ptrs, mask=row_ok[:, None] & c_ok[None, :], other=0.0)
        b_ptrs = w_ptr + ((rs * C_G + offs_c) * stride_wk)[:, None] + (chan * stride_wn)[None, :]
        b = tl.load(b_ptrs, mask=c_ok[:, None] & n_ok[None, :], other=0.0)
        if DOT_FP32:
            acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
        elif ALLOW_TF32:
            acc = tl.dot(a, b, acc, input_precision="tf32")
        else:
            acc = tl.dot(a, b, acc, input_precision="ieee")
    return acc


@triton.jit
def _epilogue(v, bias, ACTIVATION: tl.constexpr, alpha, clip_min, clip_max):
    """act(v + bias) on an fp32 tile; bias is a [1, BLOCK_N] row (zeros without a bias)."""
    v = v + bias
    if ACTIVATION == 1:
        v = tl.maximum(v, 0.0)
    elif ACTIVATION == 2:
        v = tl.where(v >= 0.0, v, v * alpha)
    elif ACTIVATION == 3:
        v = tl.minimum(tl.maximum(v, clip_min), clip_max)
    return v


def _prune(configs, named_args, **kwargs):
    """Drop tiles much wider than the group's channels (N and K) and over the shared-memory budget."""
    cout_g, c_g = named_args["COUT_G"], named_args["C_G"]
    elem = named_args["x_ptr"].element_size()
    kept = [
        c for c in configs
        if c.kwargs["BLOCK_N"] <= max(32, triton.next_power_of_2(cout_g))
        and c.kwargs["BLOCK_K"] <= max(16, triton.next_power_of_2(c_g))
        and _smem_bytes(c, elem) <= _SMEM_BUDGET
    ]
    return kept or configs[:1]


_SMEM_BUDGET = 160 * 1024  # below sm_80's 163 KiB of dynamic shared memory per block


def _smem_bytes(cfg: triton.Config, elem: int) -> int:
    bm, bn, bk = cfg.kwargs["BLOCK_M"], cfg.kwargs["BLOCK_N"], cfg.kwargs["BLOCK_K"]
    return cfg.num_stages * (bm * bk + bk * bn) * elem


def conv_configs(*, interpret: bool | None = None) -> list[triton.Config]:
    """The autotune tile configs of `conv_relu_pool_kernel` (the compile gate lists the same).

    Under Triton's interpreter only the first one (the interpreter cannot benchmark).
    """
    interpret = INTERPRET if interpret is None else interpret

    def keep(bm: int, bn: int, bk: int, warps: int, stages: int) -> bool:
        if bm == 128 and bn == 32:
            return False
        return stages * (bm * bk + bk * bn) * 4 <= _SMEM_BUDGET  # fits even with fp32 operands

    first = (128, 64, 32, 4, 3)
    shapes = [
        (bm, bn, bk, 8 if bm * bn >= 128 * 128 else 4, 4 if bk == 16 else 3)
        for bm in (64, 128)
        for bn in (32, 64, 128)
        for bk in (16, 32, 64)
    ]
    configs = [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=warps, num_stages=stages)
        for bm, bn, bk, warps, stages in [first] + [c for c in shapes if c != first]
        if keep(bm, bn, bk, warps, stages)
    ]
    return configs[:1] if interpret else configs


#: Sizes and pads that need no specialisation: Triton would otherwise compile one variant per
#: "multiple of 16" / "== 1" pattern of each (a VGG-16 or GoogLeNet needed 100+ compiles per
#: dtype); none is a stride, a channel count or a tile-loop bound the kernel's loads rely on.
DO_NOT_SPECIALIZE = ("N_BATCH", "M_TOTAL", "M_BUCKET", "H", "W", "OH", "OW", "PH", "PW",
                     "CONV_PT", "CONV_PL", "POOL_PT", "POOL_PL", "POOL_PB", "POOL_PR")


@triton.autotune(
    configs=conv_configs(),
    key=["M_BUCKET", "COUT_G", "C_G", "KH", "KW", "POOL_KIND", "POOL_KH", "POOL_KW"],
    prune_configs_by={"early_config_prune": _prune},
    cache_results=True,
)
@triton.jit(do_not_specialize=list(DO_NOT_SPECIALIZE))
def conv_relu_pool_kernel(
    # pointers
    x_ptr, w_ptr, b_ptr, r_ptr, y_ptr,
    # sizes
    N_BATCH, C_G, H, W, COUT_G, OH, OW, PH, PW, M_TOTAL, M_BUCKET,
    # strides
    stride_xn, stride_xc, stride_xh, stride_xw,
    stride_wk, stride_wn,
    stride_rn, stride_rc, stride_rh, stride_rw,
    stride_yn, stride_yc, stride_yh, stride_yw,
    # convolution
    CONV_SH, CONV_SW, CONV_PT, CONV_PL, CONV_DH, CONV_DW,
    # pooling (pads: top, left, bottom, right)
    POOL_SH, POOL_SW, POOL_PT, POOL_PL, POOL_PB, POOL_PR,
    # epilogue scalars
    alpha, clip_min, clip_max,
    # meta-parameters
    KH: tl.constexpr, KW: tl.constexpr,
    POOL_KIND: tl.constexpr, POOL_KH: tl.constexpr, POOL_KW: tl.constexpr,
    COUNT_INCLUDE_PAD: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_RESIDUAL: tl.constexpr, ACTIVATION: tl.constexpr,
    ALLOW_TF32: tl.constexpr, DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    g = tl.program_id(2)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_ok = offs_m < M_TOTAL
    n_idx = offs_m // (PH * PW)
    rem = offs_m % (PH * PW)
    ph = rem // PW
    pw = rem % PW
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = offs_n < COUT_G
    chan = g * COUT_G + offs_n

    if HAS_BIAS:
        bias = tl.load(b_ptr + chan, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    else:
        bias = tl.zeros((1, BLOCK_N), dtype=tl.float32)

    if POOL_KIND == 0:
        acc = _conv_tap(
            x_ptr, w_ptr, n_idx, ph, pw, m_ok, chan, n_ok, g,
            C_G, H, W,
            stride_xn, stride_xc, stride_xh, stride_xw, stride_wk, stride_wn,
            CONV_SH, CONV_SW, CONV_PT, CONV_PL, CONV_DH, CONV_DW,
            KH, KW, ALLOW_TF32, DOT_FP32, BLOCK_M, BLOCK_N, BLOCK_K,
        )
        if HAS_RESIDUAL:
            r_ptrs = (r_ptr + (n_idx * stride_rn + ph * stride_rh + pw * stride_rw)[:, None]
                      + (chan * stride_rc)[None, :])
            res = tl.load(r_ptrs, mask=m_ok[:, None] & n_ok[None, :], other=0.0)
            acc = acc + res.to(tl.float32)
        out = _epilogue(acc, bias, ACTIVATION, alpha, clip_min, clip_max)
    else:
        h0 = ph * POOL_SH - POOL_PT
        w0 = pw * POOL_SW - POOL_PL
        if POOL_KIND == 1:
            pooled = tl.full((BLOCK_M, BLOCK_N), float("-inf"), dtype=tl.float32)
        else:
            pooled = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            count = tl.zeros((BLOCK_M,), dtype=tl.float32)
        # A runtime loop over the window's taps, not static_range: unrolled taps kept every
        # tap's addressing live at once (255 registers and spills in the sm_90/sm_80 builds).
        for t in range(POOL_KH * POOL_KW):
            oh = h0 + t // POOL_KW
            ow = w0 + t % POOL_KW
            tap_ok = m_ok & (oh >= 0) & (oh < OH) & (ow >= 0) & (ow < OW)
            acc = _conv_tap(
                x_ptr, w_ptr, n_idx, oh, ow, tap_ok, chan, n_ok, g,
                C_G, H, W,
                stride_xn, stride_xc, stride_xh, stride_xw, stride_wk, stride_wn,
                CONV_SH, CONV_SW, CONV_PT, CONV_PL, CONV_DH, CONV_DW,
                KH, KW, ALLOW_TF32, DOT_FP32, BLOCK_M, BLOCK_N, BLOCK_K,
            )
            if POOL_KIND == 1:
                pooled = tl.maximum(pooled, tl.where(tap_ok[:, None], acc, float("-inf")))
            else:
                val = _epilogue(acc, bias, ACTIVATION, alpha, clip_min, clip_max)
                pooled += tl.where(tap_ok[:, None], val, 0.0)
                if COUNT_INCLUDE_PAD:
                    in_extent = (oh < OH + POOL_PB) & (ow < OW + POOL_PR)
                    count += in_extent.to(tl.float32)
                else:
                    count += tap_ok.to(tl.float32)
        if POOL_KIND == 1:
            out = _epilogue(pooled, bias, ACTIVATION, alpha, clip_min, clip_max)
        else:
            out = pooled / tl.maximum(count, 1.0)[:, None]

    y_ptrs = (y_ptr + (n_idx * stride_yn + ph * stride_yh + pw * stride_yw)[:, None]
              + (chan * stride_yc)[None, :])
    tl.store(y_ptrs, out.to(y_ptr.dtype.element_ty), mask=m_ok[:, None] & n_ok[None, :])


# ---------------------------------------------------------------------------------------------
# Shape helpers (the caller turns auto_pad into explicit pads with `auto_pads`)
# ---------------------------------------------------------------------------------------------
def auto_pads(auto_pad: str, in_hw: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int] = (1, 1)) -> tuple[int, int, int, int]:
    """ONNX ``auto_pad`` -> explicit pads (top, left, bottom, right).

    SAME_UPPER/SAME_LOWER: output = ceil(in / stride), the odd pad at the end (UPPER) or the
    beginning (LOWER); VALID: no pads. NOTSET is an error here (the node's own pads apply).
    """
    if auto_pad == "VALID":
        return (0, 0, 0, 0)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise InvalidArgument(f"auto_pad: expected SAME_UPPER, SAME_LOWER or VALID, got {auto_pad!r}")
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begin.append(small if auto_pad == "SAME_UPPER" else big)
        end.append(big if auto_pad == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def conv_out_size(size: int, k: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1) -> int:
    """Output length of one conv axis (floor)."""
    return (size + pad_begin + pad_end - (k - 1) * dilation - 1) // stride + 1


def pool_out_size(size: int, k: int, stride: int, pad_begin: int, pad_end: int, ceil_mode: bool) -> int:
    """Output length of one pool axis; with ``ceil_mode`` a last window that would start in the
    end padding is dropped (torch's and onnxruntime's rule)."""
    span = size + pad_begin + pad_end - k
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


# ---------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackedConvWeight:
    """Conv weights packed once for the kernel: ``data`` is [R*S*C_g, O] (K rows in (r, s, c) order)."""

    data: torch.Tensor
    out_channels: int
    in_channels_per_group: int
    kernel: tuple[int, int]
    group: int


def pack_conv_weight(w: torch.Tensor, group: int = 1) -> PackedConvWeight:
    """ONNX weights [O, C/group, R, S] -> `PackedConvWeight` ([R*S*C_g, O], contiguous, same dtype)."""
    if w.dim() != 4:
        raise InvalidArgument(f"conv weight: expected a 4-D [O, C/group, R, S] tensor, got shape {tuple(w.shape)}")
    o, cg, r, s = w.shape
    if group < 1 or o % group:
        raise InvalidArgument(f"conv weight: {o} output channels are not divisible by group={group}")
    return PackedConvWeight(w.permute(2, 3, 1, 0).reshape(r * s * cg, o).contiguous(), o, cg, (r, s), group)


# ---------------------------------------------------------------------------------------------
# Launch wrapper
# ---------------------------------------------------------------------------------------------
def _pair(v, name: str, default: int) -> tuple[int, int]:
    if v is None:
        return (default, default)
    v = tuple(int(i) for i in v)
    if len(v) != 2:
        raise InvalidArgument(f"{name}: expected 2 values for a 2-D conv/pool, got {list(v)}")
    return v


def _quad(v, name: str) -> tuple[int, int, int, int]:
    if v is None:
        return (0, 0, 0, 0)
    v = tuple(int(i) for i in v)
    if len(v) != 4 or min(v) < 0:
        raise InvalidArgument(f"{name}: expected 4 non-negative values (top, left, bottom, right), got {list(v)}")
    return v


def _span(t: torch.Tensor) -> int:
    """Elements from the start of t's storage to its last element (what int32 offsets must reach)."""
    return t.storage_offset() + sum((d - 1) * st for d, st in zip(t.shape, t.stride())) + 1


def conv_relu_pool(
    x: torch.Tensor,
    w: torch.Tensor | PackedConvWeight,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    group: int = 1,
    activation: str = "relu",
    alpha: float = 0.01,
    clip_min: float = float("-inf"),
    clip_max: float = float("inf"),
    pool: str = "none",
    pool_kernel: Sequence[int] | None = None,
    pool_strides: Sequence[int] | None = None,
    pool_pads: Sequence[int] | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    allow_tf32: bool = True,
    out: torch.Tensor | None = None,
    config: triton.Config | None = None,
) -> torch.Tensor:
    """Fused Conv + bias + (residual add) + activation + pool (see the module docstring).

    Args:
        x: [N, C, H, W] fp32/fp16/bf16 (any strides).
        w: ONNX weights [O, C/group, R, S] of x's dtype, or the `PackedConvWeight` of them.
        bias: [O] or None. residual: [N, O, OH, OW] (the conv output's shape), only without a pool.
        strides, dilations: 2 ints (default 1); pads: (top, left, bottom, right), explicit
            (use `auto_pads` for ``auto_pad``).
        activation: "none" | "relu" | "leaky_relu" (``alpha``) | "clip" (``clip_min``, ``clip_max``).
        pool: "none" | "max" | "avg"; ``pool_kernel``, ``pool_strides`` (default = kernel),
            ``pool_pads`` (top, left, bottom, right), ``ceil_mode``, ``count_include_pad`` (avg).
        allow_tf32: fp32 inputs may use tf32 tensor cores.
        out: optional preallocated output of the right shape and dtype (any strides).
        config: run this tile config instead of the autotuner's choice (tests, benchmarks).
    Returns:
        [N, O, PH, PW] in x's dtype (PH, PW = OH, OW without a pool); channels-last when x is.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        raise InvalidArgument(f"conv input: expected a 4-D NCHW tensor, got {getattr(x, 'shape', type(x))}")
    if x.dtype not in DTYPES:
        raise InvalidArgument(f"conv input: expected dtype fp32, fp16 or bf16, got {x.dtype}")
    packed = w if isinstance(w, PackedConvWeight) else pack_conv_weight(w, group)
    if packed.group != group:
        raise InvalidArgument(f"conv weight: packed for group={packed.group}, called with group={group}")
    if packed.data.dtype != x.dtype or packed.data.device != x.device:
        raise InvalidArgument(
            f"conv weight: expected {x.dtype} on {x.device} like the input, got {packed.data.dtype} on {packed.data.device}")
    n, c, h, wd = x.shape
    if c != packed.in_channels_per_group * group:
        raise InvalidArgument(
            f"conv input: expected {packed.in_channels_per_group * group} channels "
            f"(weight C/group={packed.in_channels_per_group} x group={group}), got {c}")
    cout = packed.out_channels
    kh, kw = packed.kernel
    sh, sw = _pair(strides, "strides", 1)
    dh, dw = _pair(dilations, "dilations", 1)
    pt, pl, pb, pr = _quad(pads, "pads")
    if min(sh, sw, dh, dw) < 1:
        raise InvalidArgument(f"strides/dilations: expected >= 1, got strides={[sh, sw]} dilations={[dh, dw]}")
    oh = conv_out_size(h, kh, sh, pt, pb, dh)
    ow = conv_out_size(wd, kw, sw, pl, pr, dw)
    if oh < 1 or ow < 1:
        raise InvalidArgument(f"conv: input {h}x{wd} too small for kernel {kh}x{kw} (output {oh}x{ow})")
    if activation not in ACTIVATIONS:
        raise InvalidArgument(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}")
    if pool not in POOLS:
        raise InvalidArgument(f"pool: expected one of {sorted(POOLS)}, got {pool!r}")

    if pool == "none":
        pkh = pkw = psh = psw = 1
        ppt = ppl = ppb = ppr = 0
        ph_, pw_ = oh, ow
    else:
        pkh, pkw = _pair(pool_kernel, "pool_kernel", 0)
        if pkh < 1 or pkw < 1:
            raise InvalidArgument(f"pool_kernel: expected 2 positive ints, got {pool_kernel}")
        psh, psw = _pair(pool_strides, "pool_strides", 1) if pool_strides is not None else (pkh, pkw)
        ppt, ppl, ppb, ppr = _quad(pool_pads, "pool_pads")
        if max(ppt, ppb) >= pkh or max(ppl, ppr) >= pkw:
            raise InvalidArgument(f"pool_pads: expected each pad < the window {pkh}x{pkw}, got {[ppt, ppl, ppb, ppr]}")
        if pool == "max" and activation == "leaky_relu" and alpha < 0:
            raise InvalidArgument(f"max pool after leaky_relu needs alpha >= 0 (monotone), got alpha={alpha}")
        ph_ = pool_out_size(oh, pkh, psh, ppt, ppb, ceil_mode)
        pw_ = pool_out_size(ow, pkw, psw, ppl, ppr, ceil_mode)
        if ph_ < 1 or pw_ < 1:
            raise InvalidArgument(f"pool: conv output {oh}x{ow} too small for window {pkh}x{pkw}")
    if bias is not None and (bias.shape != (cout,) or bias.device != x.device):
        raise InvalidArgument(f"conv bias: expected shape [{cout}] on {x.device}, got {list(bias.shape)} on {bias.device}")
    if residual is not None:
        if pool != "none":
            raise InvalidArgument("residual add: only supported without a pool (Conv+Add+act)")
        if tuple(residual.shape) != (n, cout, oh, ow) or residual.device != x.device:
            raise InvalidArgument(
                f"residual: expected shape {[n, cout, oh, ow]} on {x.device}, got {list(residual.shape)} on {residual.device}")

    if out is None:
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        out = torch.empty((n, cout, ph_, pw_), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    elif tuple(out.shape) != (n, cout, ph_, pw_) or out.dtype != x.dtype or out.device != x.device:
        raise InvalidArgument(f"out: expected {[n, cout, ph_, pw_]} {x.dtype} on {x.device}, "
                              f"got {list(out.shape)} {out.dtype} on {out.device}")

    for name, t in (("input", x), ("output", out), ("residual", residual)):
        if t is not None and _span(t) >= 2**31:
            raise InvalidArgument(f"conv {name}: {list(t.shape)} has >= 2**31 elements (int32 offsets); split the batch")
    m_total = n * ph_ * pw_
    cout_g = cout // group
    res = residual if residual is not None else out
    grid = lambda meta: (triton.cdiv(m_total, meta["BLOCK_M"]), triton.cdiv(cout_g, meta["BLOCK_N"]), group)  # noqa: E731
    if config is None:
        launch, meta = conv_relu_pool_kernel, {}
    else:
        launch = conv_relu_pool_kernel.fn
        meta = dict(config.kwargs, num_warps=config.num_warps, num_stages=config.num_stages)
    args = (
        x, packed.data, bias if bias is not None else out, res, out,
        n, packed.in_channels_per_group, h, wd, cout_g, oh, ow, ph_, pw_, m_total,
        max(0, int(math.log2(m_total))),
        *x.stride(),
        *packed.data.stride(),
        *res.stride(),
        *out.stride(),
        sh, sw, pt, pl, dh, dw,
        psh, psw, ppt, ppl, ppb, ppr,
        float(alpha), float(clip_min), float(clip_max),
    )
    flags = dict(
        KH=kh, KW=kw,
        POOL_KIND=POOLS[pool], POOL_KH=pkh, POOL_KW=pkw,
        COUNT_INCLUDE_PAD=bool(count_include_pad),
        HAS_BIAS=bias is not None, HAS_RESIDUAL=residual is not None, ACTIVATION=ACTIVATIONS[activation],
        ALLOW_TF32=bool(allow_tf32) and x.dtype == torch.float32,
        DOT_FP32=INTERPRET,
    )
    if config is None and not INTERPRET:
        compile_configs_in_parallel(conv_relu_pool_kernel, args, flags)
    launch[grid](*args, **flags, **meta)
    return out


def compile_threads() -> int:
    """Threads that compile a new shape's autotune configs at once: `TRITONNX_COMPILE_THREADS`,
    else one per core up to 16 (ptxas runs as its own process)."""
    import os

    try:
        return max(0, int(os.environ.get("TRITONNX_COMPILE_THREADS", "")))
    except ValueError:
        return min(16, os.cpu_count() or 1)


def compile_configs_in_parallel(autotuner, args: tuple, flags: dict) -> bool:
    """Before `autotuner` times a new key's configs one after another (compiling each in its
    turn), compile them all at once on `compile_threads()` threads (Triton's AsyncCompileMode);
    its timing then finds them compiled. False when nothing was done: a key already tuned, one
    thread, or a Triton without AsyncCompileMode."""
    named = {**dict(zip(autotuner.arg_names, args)), **flags}
    key = [named[k] for k in autotuner.keys if k in named]
    key += [str(v.dtype) for k, v in named.items() if k in autotuner.arg_names and hasattr(v, "dtype")]
    threads = compile_threads()
    if tuple(key) in autotuner.cache or threads <= 1 or len(autotuner.configs) <= 1:
        return False
    try:
        from triton.runtime._async_compile import AsyncCompileMode
    except ImportError:
        return False
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool, AsyncCompileMode(pool):
        autotuner.warmup(*args, grid=(1,), **flags)
    return True


# ---------------------------------------------------------------------------------------------
# Plain-torch reference (same math; also the runtime's path when kernels == "torch")
# ---------------------------------------------------------------------------------------------
def conv_relu_pool_reference(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    *,
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    group: int = 1,
    activation: str = "relu",
    alpha: float = 0.01,
    clip_min: float = float("-inf"),
    clip_max: float = float("inf"),
    pool: str = "none",
    pool_kernel: Sequence[int] | None = None,
    pool_strides: Sequence[int] | None = None,
    pool_pads: Sequence[int] | None = None,
    ceil_mode: bool = False,
    count_include_pad: bool = False,
    allow_tf32: bool = True,
) -> torch.Tensor:
    """The same computation as `conv_relu_pool` with torch ops, in x's dtype (w: ONNX layout).

    ``allow_tf32`` is accepted for signature parity and ignored.
    """
    pt, pl, pb, pr = _quad(pads, "pads")
    y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, bias, stride=_pair(strides, "strides", 1),
                 dilation=_pair(dilations, "dilations", 1), groups=group)
    if residual is not None:
        y = y + residual

    def act(v: torch.Tensor) -> torch.Tensor:
        if activation == "relu":
            return torch.relu(v)
        if activation == "leaky_relu":
            return F.leaky_relu(v, alpha)
        if activation == "clip":
            return v.clamp(clip_min, clip_max)
        return v

    y = act(y)
    if pool == "none":
        return y
    pkh, pkw = _pair(pool_kernel, "pool_kernel", 0)
    psh, psw = _pair(pool_strides, "pool_strides", 1) if pool_strides is not None else (pkh, pkw)
    ppt, ppl, ppb, ppr = _quad(pool_pads, "pool_pads")
    oh, ow = y.shape[-2:]
    ph = pool_out_size(oh, pkh, psh, ppt, ppb, ceil_mode)
    pw = pool_out_size(ow, pkw, psw, ppl, ppr, ceil_mode)
    # Pad so every window fits: tap (i, j) of output (p, q) reads padded[p*s + i, q*s + j].
    eh = max(0, (ph - 1) * psh + pkh - (oh + ppt))
    ew = max(0, (pw - 1) * psw + pkw - (ow + ppl))
    ones = torch.ones((oh, ow), dtype=y.dtype, device=y.device)
    valid = F.pad(ones, (ppl, ew, ppt, eh))
    extent = torch.zeros_like(valid)
    extent[: oh + ppt + ppb, : ow + ppl + ppr] = 1
    fill = float("-inf") if pool == "max" else 0.0
    yp = F.pad(y, (ppl, ew, ppt, eh), value=fill)
    taps = [
        (yp[..., i: i + (ph - 1) * psh + 1: psh, j: j + (pw - 1) * psw + 1: psw],
         valid[i: i + (ph - 1) * psh + 1: psh, j: j + (pw - 1) * psw + 1: psw],
         extent[i: i + (ph - 1) * psh + 1: psh, j: j + (pw - 1) * psw + 1: psw])
        for i in range(pkh) for j in range(pkw)
    ]
    if pool == "max":
        return torch.stack([t for t, _, _ in taps]).amax(0)
    total = torch.stack([t for t, _, _ in taps]).sum(0)
    count = torch.stack([e if count_include_pad else v for _, v, e in taps]).sum(0)
    return total / count.clamp_min(1)


# ----------------------------------------------------------------------------- compile-gate entry
#: pool flag -> (POOL_KIND, POOL_KH, POOL_KW, COUNT_INCLUDE_PAD)
_CONV_POOLS = {"none": (0, 1, 1, 0), "max2": (1, 2, 2, 0), "max3": (1, 3, 3, 0),
               "avg2": (2, 2, 2, 0), "avg3_pad": (2, 3, 3, 1), "avg7": (2, 7, 7, 0)}


def _conv_configs():
    """`conv_configs()` as on a GPU (the parent process may run under the interpreter, where
    the module's default is its first config only)."""
    return conv_configs(interpret=False)


def _conv_flags(dtype: str) -> dict[str, tuple]:
    return {
        "kernel": (1, 3, 5, 7, 11),  # KH = KW: the zoo's conv sizes
        "pool": tuple(_CONV_POOLS),
        "activation": tuple(ACTIVATIONS),
        "bias": (0, 1),
        "residual": (0, 1),
        "tf32": (0, 1) if dtype == "fp32" else (0,),
        "layout": tuple(_CONV_LAYOUTS),
    }


def _conv_valid(dtype: str, flags: dict) -> bool:
    return not (flags["residual"] and flags["pool"] != "none")  # the launcher's rule


def _conv_cost(flags: dict) -> float:
    # the extra configs of a sample get the common case: no pool, then small windows
    _, pkh, pkw, _ = _CONV_POOLS[flags["pool"]]
    return (pkh * pkw + 0.1 * (flags["residual"] + flags["bias"] + (flags["activation"] != "none"))
            + 0.01 * (flags["layout"] != "nhwc16") + 0.01 * (not flags["tf32"]))  # tf32: the default


def _conv_signature(fn, dtype, flags, config):
    kind, pkh, pkw, cip = _CONV_POOLS[flags["pool"]]
    return catalog.make_spec(
        fn, config,
        pointers={"x_ptr": dtype, "w_ptr": dtype, "b_ptr": dtype, "r_ptr": dtype, "y_ptr": dtype},
        constexprs={"KH": flags["kernel"], "KW": flags["kernel"], "POOL_KIND": kind,
                    "POOL_KH": pkh, "POOL_KW": pkw, "COUNT_INCLUDE_PAD": bool(cip),
                    "HAS_BIAS": bool(flags["bias"]), "HAS_RESIDUAL": bool(flags["residual"]),
                    "ACTIVATION": ACTIVATIONS[flags["activation"]],
                    "ALLOW_TF32": bool(flags["tf32"]), "DOT_FP32": False},
        floats=("alpha", "clip_min", "clip_max"),
        **_CONV_LAYOUTS[flags["layout"]],
    )


#: How the launcher's tensors specialise (Triton turns an int 1 into a constant and marks
#: multiples of 16): "nhwc16" = channels-last activations (the runtime hands every conv its
#: input channels-last on a GPU) with channel counts that are multiples of 16 (most layers past
#: the first); "nhwc" = channels-last with no size hints (a first layer, C = 1 or 3, and
#: LeNet-5's 6-channel layers); "nchw" = plain contiguous NCHW with no size hints (a direct
#: call of `conv_relu_pool`). The packed weight [K, O] is contiguous.
_CONV_LAYOUTS = {
    "nhwc16": {"ones": ("stride_xc", "stride_wn", "stride_rc", "stride_yc"),
               "divisible": ("C_G", "COUT_G", "stride_xn", "stride_xh", "stride_xw", "stride_wk",
                             "stride_rn", "stride_rh", "stride_rw", "stride_yn", "stride_yh",
                             "stride_yw")},
    "nhwc": {"ones": ("stride_xc", "stride_wn", "stride_rc", "stride_yc"), "divisible": ()},
    "nchw": {"ones": ("stride_xw", "stride_wn", "stride_rw", "stride_yw"), "divisible": ()},
}


def _conv_spills(row: dict) -> str | None:
    """Why a spilling conv compile is accepted for now (seen in the report, triton 3.6; all
    with 255 registers per thread; none timed on a GPU yet)."""
    pool = row["flags"]["pool"]
    if pool != "none":
        return (f"pool {pool}: the pooled accumulator and each tap's conv accumulator are live "
                f"together (seen up to ~1.3 KB of stack with the plain-NCHW specialisation and "
                f"unrolled taps; none since the taps became a runtime loop). Kept until a GPU "
                f"timing says whether to prune (owner: conv)")
    if row["flags"]["residual"] and row["flags"]["layout"] != "nhwc16" and row["spill"] <= 1024:
        return ("residual epilogue with no size hints (channels not a multiple of 16): seen "
                "784-880 B of stack at 255 registers with the 64x128 tiles; the zoo's residual "
                "blocks (ResNet) have >= 64 channels (nhwc16, no such spill). Kept until a GPU "
                "timing says whether to prune (owner: conv)")
    if row["spill"] <= 128:
        return ("<= 128 B of stack at 255 registers (the largest tiles in fp32/tf32, or with the "
                "residual epilogue): at most 32 values per thread, L1-resident; more fails the gate")
    return None


def _conv_expect_tc(config, dtype, flags, arch) -> bool:
    # Every conv tile has BLOCK_M >= 64 and >= 4 warps: wgmma on sm_90 (mma on sm_80) for
    # 16-bit operands and for fp32 with tf32; fp32 without tf32 is an fp32 FMA product.
    return dtype != "fp32" or bool(flags["tf32"])


def _conv_ptx_requires(dtype, flags, arch) -> tuple[str, ...]:
    # channels-last activations (unit channel strides): the A/B tiles are loaded through
    # cp.async (software pipelining); the plain-NCHW first layer is not required to be
    return ("cp.async",) if flags["layout"] == "nhwc16" else ()


def _conv_entry() -> catalog.KernelEntry:
    return catalog.KernelEntry(
        name="conv_relu_pool",
        kernel=f"{__name__}:conv_relu_pool_kernel",
        configs=_conv_configs,
        dtypes=("fp32", "fp16", "bf16"),
        signature=_conv_signature,
        flags=_conv_flags,
        valid=_conv_valid,
        cost=_conv_cost,
        matmul=True,
        expect_tensor_core=_conv_expect_tc,
        spills=_conv_spills,
        ptx_requires=_conv_ptx_requires,
        note="implicit-GEMM Conv+bias+act(+residual)+pool",
    )


catalog.register(_conv_entry())
