"""ONNX LSTM, GRU and RNN: the standard-domain handlers, which call the one plain-torch
implementation of their semantics in `tritonnx.triton_kernels.rnn_reference` (contract 4).

Opset 1-6 forms (the ``output_sequence`` attribute) run the same math: every output is always
computed, so the attribute changes nothing.

Where the ONNX semantics are torch's, a node runs on torch's own fused recurrent functions
(``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh`` / ``torch.rnn_relu``) instead: default
activations (RNN: Tanh or Relu, the same for both directions), no ``clip``, ``input_forget``
0, no peepholes, GRU ``linear_before_reset`` 1 (torch's GRU), ``layout`` 0 or 1, float
inputs (computed in float32, float64 for float64, as the reference does), and
``sequence_lens`` absent, all equal to the sequence length, or (forward and bidirectional)
handled by packing with every length >= 1. Weights are converted to torch's gate order once,
by the handler's prepare step when they are constant (`triton_kernels.gate_order`). Anything
else runs the reference.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from tritonnx.runtime.registry import register
from tritonnx.triton_kernels import gate_order, rnn_reference

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass(frozen=True)
class TorchWeights:
    """One node's W, R, B in torch's layout: per direction w_ih, w_hh, b_ih, b_hh."""

    params: tuple[torch.Tensor, ...]
    dtype: torch.dtype


def torch_kind(cell: str, *, activations=None, clip=None, input_forget=0, linear_before_reset=0,
               direction="forward", layout=0, **_) -> str | None:
    """The torch function's name for a node with these attributes ("lstm", "gru", "rnn_tanh",
    "rnn_relu"), or None where torch's semantics differ (the reference runs)."""
    if clip is not None or input_forget or layout not in (0, 1) or direction not in rnn_reference.DIRECTIONS:
        return None
    if cell == "GRU" and not linear_before_reset:
        return None
    nd = 2 if direction == "bidirectional" else 1
    names = [a.lower() for a in activations] if activations else None
    if cell == "RNN":
        names = names or ["tanh"] * nd
        if len(names) == nd and len(set(names)) == 1 and names[0] in ("tanh", "relu"):
            return f"rnn_{names[0]}"
        return None
    if names is not None and names != [a.lower() for a in rnn_reference.DEFAULT_ACTIVATIONS[cell]] * nd:
        return None
    return cell.lower()


def torch_weights(cell: str, W: torch.Tensor, R: torch.Tensor, B: torch.Tensor | None,
                  dtype: torch.dtype) -> TorchWeights:
    """ONNX W [dirs, G*H, in], R [dirs, G*H, H], B [dirs, 2*G*H] (None: zeros) as torch's flat
    parameter list in `dtype`, gate order converted (`gate_order.onnx_to_torch`)."""
    params = []
    for d in range(W.shape[0]):
        b = B[d].to(dtype) if B is not None else W.new_zeros(2 * W.shape[1], dtype=dtype)
        params += [gate_order.onnx_to_torch(W[d].to(dtype), cell).contiguous(),
                   gate_order.onnx_to_torch(R[d].to(dtype), cell).contiguous(),
                   *(gate_order.onnx_to_torch(half, cell).contiguous() for half in b.chunk(2))]
    return TorchWeights(tuple(params), dtype)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _prepare(cell: str):
    """`cell`'s prepare step: its weights in torch's layout when they are constant and the
    node's attributes are torch's semantics (`torch_kind`)."""
    def prepare(X=None, W=None, R=None, B=None, *rest, dynamic_inputs=(), **attrs):
        if W is None or R is None or 3 in dynamic_inputs or torch_kind(cell, **attrs) is None:
            return None
        if W.dtype not in FLOATS:
            return None
        return torch_weights(cell, W, R, B, _compute_dtype(W.dtype))

    prepare.__name__ = prepare.__qualname__ = f"prepare_{cell}"
    return prepare


