"""ONNX LSTM, GRU and RNN: the standard-domain handlers, which call the one plain-torch
implementation of their semantics in `tritonnx.triton_kernels.rnn_reference` (contract 4).

Opset 1-6 forms (the ``output_sequence`` attribute) run the same math: every output is always
computed, so the attribute changes nothing.
"""
from __future__ import annotations

from tritonnx.runtime.registry import register
from tritonnx.triton_kernels import rnn_reference


@register("LSTM", since=1, syncs=(4,))
def LSTM(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, output_sequence=0):
    """ONNX LSTM: returns (Y, Y_h, Y_c); gate order i, o, f, c."""
    return rnn_reference.lstm(
        X, W, R, B, sequence_lens, initial_h, initial_c, P,
        activation_alpha=activation_alpha, activation_beta=activation_beta,
        activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
        input_forget=input_forget, layout=layout,
    )


@register("GRU", since=1, syncs=(4,))
def GRU(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, linear_before_reset=0, output_sequence=0):
    """ONNX GRU: returns (Y, Y_h); gate order z, r, h."""
    return rnn_reference.gru(
        X, W, R, B, sequence_lens, initial_h,
        activation_alpha=activation_alpha, activation_beta=activation_beta,
        activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
        layout=layout, linear_before_reset=linear_before_reset,
    )


@register("RNN", since=1, syncs=(4,))
def RNN(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, output_sequence=0):
    """ONNX RNN (Elman): returns (Y, Y_h)."""
    return rnn_reference.rnn(
        X, W, R, B, sequence_lens, initial_h,
        activation_alpha=activation_alpha, activation_beta=activation_beta,
        activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
        layout=layout,
    )
