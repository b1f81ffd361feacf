"""Graph passes and the fusion-rule framework.

The session runs one explicit, ordered list of passes on the loaded model
(`tritonnx.runtime.passes.pipeline.PASSES`):

1. ``shape_inference``  onnx's shape inference (types and shapes on every value);
2. ``fold_constants``   onnxscript's constant folder (Shape/Gather/Concat/Reshape chains, ...);
3. ``remove_dead``      dead nodes, functions and opset imports removed (onnx-ir passes);
4. ``fold_batchnorm``   BatchNormalization folded into the preceding Conv/ConvTranspose/Gemm
                        (onnxscript's ``FuseBatchNormInto*`` rules);
5. ``fusion``           the fusion rules below, by priority, then the candidate scan;
6. ``check``            shape inference again and ``onnx.checker``: the result is valid ONNX.

``graph_optimization_level=ORT_DISABLE_ALL`` keeps only 1 and 6; ``tritonnx.fusion=0`` skips 5
(every candidate is then reported declined with reason "fusion disabled").

Writing a fusion rule (the API the conv and recurrent engineers and plugins code against)
-----------------------------------------------------------------------------------------
A rule is a `FusionRule`: a name, an integer priority (built-ins at 100, 200, ...; lower runs
first and gets the first pick of the nodes), the standard-domain op types it is a candidate
fuser for, one or more onnxscript pattern rewrite rules (each with a ``pattern``, a ``check``
returning a ``MatchResult`` that says why it declines, and a ``rewrite`` emitting nodes of
domain ``tritonnx``, version 1), an ``explain`` function, and the ``OpSchema`` of every custom
op it emits. One file per fusion, e.g. ``runtime/passes/fuse_conv.py``::

    from onnxscript.rewriter import MatchResult, RewriteRuleClassBase
    from tritonnx.runtime.passes import FusionRule, register_rule, custom_schema

    class ConvReluMaxPool(RewriteRuleClassBase):
        '''MaxPool ∘ Relu ∘ Conv -> tritonnx::ConvReluPool.'''

        def pattern(self, op, x, w, b):
            return op.MaxPool(op.Relu(op.Conv(x, w, b, _outputs=["conv_out"])),
                              _outputs=["pool_out"])

        def check(self, context, x, w, b, conv_out, pool_out, **_) -> MatchResult:
            result = MatchResult()
            if w.const_value is None:
                return result.fail("weights are not constant")
            return result

        def rewrite(self, op, x, w, b, conv_out, pool_out, **_):
            conv, pool = conv_out.producer(), pool_out.producer()
            return op.ConvReluPool(x, w, b, _domain="tritonnx", _version=1, pool_kind="max", ...)

    def explain(node):                       # a Conv the rules left standing: why?
        users = [n.op_type for n, _ in node.outputs[0].uses()]
        if users != ["Relu"]:
            return f"Conv output goes to {users or 'the graph output'}, not to one Relu"
        return None                          # None: "no pattern of this rule matched"

    register_rule(FusionRule(
        name="conv_relu_pool", priority=100, candidates=("Conv",),
        rules=(ConvReluMaxPool().rule(),), explain=explain,
        schemas=(custom_schema("ConvReluPool", inputs=["X", "W", "B?"], outputs=["Y"],
                               attributes={"pool_kind": "string", ...}),)))

Modules in this package are imported by `builtin_rules()` (the first time a session needs the
rules), so adding a ``fuse_*.py`` file that calls `register_rule` at import is all it takes.
The handler that runs the custom op is registered like any other handler, in
``runtime/ops/<file>.py``: ``@register("ConvReluPool", since=1, domain="tritonnx")``.

What the framework does with the rules (`apply_fusion`):
- runs each `FusionRule`'s rewrite rules (``RewriteRuleSet.apply_to_model``) in priority
  order, recording every replacement: the new node, the rule, and the nodes it replaced
  (`FusedGroup`); a rule is skipped when the graph holds none of its ``candidates`` (its
  patterns must contain one of them; a rule listing no candidates always runs);
- then scans the graph (subgraphs included) for every candidate left standing (a node of the
  standard domain whose op type is in some rule's ``candidates``) and asks each such rule's
  ``explain(node)`` why; the answers are kept as `Declined` entries (onnxscript's rewriter
  does not report per-node reasons: when a matched value has other uses it refuses before the
  rule's check runs). ``explain`` returning None gives "no pattern of rule X matched here";
  an ``explain`` that raises is reported as such, never fatal;
- registers the rules' schemas with ``onnx.defs.register_schema`` (once per process), so the
  fused model passes ``onnx.checker`` and onnx shape inference, and adds the ``tritonnx``
  opset import.
During `apply_fusion`, `current_context()` returns the session's `ExecContext` (device,
kernels, tf32, ...) for a ``check`` that depends on it; outside it returns None.

The result is a `FusionReport` (`session.fusion_report()`, printed by ``tritonnx inspect``).

The framework's code lives in `tritonnx.runtime.passes.framework`; its names are re-exported here.
"""
from __future__ import annotations

from tritonnx.runtime.passes.framework import (
    APPLY_LOCK,
    CUSTOM_DOMAIN,
    CUSTOM_DOMAIN_VERSION,
    RULES,
    Declined,
    FusedGroup,
    FusionReport,
    FusionRule,
    RuleRegistry,
    apply_fusion,
    builtin_rules,
    current_context,
    custom_schema,
    recording,
    register_rule,
    register_schema,
    scan_candidates,
)

__all__ = [
    "APPLY_LOCK", "CUSTOM_DOMAIN", "CUSTOM_DOMAIN_VERSION", "Declined", "FusedGroup", "FusionReport",
    "FusionRule", "RULES", "RuleRegistry", "apply_fusion", "builtin_rules", "current_context",
    "custom_schema", "recording", "register_rule", "register_schema", "scan_candidates",
]
