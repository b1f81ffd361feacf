"""ONNX LSTM / GRU / RNN -> tritonnx::LSTM / GRU / RNN (the fused recurrent kernels).

Algebra: none; the custom node is the same op with the same inputs, outputs and attributes
(`layout`, `direction`, `sequence_lens`, ... all kept), run by `runtime/ops/fused_recurrent.py`
on the Triton kernels of `triton_kernels/recurrent.py` (weights packed once, in memory;
the saved model keeps W, R, B, P in ONNX layout). Declined, with the reason (the node then runs
on the standard handler, i.e. `rnn_reference`):
- W or R (or a present B / P) not constant: the weights are packed once per session;
- X's element type not float / float16 / bfloat16;
- what `recurrent.unsupported_reason` refuses (unknown activation names).
"""
from __future__ import annotations

from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from tritonnx.runtime.passes import CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION, FusionRule, register_rule

OPS = ("LSTM", "GRU", "RNN")
INPUTS = {
    "LSTM": ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"),
    "GRU": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
    "RNN": ("X", "W", "R", "B", "sequence_lens", "initial_h"),
}
OUTPUTS = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}
ATTRIBUTES = {
    "activation_alpha": "floats", "activation_beta": "floats", "activations": "strings",
    "clip": "float", "direction": "string", "hidden_size": "int", "layout": "int",
}
EXTRA_ATTRIBUTES = {"LSTM": {"input_forget": "int"}, "GRU": {"linear_before_reset": "int"}, "RNN": {}}
DROPPED_ATTRIBUTES = ("output_sequence",)  # opset 1-6 only; every output is always computed
_FLOAT_TYPES = {"FLOAT": "fp32", "FLOAT16": "fp16", "BFLOAT16": "bf16"}


def _attrs(node) -> dict:
    return {name: attr.value for name, attr in node.attributes.items()
            if name not in DROPPED_ATTRIBUTES}


def decline_reason(node) -> str | None:
    """Why this ONNX LSTM/GRU/RNN node (onnx-ir) cannot be fused; None when it can."""
    from tritonnx.triton_kernels.recurrent import unsupported_reason

    op = node.op_type
    names = INPUTS[op]
    for i, value in enumerate(node.inputs[:len(names)]):
        name = names[i]
        if value is None or name in ("X", "sequence_lens", "initial_h", "initial_c"):
            continue
        if value.const_value is None:
            return f"input {name} ({value.name}) is not a constant: weights are packed once per session"
    x = node.inputs[0]
    dtype = getattr(getattr(x, "dtype", None), "name", None)
    if dtype is not None and dtype not in _FLOAT_TYPES:
        return f"X has element type {dtype}; the recurrent kernels take float, float16, bfloat16"
    attrs = _attrs(node)
    return unsupported_reason(
        op, direction=attrs.get("direction", "forward"), activations=attrs.get("activations"),
        activation_alpha=attrs.get("activation_alpha"), activation_beta=attrs.get("activation_beta"),
        linear_before_reset=attrs.get("linear_before_reset", 0))


class _FuseRecurrent(RewriteRuleClassBase):
    """ONNX `op` with `n` outputs -> tritonnx::`op` (same inputs, outputs, attributes)."""

    def __init__(self, op: str, n: int):
        super().__init__(name=f"fuse_{op.lower()}_{n}")
        self.op, self.n = op, n

    def pattern(self, op, X, W, R):
        return getattr(op, self.op)(X, W, R, _allow_other_inputs=True, _allow_other_attributes=True,
                                    _outputs=[f"out{i}" for i in range(self.n)])

    def check(self, context, out0, **_) -> MatchResult:
        result = MatchResult()
        node = out0.producer()
        if len(node.outputs) != self.n:  # a node with more outputs is the n+1 rule's
            return result.fail(f"node has {len(node.outputs)} outputs, this rule {self.n}")
        why = decline_reason(node)
        return result.fail(why) if why else result

    def rewrite(self, op, out0, **_):
        node = out0.producer()
        inputs = list(node.inputs)
        while inputs and inputs[-1] is None:
            inputs.pop()
        return getattr(op, self.op)(*inputs, _domain=CUSTOM_DOMAIN, _version=CUSTOM_DOMAIN_VERSION,
                                    _outputs=self.n, **_attrs(node))


def _schema(op: str):
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
    attrs = [S.Attribute(name, kinds[kind], "", required=False)
             for name, kind in {**ATTRIBUTES, **EXTRA_ATTRIBUTES[op]}.items()]
    schema = S(op, CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION,
               doc=f"tritonnx fused {op}: ONNX {op} semantics, run by the recurrent Triton kernels",
               inputs=inputs, outputs=outputs,
               type_constraints=[("T", ["tensor(float)", "tensor(float16)", "tensor(bfloat16)",
                                        "tensor(double)"], "float element type"),
                                 ("T1", ["tensor(int32)"], "sequence lengths")],
               attributes=attrs)

    def infer(ctx):
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

    schema.set_type_and_shape_inference_function(infer)
    return schema


def explain(node) -> str | None:
    """Why a standard LSTM/GRU/RNN was left unfused."""
    return decline_reason(node)


register_rule(FusionRule(
    name="fuse_recurrent", priority=200, candidates=OPS,
    rules=tuple(_FuseRecurrent.rule(op, n) for op in OPS for n in range(len(OUTPUTS[op]), 0, -1)),
    explain=explain,
    schemas=tuple(_schema(op) for op in OPS),
))
