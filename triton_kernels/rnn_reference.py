"""Plain-torch ONNX LSTM, GRU and RNN with every attribute: the recurrent semantics of tritonnx.

This module is both the runtime's lowering of the standard ONNX ops (the LSTM/GRU/RNN handlers
call it) and the test reference of the Triton kernels in `recurrent.py`. It imports no onnx.

Layouts (ONNX, `layout=0`; `layout=1` swaps the first two axes of X, Y, initial_h/c, Y_h/c)::

    X          [seq, batch, input]              W  [dirs, G*hidden, input]
    initial_h  [dirs, batch, hidden]            R  [dirs, G*hidden, hidden]
    Y          [seq, dirs, batch, hidden]       B  [dirs, 2*G*hidden]   (Wb then Rb)
    Y_h, Y_c   [dirs, batch, hidden]            P  [dirs, 3*hidden]     (LSTM peepholes i, o, f)

with G = 4 (LSTM, gates i, o, f, c), 3 (GRU, gates z, r, h) or 1 (RNN). For each direction,
with f, g, h the direction's activations and every pre-activation clipped to [-clip, clip]::

    LSTM  i = f(x Wi + h Ri + Pi*c + bi)        GRU  z = f(x Wz + h Rz + bz)
          f = f(x Wf + h Rf + Pf*c + bf)             r = f(x Wr + h Rr + br)
              (input_forget: f = 1 - i)              n = g(x Wh + (r*h) Rh + Rbh + Wbh)  lbr=0
          g = g(x Wc + h Rc + bc)                    n = g(x Wh + r*(h Rh + Rbh) + Wbh)  lbr=1
          c' = f*c + i*g                             h' = (1 - z)*n + z*h
          o = f(x Wo + h Ro + Po*c' + bo)       RNN  h' = f(x Wi + h Ri + Wbi + Rbi)
          h' = o*h(c')

`sequence_lens[b]` steps are run for batch item b (the reverse direction starts at its last
valid step); Y is zero past each length and Y_h / Y_c hold each item's state after its last
valid step. Computation is in float32 (float64 for float64 inputs); results come back in X's
dtype.

`activation_alpha` / `activation_beta` are consumed in the order of the activations list, each
activation taking as many values as it has parameters (as onnxruntime reads them); missing
values take the defaults of the corresponding ONNX operators.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from tritonnx.errors import InvalidArgument, NotImplemented

#: Activation name (lower case) -> (number of alpha values, of beta values, default alpha, beta).
ACTIVATION_PARAMS: dict[str, tuple[int, int, float, float]] = {
    "relu": (0, 0, 0.0, 0.0),
    "tanh": (0, 0, 0.0, 0.0),
    "sigmoid": (0, 0, 0.0, 0.0),
    "affine": (1, 1, 1.0, 0.0),
    "leakyrelu": (1, 0, 0.01, 0.0),
    "thresholdedrelu": (1, 0, 1.0, 0.0),
    "scaledtanh": (1, 1, 1.0, 1.0),
    "hardsigmoid": (1, 1, 0.2, 0.5),
    "elu": (1, 0, 1.0, 0.0),
    "softsign": (0, 0, 0.0, 0.0),
    "softplus": (0, 0, 0.0, 0.0),
}

#: Per-direction default activations.
DEFAULT_ACTIVATIONS = {
    "LSTM": ("Sigmoid", "Tanh", "Tanh"),
    "GRU": ("Sigmoid", "Tanh"),
    "RNN": ("Tanh",),
}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DIRECTIONS = ("forward", "reverse", "bidirectional")

#: Each op's inputs and outputs (ONNX order) and attributes (name -> ONNX attribute kind), as
#: `lstm`, `gru` and `rnn` take them: the one list the fused ops' schema and handlers
#: (`tritonnx.runtime.ops.fused_recurrent`) and the fusion rule read.
INPUTS = {
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
}
OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}
_COMMON_ATTRIBUTES = {
    "activation_alpha": "floats", "activation_beta": "floats", "activations": "strings",
    "clip": "float", "direction": "string", "hidden_size": "int", "layout": "int",
}
ATTRIBUTES = {
    "LSTM": {**_COMMON_ATTRIBUTES, "input_forget": "int"},
    "GRU": {**_COMMON_ATTRIBUTES, "linear_before_reset": "int"},
    "RNN": dict(_COMMON_ATTRIBUTES),
}


def apply_activation(x: torch.Tensor, name: str, alpha: float, beta: float) -> torch.Tensor:
    """One ONNX recurrent activation by (case-insensitive) name."""
    key = name.lower()
    if key == "relu":
        return torch.relu(x)
    if key == "tanh":
        return torch.tanh(x)
    if key == "sigmoid":
        return torch.sigmoid(x)
    if key == "affine":
        return alpha * x + beta
    if key == "leakyrelu":
        return torch.where(x >= 0, x, alpha * x)
    if key == "thresholdedrelu":
        return torch.where(x > alpha, x, torch.zeros_like(x))
    if key == "scaledtanh":
        return alpha * torch.tanh(beta * x)
    if key == "hardsigmoid":
        return torch.clamp(alpha * x + beta, 0.0, 1.0)
    if key == "elu":
        return torch.where(x >= 0, x, alpha * torch.expm1(x))
    if key == "softsign":
        return x / (1.0 + x.abs())
    if key == "softplus":
        return torch.nn.functional.softplus(x)
    raise NotImplemented(
        f"recurrent activation {name!r} is not supported; expected one of "
        f"{sorted(ACTIVATION_PARAMS)} (case-insensitive)"
    )


def resolve_activations(
    op: str,
    num_directions: int,
    activations: Sequence[str] | None,
    activation_alpha: Sequence[float] | None,
    activation_beta: Sequence[float] | None,
) -> list[list[tuple[str, float, float]]]:
    """Per direction, the list of (lower-case name, alpha, beta) for the op's activations.

    Raises `InvalidArgument` for a wrong count, `NotImplemented` for an unknown name.
    """
    per_dir = len(DEFAULT_ACTIVATIONS[op])
    names = list(activations) if activations else list(DEFAULT_ACTIVATIONS[op]) * num_directions
    if len(names) != per_dir * num_directions:
        raise InvalidArgument(
            f"{op}: attribute 'activations' expected {per_dir * num_directions} names "
            f"({per_dir} per direction x {num_directions} directions), got {len(names)}: {names}"
        )
    alphas = list(activation_alpha or [])
    betas = list(activation_beta or [])
    resolved = []
    for name in names:
        key = name.lower() if isinstance(name, str) else name.decode().lower()
        if key not in ACTIVATION_PARAMS:
            raise NotImplemented(
                f"{op}: activation {name!r} is not supported; expected one of "
                f"{sorted(ACTIVATION_PARAMS)} (case-insensitive)"
            )
        n_alpha, n_beta, alpha, beta = ACTIVATION_PARAMS[key]
        if n_alpha and alphas:
            alpha = float(alphas.pop(0))
        if n_beta and betas:
            beta = float(betas.pop(0))
        resolved.append((key, alpha, beta))
    return [resolved[d * per_dir:(d + 1) * per_dir] for d in range(num_directions)]


def _act(spec: tuple[str, float, float]) -> Callable[[torch.Tensor], torch.Tensor]:
    name, alpha, beta = spec
    return lambda x: apply_activation(x, name, alpha, beta)


def _shape_error(op: str, what: str, expected, got) -> InvalidArgument:
    return InvalidArgument(f"{op}: input '{what}' expected shape {list(expected)}, got {list(got)}")


def _check(op: str, what: str, t: torch.Tensor | None, expected: Sequence[int]) -> None:
    if t is not None and tuple(t.shape) != tuple(expected):
        raise _shape_error(op, what, expected, t.shape)


def _common(op, X, W, R, B, sequence_lens, initial_states, *, direction, hidden_size, layout, clip):
    """Validate, move to layout 0 and compute dtype; return the prepared pieces."""
    if direction not in DIRECTIONS:
        raise InvalidArgument(f"{op}: attribute 'direction' expected one of {DIRECTIONS}, got {direction!r}")
    if layout not in (0, 1):
        raise InvalidArgument(f"{op}: attribute 'layout' expected 0 or 1, got {layout!r}")
    if X.dim() != 3:
        raise InvalidArgument(f"{op}: input 'X' expected rank 3, got shape {list(X.shape)}")
    if W.dim() != 3 or R.dim() != 3:
        raise InvalidArgument(
            f"{op}: inputs 'W' and 'R' expected rank 3, got shapes {list(W.shape)} and {list(R.shape)}"
        )
    gates = GATES[op]
    nd = 2 if direction == "bidirectional" else 1
    hidden = int(R.shape[-1]) if hidden_size is None else int(hidden_size)
    if layout == 1:
        X = X.transpose(0, 1).contiguous()
        initial_states = [None if s is None else s.transpose(0, 1) for s in initial_states]
    seq, batch, inp = X.shape
    _check(op, "W", W, (nd, gates * hidden, inp))
    _check(op, "R", R, (nd, gates * hidden, hidden))
    _check(op, "B", B, (nd, 2 * gates * hidden))
    for name, s in zip(("initial_h", "initial_c"), initial_states):
        _check(op, name, s, (nd, batch, hidden))
    if sequence_lens is not None:
        _check(op, "sequence_lens", sequence_lens, (batch,))
        lens = sequence_lens.to(device=X.device, dtype=torch.long)
        if lens.numel() and (int(lens.min()) < 0 or int(lens.max()) > seq):
            raise InvalidArgument(
                f"{op}: input 'sequence_lens' expected values in [0, {seq}], got {lens.tolist()}"
            )
    else:
        lens = torch.full((batch,), seq, dtype=torch.long, device=X.device)
    if clip is not None and not clip > 0:
        raise InvalidArgument(f"{op}: attribute 'clip' expected a positive float, got {clip!r}")
    cdt = torch.float64 if X.dtype == torch.float64 else torch.float32
    return X, initial_states, lens, seq, batch, hidden, nd, cdt


def _run(step_fn, xp, lens, states, reverse, seq):
    """Run `step_fn(x_t, states) -> (h, *states)` over time with per-item lengths.

    xp: [seq, batch, K] projected inputs; returns Y [seq, batch, hidden] and the final states.
    No host synchronisation (masks, not boolean indexing), so a CUDA graph can capture it.
    """
    batch = xp.shape[1]
    arange_b = torch.arange(batch, device=xp.device)
    y = xp.new_zeros((seq, batch, states[0].shape[-1]))
    for s in range(seq):
        m = (s < lens)[:, None]
        # an item past its length rewrites Y at t (its own last value, or zero) unchanged
        t = (lens - 1 - s).clamp(min=0) if reverse else torch.full_like(lens, s)
        new = step_fn(xp[t, arange_b], states)
        states = [torch.where(m, n, o) for n, o in zip(new, states)]
        y[t, arange_b] = torch.where(m, new[0], y[t, arange_b])
    return y, states


def _finish(Y, finals, layout, dtype):
    Y = torch.stack(Y, dim=1)  # [seq, dirs, batch, hidden]
    outs = [torch.stack(f, dim=0) for f in finals]  # [dirs, batch, hidden]
    if layout == 1:
        Y = Y.permute(2, 0, 1, 3)
        outs = [o.transpose(0, 1) for o in outs]
    return (Y.to(dtype).contiguous(), *(o.to(dtype).contiguous() for o in outs))


def _clipper(clip):
    if clip is None:
        return lambda x: x
    c = float(clip)
    return lambda x: x.clamp(-c, c)


def lstm(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
         activation_alpha=None, activation_beta=None, activations=None, clip=None,
         direction="forward", hidden_size=None, input_forget=0, layout=0):
    """ONNX LSTM (opset 7-22). Returns (Y, Y_h, Y_c) in the layouts of the module docstring."""
    dtype = X.dtype
    X, (h0, c0), lens, seq, batch, hidden, nd, cdt = _common(
        "LSTM", X, W, R, B, sequence_lens, [initial_h, initial_c],
        direction=direction, hidden_size=hidden_size, layout=layout, clip=clip)
    _check("LSTM", "P", P, (nd, 3 * hidden))
    acts = resolve_activations("LSTM", nd, activations, activation_alpha, activation_beta)
    clamp = _clipper(clip)
    x = X.to(cdt)
    Ys, Hs, Cs = [], [], []
    for d in range(nd):
        w, r = W[d].to(cdt), R[d].to(cdt)
        b = B[d].to(cdt) if B is not None else x.new_zeros(8 * hidden)
        p = P[d].to(cdt) if P is not None else x.new_zeros(3 * hidden)
        pi, po, pf = p.split(hidden)
        xp = x @ w.T + b[:4 * hidden] + b[4 * hidden:]
        h = h0[d].to(cdt) if h0 is not None else x.new_zeros(batch, hidden)
        c = c0[d].to(cdt) if c0 is not None else x.new_zeros(batch, hidden)
        f_act, g_act, h_act = (_act(a) for a in acts[d])

        def step(xt, st, r=r, pi=pi, po=po, pf=pf, f_act=f_act, g_act=g_act, h_act=h_act):
            h, c = st
            gi, go, gf, gc = (xt + h @ r.T).split(hidden, dim=-1)
            i = f_act(clamp(gi + pi * c))
            f = 1.0 - i if input_forget else f_act(clamp(gf + pf * c))
            g = g_act(clamp(gc))
            c_new = f * c + i * g
            o = f_act(clamp(go + po * c_new))
            return o * h_act(c_new), c_new

        y, (h, c) = _run(step, xp, lens, [h, c], d == 1 or direction == "reverse", seq)
        Ys.append(y)
        Hs.append(h)
        Cs.append(c)
    return _finish(Ys, [Hs, Cs], layout, dtype)


def gru(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0, linear_before_reset=0):
    """ONNX GRU (opset 7-22). Returns (Y, Y_h) in the layouts of the module docstring."""
    dtype = X.dtype
    X, (h0,), lens, seq, batch, hidden, nd, cdt = _common(
        "GRU", X, W, R, B, sequence_lens, [initial_h],
        direction=direction, hidden_size=hidden_size, layout=layout, clip=clip)
    acts = resolve_activations("GRU", nd, activations, activation_alpha, activation_beta)
    clamp = _clipper(clip)
    x = X.to(cdt)
    Ys, Hs = [], []
    for d in range(nd):
        w, r = W[d].to(cdt), R[d].to(cdt)
        b = B[d].to(cdt) if B is not None else x.new_zeros(6 * hidden)
        wb, rb = b[:3 * hidden], b[3 * hidden:]
        xp = x @ w.T + wb
        h = h0[d].to(cdt) if h0 is not None else x.new_zeros(batch, hidden)
        f_act, g_act = (_act(a) for a in acts[d])
        rz, rr, rh = r.split(hidden)
        rbz, rbr, rbh = rb.split(hidden)

        def step(xt, st, rz=rz, rr=rr, rh=rh, rbz=rbz, rbr=rbr, rbh=rbh, f_act=f_act, g_act=g_act):
            (h,) = st
            xz, xr, xh = xt.split(hidden, dim=-1)
            z = f_act(clamp(xz + h @ rz.T + rbz))
            rg = f_act(clamp(xr + h @ rr.T + rbr))
            if linear_before_reset:
                n = g_act(clamp(xh + rg * (h @ rh.T + rbh)))
            else:
                n = g_act(clamp(xh + (rg * h) @ rh.T + rbh))
            return ((1.0 - z) * n + z * h,)

        y, (h,) = _run(step, xp, lens, [h], d == 1 or direction == "reverse", seq)
        Ys.append(y)
        Hs.append(h)
    return _finish(Ys, [Hs], layout, dtype)


def rnn(X, W, R, B=None, sequence_lens=None, initial_h=None, *, activation_alpha=None,
        activation_beta=None, activations=None, clip=None, direction="forward", hidden_size=None,
        layout=0):
    """ONNX RNN (Elman, opset 7-22). Returns (Y, Y_h) in the layouts of the module docstring."""
    dtype = X.dtype
    X, (h0,), lens, seq, batch, hidden, nd, cdt = _common(
        "RNN", X, W, R, B, sequence_lens, [initial_h],
        direction=direction, hidden_size=hidden_size, layout=layout, clip=clip)
    acts = resolve_activations("RNN", nd, activations, activation_alpha, activation_beta)
    clamp = _clipper(clip)
    x = X.to(cdt)
    Ys, Hs = [], []
    for d in range(nd):
        w, r = W[d].to(cdt), R[d].to(cdt)
        b = B[d].to(cdt) if B is not None else x.new_zeros(2 * hidden)
        xp = x @ w.T + b[:hidden] + b[hidden:]
        h = h0[d].to(cdt) if h0 is not None else x.new_zeros(batch, hidden)
        f_act = _act(acts[d][0])

        def step(xt, st, r=r, f_act=f_act):
            return (f_act(clamp(xt + st[0] @ r.T)),)

        y, (h,) = _run(step, xp, lens, [h], d == 1 or direction == "reverse", seq)
        Ys.append(y)
        Hs.append(h)
    return _finish(Ys, [Hs], layout, dtype)


__all__ = ["lstm", "gru", "rnn", "apply_activation", "resolve_activations", "ACTIVATION_PARAMS",
           "DEFAULT_ACTIVATIONS", "GATES"]