def run_torch(cell: str, kind: str, X, W, R, B, sequence_lens, initial_h, initial_c, *, direction: str,
              layout: int, hidden_size=None, prepared: TorchWeights | None = None):
    """`cell` on torch's fused function `kind`; None where this node cannot (shapes the reference
    will refuse with its own message, a dtype, a zero or, in reverse, unequal sequence lengths).

    Returns (Y, Y_h) or (Y, Y_h, Y_c) in ONNX layouts and X's dtype."""
    if X.dtype not in FLOATS or X.dim() != 3 or W.dim() != 3 or R.dim() != 3:
        return None
    nd = 2 if direction == "bidirectional" else 1
    gates = rnn_reference.GATES[cell]
    hidden = R.shape[-1]
    batch_first = layout == 1
    batch, seq = (X.shape[0], X.shape[1]) if batch_first else (X.shape[1], X.shape[0])
    if (hidden_size is not None and hidden_size != hidden) or tuple(W.shape) != (nd, gates * hidden, X.shape[2]) \
            or tuple(R.shape) != (nd, gates * hidden, hidden) or (B is not None and tuple(B.shape) != (nd, 2 * gates * hidden)):
        return None
    states = [initial_h] + ([initial_c] if cell == "LSTM" else [])
    want = (batch, nd, hidden) if batch_first else (nd, batch, hidden)
    if any(s is not None and tuple(s.shape) != want for s in states):
        return None
    lens = None
    if sequence_lens is not None:
        if tuple(sequence_lens.shape) != (batch,):
            return None
        values = sequence_lens.tolist()  # the reference reads them on the host too
        if any(v != seq for v in values):
            if direction == "reverse" or any(v < 1 or v > seq for v in values):
                return None
            lens = torch.tensor(values, dtype=torch.int64)
    cdt = _compute_dtype(X.dtype)
    weights = prepared if prepared is not None and prepared.dtype == cdt \
        and prepared.params[0].device == X.device else torch_weights(cell, W, R, B, cdt)
    x = X.to(cdt)
    hx = []
    for s in states:
        if s is None:
            hx.append(x.new_zeros(nd, batch, hidden))
        else:
            hx.append((s.transpose(0, 1) if batch_first else s).to(cdt).contiguous())
    fn = getattr(torch, kind)
    time_axis = 1 if batch_first else 0
    bidirectional = nd == 2
    if direction == "reverse":
        x = x.flip(time_axis)
    if lens is None:
        out = fn(x, tuple(hx) if cell == "LSTM" else hx[0], weights.params, True, 1, 0.0, False, bidirectional,
                 batch_first)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lens, batch_first=batch_first, enforce_sorted=False)
        hx = [h.index_select(1, packed.sorted_indices) for h in hx]
        out = fn(packed.data, packed.batch_sizes, tuple(hx) if cell == "LSTM" else hx[0], weights.params, True, 1,
                 0.0, False, bidirectional)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(
            torch.nn.utils.rnn.PackedSequence(out[0], packed.batch_sizes, packed.sorted_indices,
                                              packed.unsorted_indices), batch_first=batch_first, total_length=seq)
        out = (y, *(h.index_select(1, packed.unsorted_indices) for h in out[1:]))
    y, finals = out[0], out[1:]
    if direction == "reverse":
        y = y.flip(time_axis)
    if batch_first:
        y = y.view(batch, seq, nd, hidden)
        finals = [h.transpose(0, 1) for h in finals]
    else:
        y = y.view(seq, batch, nd, hidden).transpose(1, 2)
    dtype = X.dtype
    return (y.to(dtype).contiguous(), *(h.to(dtype).contiguous() for h in finals))


@register("LSTM", since=1, syncs=(4,), prepare=_prepare("LSTM"))
def LSTM(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0, output_sequence=0, prepared=None):
    """ONNX LSTM: returns (Y, Y_h, Y_c); gate order i, o, f, c. On torch.lstm where it can
    (module docstring); `prepared`: the weights in torch's layout."""
    kind = None if P is not None else torch_kind("LSTM", activations=activations, clip=clip, input_forget=input_forget,
                                                 direction=direction, layout=layout)
    if kind is not None:
        out = run_torch("LSTM", kind, X, W, R, B, sequence_lens, initial_h, initial_c, direction=direction,
                        layout=layout, hidden_size=hidden_size, prepared=prepared)
        if out is not None:
            return out
    return rnn_reference.lstm(
        X, W, R, B, sequence_lens, initial_h, initial_c, P,
        activation_alpha=activation_alpha, activation_beta=activation_beta,
        activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
        input_forget=input_forget, layout=layout,
    )


@register("GRU", since=1, syncs=(4,), prepare=_prepare("GRU"))
def GRU(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, linear_before_reset=0, output_sequence=0, prepared=None):
    """ONNX GRU: returns (Y, Y_h); gate order z, r, h. On torch.gru where it can (module
    docstring: ``linear_before_reset=1`` only); `prepared`: the weights in torch's layout."""
    kind = torch_kind("GRU", activations=activations, clip=clip, linear_before_reset=linear_before_reset,
                      direction=direction, layout=layout)
    if kind is not None:
        out = run_torch("GRU", kind, X, W, R, B, sequence_lens, initial_h, None, direction=direction,
                        layout=layout, hidden_size=hidden_size, prepared=prepared)
        if out is not None:
            return out
    return rnn_reference.gru(
        X, W, R, B, sequence_lens, initial_h,
        activation_alpha=activation_alpha, activation_beta=activation_beta,
        activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
        layout=layout, linear_before_reset=linear_before_reset,
    )


@register("RNN", since=1, syncs=(4,), prepare=_prepare("RNN"))
def RNN(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, output_sequence=0, prepared=None):
    """ONNX RNN (Elman): returns (Y, Y_h). On torch.rnn_tanh / rnn_relu where it can (module
    docstring); `prepared`: the weights in torch's layout."""
    kind = torch_kind("RNN", activations=activations, clip=clip, direction=direction, layout=layout)
    if kind is not None:
        out = run_torch("RNN", kind, X, W, R, B, sequence_lens, initial_h, None, direction=direction,
                        layout=layout, hidden_size=hidden_size, prepared=prepared)
        if out is not None:
            return out
    return rnn_reference.rnn(
        X, W, R, B, sequence_lens, initial_h,
        activation_alpha=activation_alpha, activation_beta=activation_beta,
        activations=activations, clip=clip, direction=direction, hidden_size=hidden_size,
        layout=layout,
    )
