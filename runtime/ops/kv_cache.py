"""Ops of recurrent-state and KV-cache decoding (opsets 24 and 27): TensorScatter (a cache
update at per-batch write positions, linear or circular) and LinearAttention (the linear,
gated, delta and gated-delta recurrences, GQA/MQA), as torch ops on the session's device.
Both are tensor work; LinearAttention accumulates in float32 (as onnx's reference does) and
returns the inputs' dtype."""
from __future__ import annotations

import math

import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.ops._common import norm_axis
from tritonnx.runtime.registry import register


@register("TensorScatter", since=24)
def TensorScatter(past_cache, update, write_indices=None, *, axis=-2, mode="linear"):
    """ONNX TensorScatter: present = past with `update` written along `axis` from each batch
    row's write index (0 when absent; modulo the axis length when mode is "circular")."""
    if mode not in ("linear", "circular"):
        raise InvalidArgument(f"TensorScatter: mode={mode!r}, expected 'linear' or 'circular'")
    rank = past_cache.dim()
    ax = norm_axis(axis, rank, "TensorScatter")
    if ax == 0:
        raise InvalidArgument("TensorScatter: axis must not be the batch axis 0")
    if update.dim() != rank or any(update.shape[i] != past_cache.shape[i] for i in range(rank) if i != ax) \
            or update.shape[ax] > past_cache.shape[ax]:
        raise InvalidArgument(f"TensorScatter: update has shape {list(update.shape)}, expected past_cache's "
                              f"{list(past_cache.shape)} with at most {past_cache.shape[ax]} along axis {ax}")
    batch, max_len, seq = past_cache.shape[0], past_cache.shape[ax], update.shape[ax]
    start = torch.zeros(batch, dtype=torch.int64, device=past_cache.device) if write_indices is None \
        else write_indices.to(device=past_cache.device, dtype=torch.int64).reshape(batch)
    pos = start[:, None] + torch.arange(seq, device=past_cache.device)[None, :]  # [B, seq]
    if mode == "circular":
        pos = pos % max_len
    shape = [batch] + [1] * (rank - 1)
    shape[ax] = seq
    index = pos.reshape(shape).expand(update.shape)
    return past_cache.scatter(ax, index, update)


def _heads(x: torch.Tensor, heads: int, name: str) -> torch.Tensor:
    """[B, T, H*D] -> [B, H, T, D] in float32."""
    if x.dim() != 3 or x.shape[-1] % heads:
        raise InvalidArgument(f"LinearAttention: input {name} has shape {list(x.shape)}, expected "
                              f"[B, T, {heads} * D]")
    b, t, hd = x.shape
    return x.reshape(b, t, heads, hd // heads).transpose(1, 2).to(torch.float32)


@register("LinearAttention", since=27)
def LinearAttention(query, key, value, past_state=None, decay=None, beta=None, *, chunk_size=64,
                    kv_num_heads=None, q_num_heads=None, scale=0.0, update_rule="gated_delta"):
    """ONNX LinearAttention: S_t = a_t * S_{t-1} + k_t ⊗ v'_t (a_t = exp(decay) when gated;
    v'_t = β_t (v_t - a_t S_{t-1}^T k_t) for the delta rules), o_t = scale * q_t^T S_t, token
    by token; query/key/value [B, T, H*D], state [B, H_kv, d_k, d_v]; returns (output
    [B, T, H_q*d_v], present_state)."""
    if update_rule not in ("linear", "gated", "delta", "gated_delta"):
        raise InvalidArgument(f"LinearAttention: update_rule={update_rule!r}, expected linear, gated, delta "
                              "or gated_delta")
    if not q_num_heads or not kv_num_heads or q_num_heads % kv_num_heads:
        raise InvalidArgument(f"LinearAttention: q_num_heads ({q_num_heads}) must be a positive multiple of "
                              f"kv_num_heads ({kv_num_heads})")
    gated, delta = update_rule in ("gated", "gated_delta"), update_rule in ("delta", "gated_delta")
    for name, value_in, needed in (("decay", decay, gated), ("beta", beta, delta)):
        if needed and value_in is None:
            raise InvalidArgument(f"LinearAttention: update_rule {update_rule!r} needs input {name}")
        if not needed and value_in is not None:
            raise InvalidArgument(f"LinearAttention: update_rule {update_rule!r} takes no input {name}")
    q = _heads(query, q_num_heads, "query")
    k = _heads(key, kv_num_heads, "key")
    v = _heads(value, kv_num_heads, "value")
    b, _, t, d_k = q.shape
    d_v = v.shape[-1]
    group = q_num_heads // kv_num_heads
    if gated:
        if decay.dim() != 3 or decay.shape[-1] not in (kv_num_heads, kv_num_heads * d_k):
            raise InvalidArgument(f"LinearAttention: decay has shape {list(decay.shape)}, expected "
                                  f"[B, T, {kv_num_heads}] or [B, T, {kv_num_heads * d_k}]")
        g = decay.reshape(b, t, kv_num_heads, -1).transpose(1, 2).to(torch.float32).exp()  # [B, H, T, 1|d_k]
    if delta:
        if beta.dim() != 3 or beta.shape[-1] not in (kv_num_heads, 1):
            raise InvalidArgument(f"LinearAttention: beta has shape {list(beta.shape)}, expected "
                                  f"[B, T, {kv_num_heads}] or [B, T, 1]")
        rate = beta.reshape(b, t, beta.shape[-1], 1).transpose(1, 2).to(torch.float32)  # [B, H|1, T, 1]
    if past_state is not None:
        if tuple(past_state.shape) != (b, kv_num_heads, d_k, d_v):
            raise InvalidArgument(f"LinearAttention: past_state has shape {list(past_state.shape)}, expected "
                                  f"{[b, kv_num_heads, d_k, d_v]}")
        state = past_state.to(torch.float32)
        state_dtype = past_state.dtype
    else:
        state = torch.zeros(b, kv_num_heads, d_k, d_v, dtype=torch.float32, device=query.device)
        state_dtype = query.dtype
    scale_val = float(scale) if scale else 1.0 / math.sqrt(d_k)
    outputs = []
    for i in range(t):
        k_t, v_t = k[:, :, i], v[:, :, i]
        if gated:
            state = state * g[:, :, i][..., None]
        if delta:
            v_t = rate[:, :, i] * (v_t - torch.einsum("bhdm,bhd->bhm", state, k_t))
        state = state + k_t[..., :, None] * v_t[..., None, :]
        read = state if group == 1 else state.repeat_interleave(group, dim=1)
        outputs.append(scale_val * torch.einsum("bhd,bhdm->bhm", q[:, :, i], read))
    out = torch.stack(outputs, dim=2) if outputs else q.new_zeros(b, q_num_heads, 0, d_v)
    out = out.transpose(1, 2).reshape(b, t, q_num_heads * d_v).to(query.dtype)
    return out, state.to(state_dtype)
