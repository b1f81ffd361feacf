"""The tritonnx::LSTM / GRU / RNN family: the fused recurrent ops (`triton_kernels/recurrent.py`).

This module owns the ops: their schemas (`SCHEMAS`, registered by the fusion rule
`tritonnx.runtime.passes.fuse_recurrent`) and handlers with their prepare steps. Same inputs,
outputs and attributes as the ONNX ops, from the one list in
`tritonnx.triton_kernels.rnn_reference` (`INPUTS`, `OUTPUTS`, `ATTRIBUTES`). With ``ctx.kernels == "triton"`` the
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
from tritonnx.runtime.passes.framework import CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION
from tritonnx.runtime.registry import register
from tritonnx.triton_kernels import recurrent, rnn_reference
from tritonnx.triton_kernels.rnn_reference import ATTRIBUTES, INPUTS, OUTPUTS

OPS = ("LSTM", "GRU", "RNN")

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


def _checked(cell: str, attrs: dict) -> dict:
    unknown = sorted(set(attrs) - set(ATTRIBUTES[cell]))
    if unknown:
        raise InvalidArgument(f"tritonnx::{cell}: unknown attribute(s) {unknown}; expected some of {list(ATTRIBUTES[cell])}")
    return attrs


def _handler(cell: str):
    gated = cell == "LSTM"

    def handler(X, W, R, B=None, sequence_lens=None, initial_h=None, initial_c=None, P=None, *,
                layout=0, ctx=None, prepared=None, **attrs):
        if not gated and (initial_c is not None or P is not None):
            raise InvalidArgument(f"tritonnx::{cell}: has {len(INPUTS[cell])} inputs, got more")
        return _run(cell, X, W, R, B, sequence_lens, initial_h, initial_c, P, _checked(cell, attrs), layout,
                    ctx, prepared)

    handler.__name__ = handler.__qualname__ = cell
    outs = ", ".join(OUTPUTS[cell])
    handler.__doc__ = (f"tritonnx::{cell}: returns ({outs}); attributes `rnn_reference.ATTRIBUTES[{cell!r}]`. "
                       "`prepared`: its prepare step's packed weights.")
    return handler


LSTM = register("LSTM", since=1, domain=CUSTOM_DOMAIN, prepare=_prepare("LSTM"))(_handler("LSTM"))
GRU = register("GRU", since=1, domain=CUSTOM_DOMAIN, prepare=_prepare("GRU"))(_handler("GRU"))
RNN = register("RNN", since=1, domain=CUSTOM_DOMAIN, prepare=_prepare("RNN"))(_handler("RNN"))


# ----------------------------------------------------------------------------- schemas
def schema(op: str):
    """The OpSchema of tritonnx::`op`: ONNX's inputs, outputs and attributes (sequence_lens is
    int32, the rest share T) and the same shape inference."""
    import onnx
    import onnx.defs

    S = onnx.defs.OpSchema
    optional = S.FormalParameterOption.Optional
    inputs = []
    for i, name in enumerate(INPUTS[op]):
        typ = "T1" if name == "sequence_lens" else "T"
        inputs.append(S.FormalParameter(name, typ, param_option=optional if i >= 3 else S.FormalParameterOption.Single))
    outputs = [S.FormalParameter(name, "T", param_option=optional) for name in OUTPUTS[op]]
    kinds = {"int": S.AttrType.INT, "float": S.AttrType.FLOAT, "string": S.AttrType.STRING,
             "floats": S.AttrType.FLOATS, "strings": S.AttrType.STRINGS}
    attrs = [S.Attribute(name, kinds[kind], "", required=False) for name, kind in ATTRIBUTES[op].items()]
    result = S(op, CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION,
               doc=f"tritonnx fused {op}: ONNX {op} semantics, run by the recurrent Triton kernels",
               inputs=inputs, outputs=outputs,
               type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)",
                                        "tensor(double)"], "float element type"),
                                 ("T1", ["tensor(int32)"], "sequence lengths")],
               attributes=attrs)
    result.set_type_and_shape_inference_function(_infer)
    return result


def _infer(ctx) -> None:
    """ONNX's shapes: Y [seq, dirs, batch, hidden] (layout 1: [batch, seq, dirs, hidden]),
    Y_h / Y_c [dirs, batch, hidden] (layout 1: [batch, dirs, hidden])."""
    import onnx

    x = ctx.get_input_type(0)
    elem = x.tensor_type.elem_type
    dims = list(x.tensor_type.shape.dim) if x.tensor_type.HasField("shape") else None
    direction = "forward"
    layout = 0
    hidden = None
    attr = ctx.get_attribute("direction")
    if attr is not None:
        direction = attr.s.decode()
    attr = ctx.get_attribute("layout")
    if attr is not None:
        layout = attr.i
    attr = ctx.get_attribute("hidden_size")
    if attr is not None:
        hidden = attr.i
    nd = 2 if direction == "bidirectional" else 1

    def out_type(shape):
        t = onnx.TypeProto()
        t.tensor_type.elem_type = elem
        if shape is not None:
            t.tensor_type.shape.SetInParent()
            for d in shape:
                dim = t.tensor_type.shape.dim.add()
                if isinstance(d, int):
                    dim.dim_value = d
                elif d is not None and d.HasField("dim_value"):
                    dim.dim_value = d.dim_value
                elif d is not None and d.HasField("dim_param"):
                    dim.dim_param = d.dim_param
        return t

    shapes = [None] * ctx.get_num_outputs()
    if dims is not None and len(dims) == 3 and hidden is not None:
        seq, batch = (dims[0], dims[1]) if layout == 0 else (dims[1], dims[0])
        y = [seq, nd, batch, hidden] if layout == 0 else [batch, seq, nd, hidden]
        state = [nd, batch, hidden] if layout == 0 else [batch, nd, hidden]
        shapes = [y] + [state] * (ctx.get_num_outputs() - 1)
    for i in range(ctx.get_num_outputs()):
        ctx.set_output_type(i, out_type(shapes[i]))


SCHEMAS = tuple(schema(op) for op in OPS)
