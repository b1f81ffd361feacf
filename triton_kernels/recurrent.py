"""Fused recurrent kernels: ONNX LSTM, GRU (both linear_before_reset) and RNN on Triton.

Math: exactly `rnn_reference` (see its docstring), in three parts per direction d:

1. Input projection for all steps, one matrix product (torch `addmm`, i.e. cuBLAS on a GPU):
   ``xp[t, b, :] = X[t, b] @ W[d]^T + Wb[d] (+ Rb[d] for the gates whose Rb adds linearly)``.
   It is a plain dense GEMM of [seq*batch, input] x [input, dirs*G*H] with nothing to fuse and
   off the sequential critical path: a Triton copy would only match cuBLAS (unmeasured).
2. The recurrence, per step s: ``gates^T = Rp · h^T`` (M side = gate rows, N side = batch, so
   the large dimension feeds the tensor cores' M at small batch), then the gate nonlinearities
   and the cell/hidden update, fused while the fp32 accumulator is live.
3. Outputs: Y written per step (zero past each item's length), Y_h / Y_c from the state buffers.

Packed recurrent weights (`pack`): ONNX ``R[d]`` [G*H, H] (gate order i,o,f,c / z,r,h / one)
is regrouped into blocks of BLOCK_J hidden units, all gates of a unit in one tile::

    Rp[d, jb, g*BLOCK_J + jj, k] = R[d, g*H + jb*BLOCK_J + jj, k]     (zero-padded)

with GP = 4 gate slots (GRU's 3 gates padded to 4, RNN's 1 gate: GP = 1) and
GP*BLOCK_J = 64 rows, so one `tl.dot` of [64, BLOCK_K] x [BLOCK_K, BLOCK_B] yields every
gate of BLOCK_J units (BLOCK_M = 64 >= the wgmma minimum on sm_90 with 4 warps).

Two recurrence kernels, the same device code per step (`_cell_update`):
(a) `recurrent_step_kernel`: one launch per step; grid (H/BLOCK_J, batch/BLOCK_B, dirs);
    the K loop streams Rp from memory (L2-resident across steps for small H).
(b) `recurrent_persistent_kernel`: one launch for the whole sequence; each program loads its
    [64, KPAD] tile of Rp once and holds it on chip across steps; programs meet at a
    grid-wide barrier per step (DESIGN: release atomic add, acquire spin until
    (step+1)*programs, per direction). Only safe when every program is resident at once, so the
    wrapper launches it only with grid <= SM count and a tile small enough for one program per
    SM (`persistent_fits`). Under Triton's interpreter (programs run one after another) the
    barrier would deadlock: there `USE_BARRIER=False` and the host loops over steps, one
    launch per step of the same kernel (`STEPS=1`).
The hidden state lives in an fp32 ping-pong buffer [dirs, 2, batch, H] (step s reads slot
s%2, writes slot (s+1)%2; an item past its length copies its state forward); the cell state in
an fp32 buffer [dirs, batch, H] updated in place by the program that owns the tile.

dtypes: fp32 (tf32 tensor cores when `allow_tf32`), fp16, bf16 weights and inputs; h is cast
to the weight dtype for the product; accumulation, gates and cell state are fp32; outputs come
back in the input dtype. Under the interpreter the dot operands are upcast to fp32
(`DOT_FP32`: its bf16 dot is wrong).

Supported attributes: every direction, layout 0/1, B, sequence_lens, initial_h/c, P, clip,
input_forget, and all eleven ONNX recurrent activations (constexpr codes, alpha/beta as
arguments; directions with different (f, g, h) lists are launched separately); GRU with either
linear_before_reset. GRU linear_before_reset=0 needs r of every unit before the product
(r*h) · Rh^T, so its step is two phases with a grid-wide sync between (two launches per step,
or two barriers per step in the persistent kernel): correct, but unmeasured and twice the
product work of lbr=1. Declined (`unsupported_reason`, the rule runs them on the reference):
dtypes other than fp32/fp16/bf16, unknown activation names.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from tritonnx.errors import InvalidArgument
from tritonnx.triton_kernels import INTERPRET, catalog
from tritonnx.triton_kernels.rnn_reference import GATES, resolve_activations

CELLS = {"LSTM": 0, "GRU": 1, "RNN": 2}  # GRU with linear_before_reset=0 is cell code 3
#: ONNX activation name (lower case) -> constexpr code of `_activate`.
ACT_CODES = {"relu": 0, "tanh": 1, "sigmoid": 2, "affine": 3, "leakyrelu": 4,
             "thresholdedrelu": 5, "scaledtanh": 6, "hardsigmoid": 7, "elu": 8, "softsign": 9,
             "softplus": 10}
DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
TILE_ROWS = 64  # GP * BLOCK_J: the M side of the recurrent product
MODES = ("auto", "step", "persistent")


# ---------------------------------------------------------------------------------------------
# Device functions
# ---------------------------------------------------------------------------------------------
@triton.jit
def _sigmoid(x):
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def _tanh(x):
    return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0


@triton.jit
def _activate(x, ACT: tl.constexpr, alpha, beta):
    """ONNX recurrent activation by code (see ACT_CODES), fp32 in and out."""
    if ACT == 0:
        y = tl.maximum(x, 0.0)
    elif ACT == 1:
        y = _tanh(x)
    elif ACT == 2:
        y = _sigmoid(x)
    elif ACT == 3:
        y = alpha * x + beta
    elif ACT == 4:
        y = tl.where(x >= 0, x, alpha * x)
    elif ACT == 5:
        y = tl.where(x > alpha, x, 0.0)
    elif ACT == 6:
        y = alpha * _tanh(beta * x)
    elif ACT == 7:
        y = tl.minimum(tl.maximum(alpha * x + beta, 0.0), 1.0)
    elif ACT == 8:
        y = tl.where(x >= 0, x, alpha * (tl.exp(tl.minimum(x, 0.0)) - 1.0))
    elif ACT == 9:
        y = x / (1.0 + tl.abs(x))
    else:
        y = tl.where(x > 20.0, x, tl.log(1.0 + tl.exp(tl.minimum(x, 20.0))))
    return y


@triton.jit
def _clip(x, clip, HAS_CLIP: tl.constexpr):
    if HAS_CLIP:
        x = tl.minimum(tl.maximum(x, -clip), clip)
    return x


@triton.jit
def _gate(acc3, g: tl.constexpr, GP: tl.constexpr):
    """Rows g*BLOCK_J .. (g+1)*BLOCK_J of the [GP, BLOCK_J, BLOCK_B] accumulator."""
    gidx = tl.arange(0, GP)[:, None, None]
    return tl.sum(tl.where(gidx == g, acc3, 0.0), axis=0)


@triton.jit
def _cell_update(
    acc, d, s, pid_j, pid_b,
    # pointers
    xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
    # sizes
    batch, H, rev_mask,
    # strides
    stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
    # scalars
    clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
    # meta-parameters
    CELL: tl.constexpr, GP: tl.constexpr, HAS_PEEP: tl.constexpr, HAS_CLIP: tl.constexpr,
    INPUT_FORGET: tl.constexpr, ACT_F: tl.constexpr, ACT_G: tl.constexpr, ACT_H: tl.constexpr,
    PHASE: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_B: tl.constexpr,
):
    """Gates, cell and hidden update of one [BLOCK_J units, BLOCK_B items] tile at step s.

    acc: fp32 [GP*BLOCK_J, BLOCK_B], the recurrent product Rp · h^T of this tile.
    Reads h slot s%2, writes slot (s+1)%2, c in place, Y at each item's time index.
    GRU with linear_before_reset=0 (CELL 3) runs in two phases with a grid-wide sync between:
    PHASE 1 (acc = Rp · h^T) stores z and r*h; PHASE 2 (acc = Rp · (r*h)^T) the update.
    """
    G: tl.constexpr = 4 if CELL == 0 else (1 if CELL == 2 else 3)
    GATES_ONLY: tl.constexpr = CELL == 3 and PHASE == 1
    offs_j = pid_j * BLOCK_J + tl.arange(0, BLOCK_J)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_j = offs_j < H
    mask_b = offs_b < batch
    lens = tl.load(lens_ptr + offs_b, mask=mask_b, other=0)
    rev = (rev_mask >> d) & 1
    valid_b = s < lens
    t_valid = tl.where(rev == 1, lens - 1 - s, s)
    t_read = tl.where(valid_b, t_valid, 0)
    t_write = tl.where(valid_b, t_valid, s)
    mask = mask_j[:, None] & mask_b[None, :]
    valid = mask & valid_b[None, :]

    # xp[t, b, d*G*H + g*H + j]
    x_ptrs = (xp_ptr + t_read[None, :] * stride_xt + offs_b[None, :] * stride_xb
              + d * G * H + offs_j[:, None])
    state_off = offs_b[None, :] * H + offs_j[:, None]  # [BLOCK_J, BLOCK_B] within [batch, H]
    h_prev_ptrs = h_ptr + (d * 2 + s % 2) * batch * H + state_off
    h_next_ptrs = h_ptr + (d * 2 + (s + 1) % 2) * batch * H + state_off
    h_prev = tl.load(h_prev_ptrs, mask=mask, other=0.0)

    if GP == 1:
        a0 = tl.reshape(acc, (BLOCK_J, BLOCK_B))
    else:
        acc3 = tl.reshape(acc, (GP, BLOCK_J, BLOCK_B))
        a0 = _gate(acc3, 0, GP)
        a1 = _gate(acc3, 1, GP)
        a2 = _gate(acc3, 2, GP)
    if CELL == 0:
        a3 = _gate(acc3, 3, GP)
        c_ptrs = c_ptr + d * batch * H + state_off
        c_prev = tl.load(c_ptrs, mask=mask, other=0.0)
        xi = tl.load(x_ptrs, mask=valid, other=0.0).to(tl.float32)
        xo = tl.load(x_ptrs + H, mask=valid, other=0.0).to(tl.float32)
        xf = tl.load(x_ptrs + 2 * H, mask=valid, other=0.0).to(tl.float32)
        xc = tl.load(x_ptrs + 3 * H, mask=valid, other=0.0).to(tl.float32)
        gi = a0 + xi
        gf = a2 + xf
        go = a1 + xo
        if HAS_PEEP:
            p_i = tl.load(p_ptr + d * 3 * H + offs_j, mask=mask_j, other=0.0).to(tl.float32)
            p_o = tl.load(p_ptr + d * 3 * H + H + offs_j, mask=mask_j, other=0.0).to(tl.float32)
            p_f = tl.load(p_ptr + d * 3 * H + 2 * H + offs_j, mask=mask_j, other=0.0).to(tl.float32)
            gi += p_i[:, None] * c_prev
            gf += p_f[:, None] * c_prev
        i = _activate(_clip(gi, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        if INPUT_FORGET:
            f = 1.0 - i
        else:
            f = _activate(_clip(gf, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        g = _activate(_clip(a3 + xc, clip, HAS_CLIP), ACT_G, alpha_g, beta_g)
        c_new = f * c_prev + i * g
        if HAS_PEEP:
            go += p_o[:, None] * c_new
        o = _activate(_clip(go, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        h_new = o * _activate(c_new, ACT_H, alpha_h, beta_h)
        tl.store(c_ptrs, c_new, mask=valid)
    elif GATES_ONLY:
        xz = tl.load(x_ptrs, mask=valid, other=0.0).to(tl.float32)
        xr = tl.load(x_ptrs + H, mask=valid, other=0.0).to(tl.float32)
        z = _activate(_clip(a0 + xz, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        r = _activate(_clip(a1 + xr, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        tl.store(z_ptr + d * batch * H + state_off, z, mask=mask)
        tl.store(rh_ptr + d * batch * H + state_off, r * h_prev, mask=mask)
    elif CELL == 3:
        xh = tl.load(x_ptrs + 2 * H, mask=valid, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + d * batch * H + state_off, mask=mask, other=0.0)
        n = _activate(_clip(xh + a2, clip, HAS_CLIP), ACT_G, alpha_g, beta_g)
        h_new = (1.0 - z) * n + z * h_prev
    elif CELL == 1:
        xz = tl.load(x_ptrs, mask=valid, other=0.0).to(tl.float32)
        xr = tl.load(x_ptrs + H, mask=valid, other=0.0).to(tl.float32)
        xh = tl.load(x_ptrs + 2 * H, mask=valid, other=0.0).to(tl.float32)
        rbh = tl.load(rbh_ptr + d * H + offs_j, mask=mask_j, other=0.0).to(tl.float32)
        z = _activate(_clip(a0 + xz, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        r = _activate(_clip(a1 + xr, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)
        n = _activate(_clip(xh + r * (a2 + rbh[:, None]), clip, HAS_CLIP), ACT_G, alpha_g, beta_g)
        h_new = (1.0 - z) * n + z * h_prev
    else:
        x0 = tl.load(x_ptrs, mask=valid, other=0.0).to(tl.float32)
        h_new = _activate(_clip(a0 + x0, clip, HAS_CLIP), ACT_F, alpha_f, beta_f)

    if not GATES_ONLY:
        tl.store(h_next_ptrs, tl.where(valid, h_new, h_prev), mask=mask)
        y_ptrs = (y_ptr + t_write[None, :] * stride_yt + d * stride_yd + offs_b[None, :] * stride_yb
                  + offs_j[:, None])
        y_val = tl.where(valid, h_new, 0.0)
        tl.store(y_ptrs, y_val.to(y_ptr.dtype.element_ty), mask=mask)


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------
@triton.jit
def _gates_dot(w, hT, acc, ALLOW_TF32: tl.constexpr, DOT_FP32: tl.constexpr):
    """acc + w @ hT (fp32 accumulator): hT in w's dtype, tf32 or exact products for fp32;
    under the interpreter (DOT_FP32) both operands in fp32."""
    if DOT_FP32:
        return tl.dot(w.to(tl.float32), hT, acc)
    elif ALLOW_TF32:
        return tl.dot(w, hT.to(w.dtype), acc, input_precision="tf32")
    else:
        return tl.dot(w, hT.to(w.dtype), acc, input_precision="ieee")


@triton.jit
def _step_body(
    s, rp_ptr, xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
    batch, H, NJB, rev_mask, d_base,
    stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
    clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
    CELL: tl.constexpr, GP: tl.constexpr, HAS_PEEP: tl.constexpr, HAS_CLIP: tl.constexpr,
    INPUT_FORGET: tl.constexpr, ACT_F: tl.constexpr, ACT_G: tl.constexpr, ACT_H: tl.constexpr,
    ALLOW_TF32: tl.constexpr, DOT_FP32: tl.constexpr, PHASE: tl.constexpr,
    BLOCK_J: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_j = tl.program_id(0)
    pid_b = tl.program_id(1)
    d = d_base + tl.program_id(2)
    ROWS: tl.constexpr = GP * BLOCK_J
    offs_r = tl.arange(0, ROWS)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_b = offs_b < batch
    w_base = rp_ptr + (d * NJB + pid_j) * ROWS * H
    if PHASE == 2:  # GRU lbr=0, second phase: the product is with r*h
        src_base = rh_ptr + d * batch * H
    else:
        src_base = h_ptr + (d * 2 + s % 2) * batch * H
    acc = tl.zeros((ROWS, BLOCK_B), dtype=tl.float32)
    for k0 in range(0, H, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        w = tl.load(w_base + offs_r[:, None] * H + offs_k[None, :], mask=mask_k[None, :], other=0.0)
        hT = tl.load(src_base + offs_b[None, :] * H + offs_k[:, None],
                     mask=mask_k[:, None] & mask_b[None, :], other=0.0)
        acc = _gates_dot(w, hT, acc, ALLOW_TF32, DOT_FP32)
    _cell_update(
        acc, d, s, pid_j, pid_b,
        xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
        batch, H, rev_mask,
        stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
        clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
        CELL, GP, HAS_PEEP, HAS_CLIP, INPUT_FORGET, ACT_F, ACT_G, ACT_H, PHASE, BLOCK_J, BLOCK_B,
    )


def recurrent_step_configs(interpret: bool = INTERPRET) -> list:
    """Autotune configs of `recurrent_step_kernel` (BLOCK_K, warps, stages; BLOCK_J and BLOCK_B
    are fixed by the packing and the batch). Every config has 64 gate rows and >= 4 warps
    (wgmma on sm_90). The interpreter gets only the first."""
    configs = [triton.Config({"BLOCK_K": bk}, num_warps=w, num_stages=st)
               for bk in (32, 64, 128) for w in (4, 8) for st in (2, 3)]
    keep = [c for c in configs if not (c.kwargs["BLOCK_K"] == 128 and c.num_warps == 4)]
    return keep[:1] if interpret else keep


@triton.autotune(configs=recurrent_step_configs(), key=["H", "BLOCK_B", "CELL", "PHASE"],
                 restore_value=["h_ptr", "c_ptr"])
@triton.jit
def recurrent_step_kernel(
    # pointers
    rp_ptr, xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
    # sizes
    s, batch, H, NJB, rev_mask, d_base,
    # strides
    stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
    # scalars
    clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
    # meta-parameters
    CELL: tl.constexpr, GP: tl.constexpr, HAS_PEEP: tl.constexpr, HAS_CLIP: tl.constexpr,
    INPUT_FORGET: tl.constexpr, ACT_F: tl.constexpr, ACT_G: tl.constexpr, ACT_H: tl.constexpr,
    ALLOW_TF32: tl.constexpr, DOT_FP32: tl.constexpr, PHASE: tl.constexpr,
    BLOCK_J: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """One time step s: grid (cdiv(H, BLOCK_J), cdiv(batch, BLOCK_B), directions), direction
    d_base + program_id(2) (one launch per direction when their activations differ).
    GRU lbr=0 (CELL 3) takes two launches per step, PHASE 1 then PHASE 2 (else PHASE 0)."""
    _step_body(
        s, rp_ptr, xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
        batch, H, NJB, rev_mask, d_base,
        stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
        clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
        CELL, GP, HAS_PEEP, HAS_CLIP, INPUT_FORGET, ACT_F, ACT_G, ACT_H, ALLOW_TF32, DOT_FP32,
        PHASE, BLOCK_J, BLOCK_B, BLOCK_K,
    )


def recurrent_persistent_configs() -> list:
    """Launch configs of `recurrent_persistent_kernel` (not autotuned: a persistent launch
    cannot be re-run for timing without resetting its barrier; the wrapper picks by KPAD)."""
    return [triton.Config({}, num_warps=4, num_stages=1), triton.Config({}, num_warps=8, num_stages=1)]


def persistent_config(tile_bytes: int, h_bytes: int = 0):
    """Warps for a held weight tile of `tile_bytes` and an fp32 h^T tile of `h_bytes`
    (KPAD * BLOCK_B * 4, held in registers each step): 4 warps up to 32 KB / 8 KB, else 8
    (sm_90 compile report, triton 3.6; see `persistent_launchable`)."""
    small = tile_bytes <= 32 * 1024 and h_bytes <= 8 * 1024
    return recurrent_persistent_configs()[0 if small else 1]


@triton.jit
def _grid_barrier(flag_ptr, target):
    """Wait until `target` arrivals on flag_ptr (DESIGN recipe): release add, acquire spin."""
    tl.debug_barrier()
    tl.atomic_add(flag_ptr, 1, sem="release", scope="gpu")
    arrived = tl.atomic_add(flag_ptr, 0, sem="acquire", scope="gpu")
    while arrived < target:
        arrived = tl.atomic_add(flag_ptr, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def recurrent_persistent_kernel(
    # pointers
    rp_ptr, xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr, flag_ptr,
    # sizes
    s0, steps, batch, H, NJB, rev_mask, d_base,
    # strides
    stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
    # scalars
    clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
    # meta-parameters
    CELL: tl.constexpr, GP: tl.constexpr, HAS_PEEP: tl.constexpr, HAS_CLIP: tl.constexpr,
    INPUT_FORGET: tl.constexpr, ACT_F: tl.constexpr, ACT_G: tl.constexpr, ACT_H: tl.constexpr,
    ALLOW_TF32: tl.constexpr, DOT_FP32: tl.constexpr, USE_BARRIER: tl.constexpr,
    ONLY_PHASE: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_B: tl.constexpr, KPAD: tl.constexpr,
):
    """Steps s0 .. s0+steps-1 in one launch; grid (cdiv(H, BLOCK_J), cdiv(batch, BLOCK_B), dirs).

    The program's [GP*BLOCK_J, KPAD] tile of Rp is loaded once and held across steps. With
    USE_BARRIER, programs of one direction meet after every step (GRU lbr=0: after each of its
    two phases) at a grid-wide barrier on flag_ptr[d] (zeroed by the caller; every program
    must be resident). ONLY_PHASE 1 or 2 runs one phase of GRU lbr=0 (the interpreter's
    host-stepped path); 0 runs the cell's whole step.
    """
    pid_j = tl.program_id(0)
    pid_b = tl.program_id(1)
    d = d_base + tl.program_id(2)
    nprog = tl.num_programs(0) * tl.num_programs(1)
    NSYNC: tl.constexpr = 2 if CELL == 3 else 1
    ROWS: tl.constexpr = GP * BLOCK_J
    offs_r = tl.arange(0, ROWS)
    offs_k = tl.arange(0, KPAD)
    offs_b = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    mask_k = offs_k < H
    mask_hb = mask_k[:, None] & (offs_b < batch)[None, :]
    src_off = offs_b[None, :] * H + offs_k[:, None]
    w = tl.load(rp_ptr + (d * NJB + pid_j) * ROWS * H + offs_r[:, None] * H + offs_k[None, :],
                mask=mask_k[None, :], other=0.0)
    if DOT_FP32:
        w = w.to(tl.float32)
    for i in range(0, steps):
        s = s0 + i
        h_base = h_ptr + (d * 2 + s % 2) * batch * H
        if ONLY_PHASE != 2:
            hT = tl.load(h_base + src_off, mask=mask_hb, other=0.0, cache_modifier=".cg")
            acc = _gates_dot(w, hT, tl.zeros((ROWS, BLOCK_B), dtype=tl.float32), ALLOW_TF32, DOT_FP32)
            _cell_update(
                acc, d, s, pid_j, pid_b,
                xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
                batch, H, rev_mask,
                stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
                clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
                CELL, GP, HAS_PEEP, HAS_CLIP, INPUT_FORGET, ACT_F, ACT_G, ACT_H,
                1 if CELL == 3 else 0, BLOCK_J, BLOCK_B,
            )
            if USE_BARRIER:
                _grid_barrier(flag_ptr + d, (NSYNC * i + 1) * nprog)
        if CELL == 3 and ONLY_PHASE != 1:
            rhT = tl.load(rh_ptr + d * batch * H + src_off, mask=mask_hb, other=0.0,
                          cache_modifier=".cg")
            acc2 = _gates_dot(w, rhT, tl.zeros((ROWS, BLOCK_B), dtype=tl.float32), ALLOW_TF32, DOT_FP32)
            _cell_update(
                acc2, d, s, pid_j, pid_b,
                xp_ptr, h_ptr, c_ptr, y_ptr, lens_ptr, p_ptr, rbh_ptr, z_ptr, rh_ptr,
                batch, H, rev_mask,
                stride_xt, stride_xb, stride_yt, stride_yd, stride_yb,
                clip, alpha_f, beta_f, alpha_g, beta_g, alpha_h, beta_h,
                CELL, GP, HAS_PEEP, HAS_CLIP, INPUT_FORGET, ACT_F, ACT_G, ACT_H, 2, BLOCK_J, BLOCK_B,
            )
            if USE_BARRIER:
                _grid_barrier(flag_ptr + d, (NSYNC * i + 2) * nprog)


# ---------------------------------------------------------------------------------------------
# Packing (once per session) and the launch wrapper
# ---------------------------------------------------------------------------------------------
@dataclass
class PackedRecurrent:
    """Weights of one ONNX LSTM/GRU/RNN node in kernel layout (built by `pack`)."""

    cell: str  # "LSTM" | "GRU" | "RNN"
    cell_code: int  # the kernels' CELL: 0 LSTM, 1 GRU (lbr=1), 2 RNN, 3 GRU (lbr=0, two phases)
    hidden: int
    input_size: int
    dirs: int
    rev_mask: int  # bit d set: direction d runs in reverse
    w_t: torch.Tensor  # [input, dirs*G*H], compute dtype: the input projection's B operand
    xbias: torch.Tensor  # [dirs*G*H] fp32: Wb (+ Rb where it adds linearly)
    rp: torch.Tensor  # [dirs, NJB, GP*BLOCK_J, H], compute dtype
    peep: torch.Tensor | None  # [dirs, 3H] fp32
    rbh: torch.Tensor | None  # [dirs, H] fp32 (GRU's Rbh, added inside r * (.))
    acts: tuple[tuple[int, int, int], ...]  # per direction: codes of f, g, h
    alphas: tuple[tuple[float, float, float], ...]  # per direction
    betas: tuple[tuple[float, float, float], ...]  # per direction
    clip: float | None
    input_forget: bool
    block_j: int
    gp: int

    @property
    def dtype(self) -> torch.dtype:
        return self.rp.dtype


def unsupported_reason(cell: str, *, dtype: torch.dtype | None = None, direction="forward",
                       activations=None, activation_alpha=None, activation_beta=None,
                       linear_before_reset=0, **_ignored) -> str | None:
    """Why the kernels cannot run this node (None when they can); the rule records it."""
    if cell not in CELLS:
        return f"op {cell} has no recurrent kernel (expected LSTM, GRU or RNN)"
    if dtype is not None and dtype not in DTYPES:
        return f"dtype {dtype} is not supported by the recurrent kernels (fp32, fp16, bf16)"
    if direction not in ("forward", "reverse", "bidirectional"):
        return f"direction {direction!r} is not an ONNX direction"
    nd = 2 if direction == "bidirectional" else 1
    try:
        resolve_activations(cell, nd, activations, activation_alpha, activation_beta)
    except Exception as exc:  # the reference raises the precise error at run time
        return f"activations not supported: {exc}"
    return None


def pack(cell: str, W: torch.Tensor, R: torch.Tensor, B: torch.Tensor | None = None,
         P: torch.Tensor | None = None, *, dtype: torch.dtype | None = None,
         activations=None, activation_alpha=None, activation_beta=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, linear_before_reset=0,
         device: torch.device | None = None) -> PackedRecurrent:
    """Pack ONNX weights (W [dirs, G*H, in], R [dirs, G*H, H], B [dirs, 2*G*H], P [dirs, 3H])
    into kernel layout, once. `dtype`: the compute dtype (default: W's). Raises
    `InvalidArgument` for shapes or a combination the kernels decline (`unsupported_reason`)."""
    dtype = dtype or W.dtype
    device = device or W.device
    reason = unsupported_reason(cell, dtype=dtype, direction=direction, activations=activations,
                                activation_alpha=activation_alpha, activation_beta=activation_beta,
                                linear_before_reset=linear_before_reset)
    if reason:
        raise InvalidArgument(f"{cell}: {reason}")
    G = GATES[cell]
    dirs = 2 if direction == "bidirectional" else 1
    H = int(R.shape[-1]) if hidden_size is None else int(hidden_size)
    if W.dim() != 3 or tuple(W.shape[:2]) != (dirs, G * H):
        raise InvalidArgument(f"{cell}: input 'W' expected shape [{dirs}, {G * H}, input], got {list(W.shape)}")
    if tuple(R.shape) != (dirs, G * H, H):
        raise InvalidArgument(f"{cell}: input 'R' expected shape {[dirs, G * H, H]}, got {list(R.shape)}")
    if B is not None and tuple(B.shape) != (dirs, 2 * G * H):
        raise InvalidArgument(f"{cell}: input 'B' expected shape {[dirs, 2 * G * H]}, got {list(B.shape)}")
    if P is not None and tuple(P.shape) != (dirs, 3 * H):
        raise InvalidArgument(f"{cell}: input 'P' expected shape {[dirs, 3 * H]}, got {list(P.shape)}")
    gp = 1 if cell == "RNN" else 4
    block_j = TILE_ROWS // gp
    njb = triton.cdiv(H, block_j)
    f32 = dict(device=device, dtype=torch.float32)
    Wf, Rf = W.to(**f32), R.to(**f32)
    b = B.to(**f32) if B is not None else torch.zeros(dirs, 2 * G * H, **f32)
    wb, rb = b[:, :G * H], b[:, G * H:]
    rbh = None
    if cell == "GRU" and linear_before_reset:  # Rbz, Rbr add linearly; Rbh is scaled by r
        xbias = wb + torch.cat([rb[:, :2 * H], torch.zeros_like(rb[:, 2 * H:])], dim=1)
        rbh = rb[:, 2 * H:].contiguous()
    else:
        xbias = wb + rb
    rp = torch.zeros(dirs, njb * block_j, gp, H, **f32)
    rp[:, :H, :G, :] = Rf.view(dirs, G, H, H).permute(0, 2, 1, 3)
    rp = rp.view(dirs, njb, block_j, gp, H).permute(0, 1, 3, 2, 4).contiguous()
    per_dir = [list(a) + [("tanh", 0.0, 0.0)] * (3 - len(a))
               for a in resolve_activations(cell, dirs, activations, activation_alpha, activation_beta)]
    return PackedRecurrent(
        cell=cell, cell_code=3 if cell == "GRU" and not linear_before_reset else CELLS[cell],
        hidden=H, input_size=int(W.shape[-1]), dirs=dirs,
        rev_mask=(1 if direction == "reverse" else 0) | (2 if dirs == 2 else 0),
        w_t=Wf.reshape(dirs * G * H, -1).t().contiguous().to(dtype),
        xbias=xbias.reshape(-1).contiguous(),
        rp=rp.view(dirs, njb, gp * block_j, H).to(dtype),
        peep=P.to(**f32).contiguous() if P is not None else None,
        rbh=rbh,
        acts=tuple(tuple(ACT_CODES[a[0]] for a in acts) for acts in per_dir),
        alphas=tuple(tuple(a[1] for a in acts) for acts in per_dir),
        betas=tuple(tuple(a[2] for a in acts) for acts in per_dir),
        clip=float(clip) if clip is not None else None,
        input_forget=bool(input_forget), block_j=block_j, gp=gp,
    )


def _block_b(batch: int) -> int:
    return max(16, min(64, triton.next_power_of_2(batch)))


def _kpad(hidden: int) -> int:
    return max(16, triton.next_power_of_2(hidden))


#: Bytes of held recurrent weights per program the persistent kernel is allowed. From the sm_90
#: compile report (triton 3.6; the tile is kept in shared memory as the wgmma operand): 64 KB
#: tiles (fp16 H <= 512, fp32 H <= 256) build with 8 warps without spills; 128 KB tiles spill
#: (stack 72-1856 B). Not yet timed on a GPU.
PERSISTENT_TILE_BYTES = 64 * 1024
#: Bytes of the fp32 h^T tile [KPAD, BLOCK_B] a persistent program loads per step (registers):
#: 32 KB builds without spills at 8 warps (64 KB spills, 96-1040 B). GRU lbr=0 (two products
#: per step) gets half of both budgets (its 32 KB h / 64 KB weight tiles spilled 40-336 B).
PERSISTENT_H_BYTES = 32 * 1024


def persistent_launchable(cell_code: int, elem_bytes: int, kpad: int, block_b: int) -> bool:
    """Whether the persistent kernel is launched for this (cell, dtype size, KPAD, BLOCK_B):
    the budgets above (the compile gate compiles exactly these)."""
    scale = 2 if cell_code == 3 else 1
    return (TILE_ROWS * kpad * elem_bytes * scale <= PERSISTENT_TILE_BYTES
            and kpad * block_b * 4 * scale <= PERSISTENT_H_BYTES)


#: (cell, dtype name, hidden, batch bucket) -> "step" | "persistent", measured on a GPU by
#: `bench/kernels/rnn.py` (its `mode_table(rows)` prints these entries). Empty until a GPU run
#: fills it; meanwhile the unmeasured default of `choose_mode` applies.
MODE_TABLE: dict[tuple[str, str, int, int], str] = {}


def _sm_count(device: torch.device) -> int:
    if device.type != "cuda":
        return 1 << 30  # the interpreter has no residency limit (host-stepped, no barrier)
    return torch.cuda.get_device_properties(device).multi_processor_count


def persistent_fits(packed: PackedRecurrent, batch: int, device: torch.device) -> bool:
    """The persistent kernel's grid is co-resident (programs <= SMs) and its tiles are within
    the budgets (`persistent_launchable`)."""
    bb = _block_b(batch)
    programs = triton.cdiv(packed.hidden, packed.block_j) * triton.cdiv(batch, bb) * packed.dirs
    return (programs <= _sm_count(device)
            and persistent_launchable(packed.cell_code, packed.rp.element_size(), _kpad(packed.hidden), bb))


def choose_mode(packed: PackedRecurrent, batch: int, device: torch.device) -> str:
    """"persistent" or "step" for this shape: MODE_TABLE (measured) first, then the unmeasured
    default: persistent whenever it fits and batch <= 64 (one launch instead of seq launches)."""
    if not persistent_fits(packed, batch, device):
        return "step"
    key = _mode_key(packed, batch)
    if key in MODE_TABLE:
        return MODE_TABLE[key]
    return "persistent" if batch <= 64 else "step"


def _mode_key(packed: PackedRecurrent, batch: int) -> tuple[str, str, int, int]:
    return (packed.cell, DTYPES[packed.dtype], packed.hidden, batch_bucket(batch))


#: Environment switch of the first-use measurement in `run(mode="auto")` ("0" turns it off).
MEASURE_ENV = "TRITONNX_RNN_MEASURE"


def _measure_mode(packed: PackedRecurrent, X: torch.Tensor, args: tuple, kwargs: dict) -> str:
    """Time both recurrence kernels on these very inputs (device-side, `do_bench`) and keep the
    faster in MODE_TABLE for this shape bucket: the choice is measured, not guessed, once per
    (cell, dtype, hidden, batch bucket) and process."""
    from triton.testing import do_bench

    times = {}
    for mode in ("step", "persistent"):
        times[mode] = do_bench(lambda mode=mode: run(packed, X, *args, mode=mode, **kwargs),
                               warmup=5, rep=20)
    best = min(times, key=times.get)
    MODE_TABLE[_mode_key(packed, X.shape[1] if kwargs.get("layout", 0) == 0 else X.shape[0])] = best
    return best


def batch_bucket(batch: int) -> int:
    """The batch sizes one `MODE_TABLE` entry covers: the next power of two."""
    return triton.next_power_of_2(batch)


def run(packed: PackedRecurrent, X: torch.Tensor, sequence_lens: torch.Tensor | None = None,
        initial_h: torch.Tensor | None = None, initial_c: torch.Tensor | None = None, *,
        layout: int = 0, mode: str = "auto", allow_tf32: bool = True,
        y_out: torch.Tensor | None = None, _barrier: bool = True):
    """Run a packed LSTM/GRU/RNN on X.

    Args:
        X: [seq, batch, input] (layout 0) or [batch, seq, input] (layout 1), any float dtype
            (cast to the packed dtype).
        sequence_lens: [batch] integer lengths in [0, seq] (default: all seq).
        initial_h, initial_c: [dirs, batch, H] (layout 0) or [batch, dirs, H] (layout 1).
        mode: "auto", "step" or "persistent". "auto" on a GPU: the first call of each shape
            bucket times both kernels on its inputs and keeps the faster (MODE_TABLE; not
            during CUDA-graph capture; `TRITONNX_RNN_MEASURE=0` turns it off), then
            `choose_mode`.
        y_out: optional preallocated Y (contiguous, X's dtype, Y's shape); every element is
            written (tests pass it NaN-poisoned).
        _barrier: False runs the persistent kernel WITHOUT its grid barrier (wrong results):
            only for the benchmark's barrier-time estimate.
    Returns:
        (Y, Y_h) or, for LSTM, (Y, Y_h, Y_c) as in ONNX, in X's dtype.
    """
    cell, H, nd = packed.cell, packed.hidden, packed.dirs
    if mode not in MODES:
        raise InvalidArgument(f"{cell}: mode expected one of {MODES}, got {mode!r}")
    if (mode == "auto" and X.is_cuda and os.environ.get(MEASURE_ENV, "1") != "0"
            and X.dim() == 3 and not torch.cuda.is_current_stream_capturing()):
        batch_ = X.shape[1] if layout == 0 else X.shape[0]
        if persistent_fits(packed, batch_, X.device) and _mode_key(packed, batch_) not in MODE_TABLE:
            mode = _measure_mode(packed, X, (sequence_lens, initial_h, initial_c),
                                 dict(layout=layout, allow_tf32=allow_tf32))
    if layout not in (0, 1):
        raise InvalidArgument(f"{cell}: attribute 'layout' expected 0 or 1, got {layout!r}")
    if X.dim() != 3 or X.shape[-1] != packed.input_size:
        raise InvalidArgument(f"{cell}: input 'X' expected rank 3 with last dim "
                              f"{packed.input_size}, got shape {list(X.shape)}")
    out_dtype = X.dtype
    device = packed.rp.device
    seq, batch = (X.shape[0], X.shape[1]) if layout == 0 else (X.shape[1], X.shape[0])
    G = GATES[cell]
    if sequence_lens is not None:
        if tuple(sequence_lens.shape) != (batch,):
            raise InvalidArgument(f"{cell}: input 'sequence_lens' expected shape [{batch}], got "
                                  f"{list(sequence_lens.shape)}")
        if sequence_lens.device.type == "cpu":
            if batch and (int(sequence_lens.min()) < 0 or int(sequence_lens.max()) > seq):
                raise InvalidArgument(f"{cell}: input 'sequence_lens' expected values in [0, {seq}], "
                                      f"got {sequence_lens.tolist()}")
            lens = sequence_lens.to(device=device, dtype=torch.int32)
        else:  # on the device: no host sync (CUDA-graph capture); out-of-range lengths clamp
            lens = sequence_lens.to(device=device, dtype=torch.int32).clamp(0, seq)
    else:
        lens = torch.full((batch,), seq, dtype=torch.int32, device=device)

    # 1. input projection for every step and direction: one GEMM
    x2 = X.to(device=device, dtype=packed.dtype).reshape(-1, packed.input_size)
    xp = torch.addmm(packed.xbias.to(packed.dtype), x2, packed.w_t)
    stride_xt, stride_xb = (batch * nd * G * H, nd * G * H) if layout == 0 else (nd * G * H, seq * nd * G * H)

    # 2. states and outputs
    state = torch.zeros(nd, 2, batch, H, device=device, dtype=torch.float32)
    for buf, init in ((state[:, 0], initial_h),):
        if init is not None:
            buf.copy_(_states_in(init, layout, nd, batch, H, "initial_h", cell))
    c = torch.zeros(nd, batch, H, device=device, dtype=torch.float32)
    if initial_c is not None:
        c.copy_(_states_in(initial_c, layout, nd, batch, H, "initial_c", cell))
    y_shape = (seq, nd, batch, H) if layout == 0 else (batch, seq, nd, H)
    if y_out is not None:
        if (tuple(y_out.shape) != y_shape or y_out.dtype != out_dtype or not y_out.is_contiguous()
                or y_out.device != device):
            raise InvalidArgument(f"{cell}: y_out expected a contiguous {out_dtype} tensor of shape "
                                  f"{list(y_shape)} on {device}, got {y_out.dtype} {list(y_out.shape)}")
        Y = y_out
    else:
        Y = torch.empty(y_shape, device=device, dtype=out_dtype)
    if layout == 0:
        stride_yt, stride_yd, stride_yb = nd * batch * H, batch * H, H
    else:
        stride_yt, stride_yd, stride_yb = nd * H, H, seq * nd * H
    if seq == 0 or batch == 0:
        Y.zero_()
    else:
        _recurrence(packed, xp, state, c, Y, lens, seq, batch,
                    (stride_xt, stride_xb, stride_yt, stride_yd, stride_yb), mode, allow_tf32,
                    _barrier)
    h_final = state[:, seq % 2]
    outs = [h_final] + ([c] if cell == "LSTM" else [])
    if layout == 1:
        outs = [o.transpose(0, 1) for o in outs]
    return (Y, *(o.to(out_dtype).contiguous() for o in outs))


def _states_in(t, layout, nd, batch, H, name, cell):
    t = t.transpose(0, 1) if layout == 1 else t
    if tuple(t.shape) != (nd, batch, H):
        raise InvalidArgument(f"{cell}: input '{name}' expected shape "
                              f"{[nd, batch, H] if layout == 0 else [batch, nd, H]}, "
                              f"got {list(t.shape if layout == 0 else t.transpose(0, 1).shape)}")
    return t.to(torch.float32)


def _recurrence(packed, xp, state, c, Y, lens, seq, batch, strides, mode, allow_tf32, barrier=True):
    H, nd = packed.hidden, packed.dirs
    njb = triton.cdiv(H, packed.block_j)
    bb = _block_b(batch)
    nbb = triton.cdiv(batch, bb)
    dummy = packed.xbias
    peep = packed.peep if packed.peep is not None else dummy
    rbh = packed.rbh if packed.rbh is not None else dummy
    two_phase = packed.cell_code == 3
    if two_phase:  # z and r*h of the current step, [dirs, batch, H] fp32
        zbuf = torch.empty(nd, batch, H, device=xp.device, dtype=torch.float32)
        rhbuf = torch.empty(nd, batch, H, device=xp.device, dtype=torch.float32)
    else:
        zbuf = rhbuf = dummy
    meta = dict(CELL=packed.cell_code, GP=packed.gp, HAS_PEEP=packed.peep is not None,
                HAS_CLIP=packed.clip is not None, INPUT_FORGET=packed.input_forget,
                ALLOW_TF32=bool(allow_tf32) and packed.dtype == torch.float32,
                DOT_FP32=INTERPRET, BLOCK_J=packed.block_j, BLOCK_B=bb)
    # launch groups (first direction, directions, per-launch args): one launch for all
    # directions when they share the activations (constexprs), else one per direction
    same = all(packed.acts[d] == packed.acts[0] and packed.alphas[d] == packed.alphas[0]
               and packed.betas[d] == packed.betas[0] for d in range(nd))
    groups = []
    for d0, count in ([(0, nd)] if same else [(d, 1) for d in range(nd)]):
        a, al, be = packed.acts[d0], packed.alphas[d0], packed.betas[d0]
        groups.append((d0, count, (packed.clip or 0.0, al[0], be[0], al[1], be[1], al[2], be[2]),
                       dict(ACT_F=a[0], ACT_G=a[1], ACT_H=a[2])))
    if mode == "auto":
        mode = choose_mode(packed, batch, xp.device)
    if mode == "persistent":
        if not persistent_fits(packed, batch, xp.device):
            raise InvalidArgument(f"{packed.cell}: the persistent kernel does not fit hidden={H}, "
                                  f"batch={batch} on this device (grid or tile too large)")
        kpad = _kpad(H)
        cfg = persistent_config(kpad * TILE_ROWS * packed.rp.element_size(), kpad * bb * 4)
        flags = torch.zeros(nd, device=xp.device, dtype=torch.int32)
        # interpreter: programs run one after another, so no barrier; one launch per step unless
        # each direction is a single program (then the launch runs the whole sequence)
        # (and for GRU lbr=0 one launch per phase)
        one_program = njb * nbb == 1
        if INTERPRET and not one_program:
            chunks = [(s, ph) for s in range(seq) for ph in ((1, 2) if two_phase else (0,))]
        else:
            chunks = [(None, 0)]
        for s0, only_phase in chunks:
            for d0, count, scalars, acts in groups:
                recurrent_persistent_kernel[(njb, nbb, count)](
                    packed.rp, xp, state, c, Y, lens, peep, rbh, zbuf, rhbuf, flags,
                    0 if s0 is None else s0, seq if s0 is None else 1, batch, H, njb,
                    packed.rev_mask, d0, *strides, *scalars,
                    USE_BARRIER=barrier and not INTERPRET, ONLY_PHASE=only_phase, KPAD=kpad,
                    num_warps=cfg.num_warps, num_stages=cfg.num_stages, **acts, **meta)
        return
    for s in range(seq):
        for phase in ((1, 2) if two_phase else (0,)):
            for d0, count, scalars, acts in groups:
                recurrent_step_kernel[(njb, nbb, count)](
                    packed.rp, xp, state, c, Y, lens, peep, rbh, zbuf, rhbuf,
                    s, batch, H, njb, packed.rev_mask, d0, *strides, *scalars, PHASE=phase,
                    **acts, **meta)


def _recurrent(cell, X, W, R, B, sequence_lens, initial_h, initial_c=None, P=None, *,
               mode="auto", allow_tf32=True, layout=0, y_out=None, **attrs):
    packed = pack(cell, W, R, B, P, dtype=X.dtype, device=X.device, **attrs)
    return run(packed, X, sequence_lens, initial_h, initial_c, layout=layout, mode=mode,
               allow_tf32=allow_tf32, y_out=y_out)


def lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         mode="auto", allow_tf32=True, y_out=None, **attrs):
    """ONNX LSTM on the kernels (packs on every call: sessions use `pack` + `run`).
    Same signature and results as `rnn_reference.lstm`, plus `mode` and `allow_tf32`."""
    return _recurrent("LSTM", X, W, R, B, sequence_lens, initial_h, initial_c, P, mode=mode,
                      allow_tf32=allow_tf32, y_out=y_out, **attrs)


def gru(X, W, R, B=None, sequence_lens=None, initial_h=None, *, mode="auto", allow_tf32=True,
        y_out=None, **attrs):
    """ONNX GRU on the kernels; see `lstm`."""
    return _recurrent("GRU", X, W, R, B, sequence_lens, initial_h, mode=mode,
                      allow_tf32=allow_tf32, y_out=y_out, **attrs)


def rnn(X, W, R, B=None, sequence_lens=None, initial_h=None, *, mode="auto", allow_tf32=True,
        y_out=None, **attrs):
    """ONNX RNN on the kernels; see `lstm`."""
    return _recurrent("RNN", X, W, R, B, sequence_lens, initial_h, mode=mode,
                      allow_tf32=allow_tf32, y_out=y_out, **attrs)


def reference(cell: str):
    """The plain-torch reference of the same math (`rnn_reference.lstm` / `gru` / `rnn`)."""
    from tritonnx.triton_kernels import rnn_reference

    return {"LSTM": rnn_reference.lstm, "GRU": rnn_reference.gru, "RNN": rnn_reference.rnn}[cell]


# ----------------------------------------------------------------------------- compile-gate entries
#: cell flag -> (CELL, GP): GP gate slots per unit (GRU's 3 padded to 4), BLOCK_J = 64 / GP.
#: "GRU_lbr0" is GRU with linear_before_reset=0 (two phases per step).
_RNN_CELLS = {"LSTM": (0, 4), "GRU": (1, 4), "RNN": (2, 1), "GRU_lbr0": (3, 4)}
_RNN_TILE_ROWS = 64
_RNN_DEFAULT_ACTIVATIONS = "sigmoid,tanh,tanh"
_ELEM = {"fp32": 4, "fp16": 2, "bf16": 2}


def _step_configs():
    """`recurrent_step_configs()` as on a GPU (not the interpreter's first-only list)."""
    return recurrent_step_configs(interpret=False)


def _persistent_configs():
    return recurrent_persistent_configs()


def _rnn_kpads(dtype: str) -> tuple[int, ...]:
    """KPAD = next_power_of_2(hidden) >= 16, up to the persistent kernel's tile budget."""
    budget = PERSISTENT_TILE_BYTES
    kpad, out = 16, []
    while _RNN_TILE_ROWS * kpad * _ELEM[dtype] <= budget:
        out.append(kpad)
        kpad *= 2
    return tuple(out)


def _rnn_activations() -> tuple[str, ...]:
    """(f, g, h) activation triples, "f,g,h": the ONNX defaults first, then every activation
    of the module's ACT_CODES rotated so each appears in every slot."""
    names = sorted(ACT_CODES, key=ACT_CODES.get)
    n = len(names)
    return (_RNN_DEFAULT_ACTIVATIONS,) + tuple(
        ",".join(names[(i + k) % n] for k in range(3)) for i in range(n))


def _rnn_flags(kind: str):
    def flags(dtype: str) -> dict[str, tuple]:
        f = {
            "cell": tuple(_RNN_CELLS),
            "peephole": (0, 1),
            "clip": (0, 1),
            "input_forget": (0, 1),
            "activations": _rnn_activations(),
            "block_b": (16, 32, 64),  # the wrapper's _block_b(batch)
            "tf32": (0, 1) if dtype == "fp32" else (0,),
        }
        if kind == "recurrent_persistent":
            f["kpad"] = _rnn_kpads(dtype)
        else:
            f["phase"] = (0, 1, 2)  # GRU_lbr0 launches phase 1 then 2 per step; others 0
        return f
    return flags


def _rnn_valid(dtype: str, flags: dict) -> bool:
    # peepholes and input_forget exist only for LSTM; two phases only for GRU_lbr0
    if "phase" in flags and (flags["phase"] != 0) != (flags["cell"] == "GRU_lbr0"):
        return False
    # the persistent kernel is launched only within its tile budgets (`persistent_launchable`)
    if "kpad" in flags and not persistent_launchable(
            _RNN_CELLS[flags["cell"]][0], _ELEM[dtype], flags["kpad"], flags["block_b"]):
        return False
    return flags["cell"] == "LSTM" or not (flags["peephole"] or flags["input_forget"])


def _rnn_cost(flags: dict) -> float:
    # the extra configs of a sample get the common case: LSTM, default activations, no options
    return ((flags["cell"] != "LSTM") + (flags["activations"] != _RNN_DEFAULT_ACTIVATIONS)
            + flags["peephole"] + flags["clip"] + flags["input_forget"] + (flags["block_b"] != 16)
            + 0.1 * flags.get("kpad", 0) / 512 + 0.5 * (not flags["tf32"]))  # tf32: the default


def _persistent_compatible(config, dtype: str, flags: dict) -> bool:
    """The wrapper picks the warps from the weight and h^T tile sizes (`persistent_config`)."""
    chosen = persistent_config(_RNN_TILE_ROWS * flags["kpad"] * _ELEM[dtype],
                                                   flags["kpad"] * flags["block_b"] * 4)
    return config.num_warps == chosen.num_warps and config.num_stages == chosen.num_stages


def _rnn_signature(fn, dtype, flags, config):
    cell, gp = _RNN_CELLS[flags["cell"]]
    codes = ACT_CODES
    act_f, act_g, act_h = (codes[a] for a in flags["activations"].split(","))
    constexprs = {"CELL": cell, "GP": gp, "HAS_PEEP": bool(flags["peephole"]),
                  "HAS_CLIP": bool(flags["clip"]), "INPUT_FORGET": bool(flags["input_forget"]),
                  "ACT_F": act_f, "ACT_G": act_g, "ACT_H": act_h,
                  "ALLOW_TF32": bool(flags["tf32"]), "DOT_FP32": False,
                  "BLOCK_J": _RNN_TILE_ROWS // gp, "BLOCK_B": flags["block_b"]}
    # weights, projected inputs and Y in the compute dtype; states and scratch in fp32
    pointers = {"rp_ptr": dtype, "xp_ptr": dtype, "y_ptr": dtype, "h_ptr": "fp32", "c_ptr": "fp32",
                "p_ptr": "fp32", "rbh_ptr": "fp32", "z_ptr": "fp32", "rh_ptr": "fp32",
                "lens_ptr": "i32", "flag_ptr": "i32"}
    if "kpad" in flags:  # on a GPU: the whole sequence with the grid barrier
        constexprs.update(KPAD=flags["kpad"], USE_BARRIER=True, ONLY_PHASE=0)
    else:
        constexprs["PHASE"] = flags["phase"]
    names = set(catalog.unwrap_jit(fn).arg_names)
    return catalog.make_spec(
        fn, config, pointers={k: v for k, v in pointers.items() if k in names},
        constexprs={k: v for k, v in constexprs.items() if k in names},
        floats=("clip", "alpha_f", "beta_f", "alpha_g", "beta_g", "alpha_h", "beta_h"),
        # hidden sizes of the zoo are multiples of 16, and so every stride (multiples of H)
        divisible=("H", "stride_xt", "stride_xb", "stride_yt", "stride_yd", "stride_yb"),
    )


def _persistent_spills(row: dict) -> str | None:
    """Why a spilling persistent compile is accepted for now (seen in the report, triton 3.6)."""
    if row["dtype"] == "fp32" and row["flags"]["block_b"] == 64 and row["config"].startswith("w4,") \
            and row["spill"] <= 256:
        return ("fp32, 4 warps, BLOCK_B=64 (KPAD <= 32: `persistent_config` picks 4 warps for an "
                "h^T tile <= 8 KB): the 64x64 fp32 gate accumulator needs > 255 registers "
                "(<= 40 B stack seen); 8 warps would not spill (owner: recurrent)")
    return None


def _rnn_expect_tc(config, dtype, flags, arch) -> bool:
    # 64 gate rows on the M side and >= 4 warps: wgmma on sm_90 (mma on sm_80), for 16-bit
    # operands and for fp32 with tf32
    return dtype != "fp32" or bool(flags["tf32"])


def _recurrent_entry(kind: str) -> catalog.KernelEntry:
    persistent = kind == "recurrent_persistent"
    return catalog.KernelEntry(
        name=kind,
        kernel=f"{__name__}:{kind}_kernel",
        configs=_persistent_configs if persistent else _step_configs,
        dtypes=("fp32", "fp16", "bf16"),
        signature=_rnn_signature,
        flags=_rnn_flags(kind),
        valid=_rnn_valid,
        cost=_rnn_cost,
        compatible=_persistent_compatible if persistent else None,
        per_arch_flags=("activations",),  # elementwise on the fp32 gates, whatever the dtype
        spills=_persistent_spills if persistent else {},
        # the grid barrier (DESIGN): release add, acquire spin, block barriers around them
        ptx_requires=("atom.release", "ld.acquire", "bar.sync") if persistent else (),
        matmul=True,
        expect_tensor_core=_rnn_expect_tc,
        note=("LSTM/GRU/RNN: whole sequence in one launch, weights held on chip, grid barrier"
              if persistent else "LSTM/GRU/RNN: one launch per time step (gates = Rp . h^T)"),
    )


catalog.register(_recurrent_entry("recurrent_step"))
catalog.register(_recurrent_entry("recurrent_persistent"))


__all__ = ["pack", "run", "lstm", "gru", "rnn", "PackedRecurrent", "unsupported_reason",
           "choose_mode", "persistent_fits", "recurrent_step_configs",
           "recurrent_persistent_configs", "MODE_TABLE"]
