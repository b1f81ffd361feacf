"""tritonnx::LSTM / GRU / RNN handlers: the fused recurrent kernels (`triton_kernels/recurrent.py`).

Same inputs, outputs and attributes as the ONNX ops. With ``ctx.kernels == "triton"`` the
weights are packed (gate tiles, compute dtype: `recurrent.pack`) once per node at session
creation, by each handler's prepare step (`tritonnx.runtime.registry`), and the kernels run;
a node whose weights were not prepared (not constant, overridden by a feed, or a call outside
a session) packs them on the fly. With ``"torch"`` the plain-torch reference
(`rnn_reference`) runs and nothing is packed.
The recurrence kernel ("auto" | "step" | "persistent"; default "auto": `recurrent.choose_mode`)
comes from the session config entry ``rnn_mode`` (``SessionOptions.add_session_config_entry``),
else the environment variable ``TRITONNX_RNN_MODE``.
"""
from __future__ import annotations

import os

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.registry import register
from tritonnx.triton_kernels import recurrent, rnn_reference

MODE_KEY = "rnn_mode"
MODE_ENV = "TRITONNX_RNN_MODE"
#: input positions of the weights (W, R, B, P) per cell: what packing reads
WEIGHT_POSITIONS = {"LSTM": (1, 2, 3, 7), "GRU": (1, 2, 3), "RNN": (1, 2, 3)}


def _prepare(cell: str):
    """tritonnx::`cell`'s prepare step: the node's `recurrent.PackedRecurrent` when its weights
    (W, R, B, P) are all constant, for the Triton kernels; None where nothing is to pack (torch
    kernels, a weight computed at run time, a dtype the kernels do not take: the handler then
    decides at run time). GRU and RNN have no inputs at positions 6 and 7."""
    def prepare(X=None, W=None, R=None, B=None, sequence_lens=None, initial_h=None, initial_c=None,
                P=None, *, layout=0, ctx=None, dynamic_inputs=(), **attrs):
        if ctx is None or ctx.kernels != "triton" or W is None or R is None:
            return None
        if any(pos in dynamic_inputs for pos in WEIGHT_POSITIONS[cell]) or W.dtype not in recurrent.DTYPES:
            return None
        return recurrent.pack(cell, W, R, B, P, dtype=W.dtype, device=W.device, **attrs)

    prepare.__name__ = prepare.__qualname__ = f"prepare_{cell}"
    return prepare


def _mode(ctx) -> str:
    mode = (getattr(ctx, "extra", None) or {}).get(MODE_KEY) or os.environ.get(MODE_ENV) or "auto"
    if mode not in recurrent.MODES:
        raise InvalidArgument(f"recurrent kernel mode {mode!r} (session config {MODE_KEY!r} or "
                              f"{MODE_ENV}): expected one of {recurrent.MODES}")
    return mode


def _run(cell, X, W, R, B, sequence_lens, initial_h, initial_c, P, attrs, layout, ctx, prepared):
    if ctx is None or ctx.kernels == "torch" or X.dtype not in recurrent.DTYPES:
        ref = {"LSTM": rnn_reference.lstm, "GRU": rnn_reference.gru, "RNN": rnn_reference.rnn}[cell]
        extra = (initial_c, P) if cell == "LSTM" else ()
        return ref(X, W, R, B, sequence_lens, initial_h, *extra, layout=layout, **attrs)
    packed = prepared
    if packed is None or packed.dtype != X.dtype or packed.rp.device != X.device:
        packed = recurrent.pack(cell, W, R, B, P, dtype=X.dtype, device=X.device, **attrs)
    return recurrent.run(packed, X, sequence_lens, initial_h, initial_c, layout=layout,
                         mode=_mode(ctx), allow_tf32=bool(getattr(ctx, "tf32", True)))


@register("LSTM", since=1, domain="tritonnx", prepare=_prepare("LSTM"))
def LSTM(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, ctx=None, prepared=None):
    """tritonnx::LSTM: returns (Y, Y_h, Y_c). `prepared`: its prepare step's packed weights."""
    attrs = dict(activation_alpha=activation_alpha, activation_beta=activation_beta,
                 activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
                 input_forget=input_forget)
    return _run("LSTM", X, W, R, B, sequence_lens, initial_h, initial_c, P, attrs, layout, ctx, prepared)


@register("GRU", since=1, domain="tritonnx", prepare=_prepare("GRU"))
def GRU(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, linear_before_reset=0, ctx=None, prepared=None):
    """tritonnx::GRU: returns (Y, Y_h). `prepared`: its prepare step's packed weights."""
    attrs = dict(activation_alpha=activation_alpha, activation_beta=activation_beta,
                 activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
                 linear_before_reset=linear_before_reset)
    return _run("GRU", X, W, R, B, sequence_lens, initial_h, None, None, attrs, layout, ctx, prepared)


@register("RNN", since=1, domain="tritonnx", prepare=_prepare("RNN"))
def RNN(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, ctx=None, prepared=None):
    """tritonnx::RNN: returns (Y, Y_h). `prepared`: its prepare step's packed weights."""
    attrs = dict(activation_alpha=activation_alpha, activation_beta=activation_beta,
                 activations=activations, clip=clip, direction=direction, hidden_size=hidden_size)
    return _run("RNN", X, W, R, B, sequence_lens, initial_h, None, None, attrs, layout, ctx, prepared)
