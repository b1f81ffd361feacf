"""tritonnx::LSTM / GRU / RNN handlers: the fused recurrent kernels (`triton_kernels/recurrent.py`).

Same inputs, outputs and attributes as the ONNX ops. With ``ctx.kernels == "triton"`` the
weights are packed once per weight tensors (gate tiles, compute dtype; cached on the session's
weight tensors, so the first run packs and later runs, CUDA-graph replays included, reuse it)
and the kernels run; with ``"torch"`` the plain-torch reference (`rnn_reference`) runs.
The recurrence kernel ("auto" | "step" | "persistent"; default "auto": `recurrent.choose_mode`)
comes from the session config entry ``rnn_mode`` (``SessionOptions.add_session_config_entry``),
else the environment variable ``TRITONNX_RNN_MODE``.
"""
from __future__ import annotations

import os
import threading
import weakref

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.registry import register
from tritonnx.triton_kernels import recurrent, rnn_reference

#: id(R) -> (weak reference to R, {key: (weight versions, PackedRecurrent)}); an entry goes
#: when its R tensor is freed (tensors are not hashable by value, so no WeakKeyDictionary).
_PACKS: dict[int, tuple[weakref.ref, dict]] = {}
_LOCK = threading.Lock()
MODE_KEY = "rnn_mode"
MODE_ENV = "TRITONNX_RNN_MODE"


def _freeze(value):
    return tuple(value) if isinstance(value, list) else value


def packed_for(cell: str, X, W, R, B, P, attrs: dict) -> recurrent.PackedRecurrent:
    """The packed weights of these weight tensors (packed on first use, then cached on R)."""
    key = (id(W), id(B), id(P), X.dtype, str(R.device), tuple(sorted((k, _freeze(v)) for k, v in attrs.items())))
    versions = (W._version, R._version, getattr(B, "_version", None), getattr(P, "_version", None))
    with _LOCK:
        entry = _PACKS.get(id(R))
        if entry is not None and entry[0]() is R:
            hit = entry[1].get(key)
            if hit is not None and hit[0] == versions:
                return hit[1]
    packed = recurrent.pack(cell, W, R, B, P, dtype=X.dtype, device=X.device, **attrs)
    with _LOCK:
        entry = _PACKS.get(id(R))
        if entry is None or entry[0]() is not R:
            entry = (weakref.ref(R), {})
            _PACKS[id(R)] = entry
            weakref.finalize(R, _PACKS.pop, id(R), None)
        entry[1][key] = (versions, packed)
    return packed


def _mode(ctx) -> str:
    mode = (getattr(ctx, "extra", None) or {}).get(MODE_KEY) or os.environ.get(MODE_ENV) or "auto"
    if mode not in recurrent.MODES:
        raise InvalidArgument(f"recurrent kernel mode {mode!r} (session config {MODE_KEY!r} or "
                              f"{MODE_ENV}): expected one of {recurrent.MODES}")
    return mode


def _run(cell, X, W, R, B, sequence_lens, initial_h, initial_c, P, attrs, layout, ctx):
    if ctx is None or ctx.kernels == "torch" or X.dtype not in recurrent.DTYPES:
        ref = {"LSTM": rnn_reference.lstm, "GRU": rnn_reference.gru, "RNN": rnn_reference.rnn}[cell]
        extra = (initial_c, P) if cell == "LSTM" else ()
        return ref(X, W, R, B, sequence_lens, initial_h, *extra, layout=layout, **attrs)
    packed = packed_for(cell, X, W, R, B, P, attrs)
    return recurrent.run(packed, X, sequence_lens, initial_h, initial_c, layout=layout,
                         mode=_mode(ctx), allow_tf32=bool(getattr(ctx, "tf32", True)))


@register("LSTM", since=1, domain="tritonnx")
def LSTM(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, ctx=None):
    """tritonnx::LSTM: returns (Y, Y_h, Y_c)."""
    attrs = dict(activation_alpha=activation_alpha, activation_beta=activation_beta,
                 activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
                 input_forget=input_forget)
    return _run("LSTM", X, W, R, B, sequence_lens, initial_h, initial_c, P, attrs, layout, ctx)


@register("GRU", since=1, domain="tritonnx")
def GRU(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, linear_before_reset=0, ctx=None):
    """tritonnx::GRU: returns (Y, Y_h)."""
    attrs = dict(activation_alpha=activation_alpha, activation_beta=activation_beta,
                 activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
                 linear_before_reset=linear_before_reset)
    return _run("GRU", X, W, R, B, sequence_lens, initial_h, None, None, attrs, layout, ctx)


@register("RNN", since=1, domain="tritonnx")
def RNN(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, ctx=None):
    """tritonnx::RNN: returns (Y, Y_h)."""
    attrs = dict(activation_alpha=activation_alpha, activation_beta=activation_beta,
                 activations=activations, clip=clip, direction=direction, hidden_size=hidden_size)
    return _run("RNN", X, W, R, B, sequence_lens, initial_h, None, None, attrs, layout, ctx)
