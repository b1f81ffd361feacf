"""ONNX LSTM / GRU / RNN -> tritonnx::LSTM / GRU / RNN (the fused recurrent kernels).

Algebra: none; the custom node is the same op with the same inputs, outputs and attributes
(`layout`, `direction`, `sequence_lens`, ... all kept; the ops, their schemas and handlers:
`runtime/ops/fused_recurrent.py`), run on the Triton kernels of `triton_kernels/recurrent.py`
(weights packed once, in memory; the saved model keeps W, R, B, P in ONNX layout). Declined, with the reason (the node then runs
on the standard handler, i.e. `rnn_reference`):
- W or R (or a present B / P) not constant: the weights are packed once per session;
- X's element type not float / float16 / bfloat16;
- what `recurrent.unsupported_reason` refuses (unknown activation names).
"""
from __future__ import annotations

from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from tritonnx.runtime.ops.fused_recurrent import OPS, SCHEMAS
from tritonnx.runtime.passes.framework import CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION, FusionRule, register_rule
from tritonnx.triton_kernels.rnn_reference import INPUTS, OUTPUTS

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


def explain(node) -> str | None:
    """Why a standard LSTM/GRU/RNN was left unfused."""
    return decline_reason(node)


register_rule(FusionRule(
    name="fuse_recurrent", priority=200, candidates=OPS,
    rules=tuple(_FuseRecurrent.rule(op, n) for op in OPS for n in range(len(OUTPUTS[op]), 0, -1)),
    explain=explain,
    schemas=SCHEMAS,
))
