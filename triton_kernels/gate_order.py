"""Every gate-order conversion between ONNX and PyTorch recurrent weights, in one place.

Gate blocks are stacked along the first axis of W [G*hidden, input], R [G*hidden, hidden] and
of each bias half [G*hidden]::

    LSTM  ONNX i, o, f, c      torch i, f, g, o     (c and g are the same cell-candidate gate)
    GRU   ONNX z, r, h         torch r, z, n        (h and n are the same candidate gate)
    RNN   one gate, no reorder

ONNX keeps one bias B [2*G*hidden] (Wb then Rb) per direction and stacks directions on a leading
axis; torch keeps `bias_ih_l{k}{suffix}` / `bias_hh_l{k}{suffix}` per layer and direction
(suffix "_reverse" for the backward direction). The Triton kernels use the ONNX order, so only
torch interop goes through here.
"""
from __future__ import annotations

import torch

from tritonnx.errors import InvalidArgument

#: ONNX gate order -> torch gate order: torch_blocks = onnx_blocks[ONNX_TO_TORCH[op]].
ONNX_TO_TORCH = {"LSTM": (0, 2, 3, 1), "GRU": (1, 0, 2), "RNN": (0,)}
#: torch gate order -> ONNX gate order: onnx_blocks = torch_blocks[TORCH_TO_ONNX[op]].
TORCH_TO_ONNX = {"LSTM": (0, 3, 1, 2), "GRU": (1, 0, 2), "RNN": (0,)}
_TORCH_MODULES = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}


def _reorder(t: torch.Tensor, order: tuple[int, ...], op: str, dim: int) -> torch.Tensor:
    g = len(order)
    if t.shape[dim] % g:
        raise InvalidArgument(
            f"{op}: gate axis {dim} of shape {list(t.shape)} expected a multiple of {g} gates"
        )
    blocks = t.chunk(g, dim=dim)
    return torch.cat([blocks[k] for k in order], dim=dim)


def onnx_to_torch(t: torch.Tensor, op: str = "LSTM", dim: int = 0) -> torch.Tensor:
    """Reorder the gate blocks along `dim` from ONNX order to torch order."""
    return _reorder(t, ONNX_TO_TORCH[op], op, dim)


def torch_to_onnx(t: torch.Tensor, op: str = "LSTM", dim: int = 0) -> torch.Tensor:
    """Reorder the gate blocks along `dim` from torch order to ONNX order."""
    return _reorder(t, TORCH_TO_ONNX[op], op, dim)


def op_of(module: torch.nn.Module) -> str:
    """"LSTM", "GRU" or "RNN" for a torch recurrent module."""
    for op, cls in _TORCH_MODULES.items():
        if isinstance(module, cls):
            return op
    raise InvalidArgument(f"expected a torch.nn.LSTM, GRU or RNN, got {type(module).__name__}")


def torch_layer_to_onnx(module: torch.nn.RNNBase, layer: int = 0) -> dict[str, torch.Tensor]:
    """ONNX W, R, B (stacked over directions) for one layer of a torch LSTM/GRU/RNN.

    Returns: {"W": [dirs, G*H, in], "R": [dirs, G*H, H], "B": [dirs, 2*G*H]} (B zeros if the
    module has no bias). Projections (`proj_size`) are not ONNX LSTM semantics and are refused.
    """
    op = op_of(module)
    if getattr(module, "proj_size", 0):
        raise InvalidArgument(f"{op}: proj_size={module.proj_size} has no ONNX equivalent")
    suffixes = [""] + (["_reverse"] if module.bidirectional else [])
    Ws, Rs, Bs = [], [], []
    for sfx in suffixes:
        w = getattr(module, f"weight_ih_l{layer}{sfx}").detach()
        r = getattr(module, f"weight_hh_l{layer}{sfx}").detach()
        Ws.append(torch_to_onnx(w, op))
        Rs.append(torch_to_onnx(r, op))
        if module.bias:
            bi = torch_to_onnx(getattr(module, f"bias_ih_l{layer}{sfx}").detach(), op)
            bh = torch_to_onnx(getattr(module, f"bias_hh_l{layer}{sfx}").detach(), op)
            Bs.append(torch.cat([bi, bh]))
        else:
            Bs.append(w.new_zeros(2 * w.shape[0]))
    return {"W": torch.stack(Ws), "R": torch.stack(Rs), "B": torch.stack(Bs)}


def onnx_to_torch_layer(module: torch.nn.RNNBase, W: torch.Tensor, R: torch.Tensor,
                        B: torch.Tensor | None = None, layer: int = 0) -> None:
    """Load ONNX W, R, B (stacked over directions) into one layer of a torch LSTM/GRU/RNN."""
    op = op_of(module)
    suffixes = [""] + (["_reverse"] if module.bidirectional else [])
    if W.shape[0] != len(suffixes) or R.shape[0] != len(suffixes):
        raise InvalidArgument(
            f"{op}: expected W and R with {len(suffixes)} directions, got {list(W.shape)}, {list(R.shape)}"
        )
    with torch.no_grad():
        for d, sfx in enumerate(suffixes):
            getattr(module, f"weight_ih_l{layer}{sfx}").copy_(onnx_to_torch(W[d], op))
            getattr(module, f"weight_hh_l{layer}{sfx}").copy_(onnx_to_torch(R[d], op))
            if module.bias:
                b = B[d] if B is not None else W.new_zeros(2 * W.shape[1])
                bi, bh = b.chunk(2)
                getattr(module, f"bias_ih_l{layer}{sfx}").copy_(onnx_to_torch(bi, op))
                getattr(module, f"bias_hh_l{layer}{sfx}").copy_(onnx_to_torch(bh, op))
