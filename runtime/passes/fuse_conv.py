"""Conv fusions into ``tritonnx::ConvReluPool`` (domain "tritonnx", version 1).

Algebra (A = Relu | LeakyRelu(alpha) | Clip(min, max); BatchNorm already folded into the Conv):

    MaxPool ∘ A ∘ Conv          -> ConvReluPool(pool="max")   max(A(z + b)) == A(max(z) + b), A monotone
    AveragePool ∘ A ∘ Conv      -> ConvReluPool(pool="avg")   mean of A(z + b) over the window
    A ∘ Add(Conv(x), r)         -> ConvReluPool(X, W, B, R)    A(z + b + r)       (ResNet's residual)
    A ∘ Conv                    -> ConvReluPool(pool="none")

One `FusionRule` ("conv_relu_pool", priority 100) holds every pattern. onnxscript's rewriter
visits nodes in graph order and tries each pattern rooted at the visited node, so the Relu of a
Conv->Relu->MaxPool chain is visited (and would match A ∘ Conv) before its MaxPool: the A ∘ Conv
check therefore declines when the activation's only consumer is a pool the pool pattern accepts.

A match is declined, with the reason recorded for `session.fusion_report()`, when: the Conv is
not 2-D, its weights are not constant, its dtype is not fp32/fp16/bf16, a Clip bound is not a
constant, a pool has dilations, a second output (MaxPool Indices) or pads not smaller than its
window, a max pool follows a non-monotone LeakyRelu (alpha < 0), the residual Add broadcasts, or
an intermediate value has another use (onnxscript refuses those before a check runs; `explain`
names them), or it is a grouped conv with fewer than 16 output channels per group (depthwise and
ResNeXt-like: the kernel computes them correctly, but its >= 32-wide tiles would be mostly
padding). Other grouped convolutions (AlexNet's two towers) are fused.

This file holds the rule only (patterns, checks, rewrites, explain). The fused op itself (its
attributes and their defaults, the attributes emitted for a match, the schema with its shape
inference, the handler) is `tritonnx.runtime.ops.fused_conv`.
"""
from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from tritonnx.runtime.ops import fused_conv
from tritonnx.runtime.passes.framework import CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION, FusionRule, register_rule
from tritonnx.runtime.registry import MS_DOMAIN, is_standard_domain

ACT_OPS = tuple(fused_conv.ACTIVATION_OPS)
POOL_OPS = fused_conv.POOL_OPS
FLOAT_TYPES = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16)
#: Grouped convs with fewer output channels per group are declined: the kernel's tiles are
#: >= 32 channels wide and one group per program (correct, but mostly padding; unmeasured).
MIN_OUT_PER_GROUP = 16


# ----------------------------------------------------------------------------- checks
def _single_use(value: ir.Value, what: str) -> str | None:
    if value.is_graph_output():
        return f"{what} output {value.name!r} is a graph output"
    n = len(value.uses())
    if n != 1:
        return f"{what} output {value.name!r} has {n} uses"
    return None


def conv_problem(conv: ir.Node) -> str | None:
    """Why this Conv cannot be the fused kernel's convolution (None: it can)."""
    if len(conv.inputs) < 2 or conv.inputs[1] is None:
        return "Conv has no weight input"
    x, w = conv.inputs[0], conv.inputs[1]
    if w.const_value is None:
        return f"weights {w.name!r} are not constant (not an initializer or Constant)"
    if len(w.const_value.shape) != 4:
        return f"not a 2-D convolution (weight rank {len(w.const_value.shape)})"
    if x.dtype is not None and x.dtype not in FLOAT_TYPES:
        return f"dtype {x.dtype.name}: the kernel supports float, float16 and bfloat16"
    pads = conv.attributes.get_ints("pads", None)
    if pads is not None and min(pads) < 0:
        return f"negative pads {list(pads)}"
    group = conv.attributes.get_int("group", 1)
    out_per_group = w.const_value.shape[0] // max(group, 1)
    if group > 1 and out_per_group < MIN_OUT_PER_GROUP:
        return (f"grouped conv with {out_per_group} output channel(s) per group (group={group}, depthwise-like): "
                f"most of each GEMM tile would be padding; left to the unfused conv")
    return None


def act_problem(act: ir.Node, *, before_max_pool: bool = False) -> str | None:
    """Why this Relu/LeakyRelu/Clip cannot be the kernel's activation (None: it can)."""
    if act.op_type == "Clip":
        for i, name in ((1, "min"), (2, "max")):
            if len(act.inputs) > i and act.inputs[i] is not None and act.inputs[i].const_value is None:
                return f"Clip {name} bound {act.inputs[i].name!r} is not a constant"
    if act.op_type == "LeakyRelu" and before_max_pool and act.attributes.get_float("alpha", 0.01) < 0:
        return "MaxPool after LeakyRelu with alpha < 0 (not monotone)"
    return None


def pool_problem(pool: ir.Node) -> str | None:
    """Why this MaxPool/AveragePool cannot be fused into the kernel's epilogue (None: it can)."""
    attrs = pool.attributes
    kernel = attrs.get_ints("kernel_shape", None)
    if kernel is None or len(kernel) != 2:
        return f"{pool.op_type} is not 2-D (kernel_shape {kernel})"
    if len(pool.outputs) > 1 and pool.outputs[1].uses():
        return "MaxPool Indices output is used"
    if any(d != 1 for d in attrs.get_ints("dilations", None) or ()):
        return f"{pool.op_type} dilations {list(attrs.get_ints('dilations'))} are not supported"
    if attrs.get_int("storage_order", 0) != 0:
        return "MaxPool storage_order=1 is not supported"
    pads = attrs.get_ints("pads", None) or (0, 0, 0, 0)
    if any(p >= k for p, k in zip(pads, tuple(kernel) * 2)) or min(pads) < 0:
        return f"{pool.op_type} pads {list(pads)} not in [0, kernel {list(kernel)})"
    return None


def residual_problem(add: ir.Node, conv_out: ir.Value) -> str | None:
    """Why this Add cannot be the kernel's residual add (None: it can)."""
    other = add.inputs[1] if add.inputs[0] is conv_out else add.inputs[0]
    if other is None or other.shape is None or conv_out.shape is None:
        return "residual Add: shapes unknown"
    if other.shape != conv_out.shape:
        return f"residual Add broadcasts ({other.shape} + {conv_out.shape})"
    if other.dtype is not None and conv_out.dtype is not None and other.dtype != conv_out.dtype:
        return f"residual Add mixes {other.dtype.name} and {conv_out.dtype.name}"
    return None


# ----------------------------------------------------------------------------- emission
def _emit(op, conv: ir.Node, residual: ir.Value | None, attrs: dict):
    inputs = [conv.inputs[0], conv.inputs[1], conv.inputs[2] if len(conv.inputs) > 2 else None, residual]
    while inputs[-1] is None:
        inputs.pop()
    return getattr(op, fused_conv.OP_TYPE)(*inputs, _domain=CUSTOM_DOMAIN, _version=CUSTOM_DOMAIN_VERSION, **attrs)


# ----------------------------------------------------------------------------- patterns
def _act_pattern(op, kind: str, v):
    if kind == "Relu":
        return op.Relu(v, _outputs=["act_out"])
    if kind == "LeakyRelu":
        return op.LeakyRelu(v, _outputs=["act_out"])
    return op.Clip(v, _allow_other_inputs=True, _outputs=["act_out"])


class ConvActPool(RewriteRuleClassBase):
    """Pool ∘ A ∘ Conv -> tritonnx::ConvReluPool(pool="max"|"avg")."""

    def __init__(self, act: str, pool: str):
        super().__init__(f"Conv{act}{pool}")
        self.act, self.pool = act, pool

    def pattern(self, op, x):
        conv_out = op.Conv(x, _allow_other_inputs=True, _outputs=["conv_out"])
        act_out = _act_pattern(op, self.act, conv_out)
        return getattr(op, self.pool)(act_out, _outputs=["pool_out"])

    def check(self, context, x, conv_out, act_out, pool_out, **_) -> MatchResult:
        result = MatchResult()
        why = (conv_problem(conv_out.producer()) or act_problem(act_out.producer(), before_max_pool=self.pool == "MaxPool")
               or pool_problem(pool_out.producer()))
        return result.fail(why) if why else result

    def rewrite(self, op, x, conv_out, act_out, pool_out, **_):
        conv = conv_out.producer()
        return _emit(op, conv, None, fused_conv.fused_attributes(conv, act_out.producer(), pool_out.producer()))


class ConvAddAct(RewriteRuleClassBase):
    """A ∘ Add(Conv(x), r) -> tritonnx::ConvReluPool(X, W, B, R) (either Add operand order)."""

    def __init__(self, act: str, conv_first: bool):
        super().__init__(f"Conv{'Add' if conv_first else 'RevAdd'}{act}")
        self.act, self.conv_first = act, conv_first

    def pattern(self, op, x, r):
        conv_out = op.Conv(x, _allow_other_inputs=True, _outputs=["conv_out"])
        added = op.Add(conv_out, r) if self.conv_first else op.Add(r, conv_out)
        return _act_pattern(op, self.act, added)

    def check(self, context, x, r, conv_out, act_out, **_) -> MatchResult:
        result = MatchResult()
        add = act_out.producer().inputs[0].producer()
        why = conv_problem(conv_out.producer()) or act_problem(act_out.producer()) or residual_problem(add, conv_out)
        if why:
            return result.fail(why)
        other = r.producer()
        if (other is not None and other.op_type == "Conv" and is_standard_domain(other.domain)
                and conv_problem(other) is None and _single_use(r, "Conv") is None
                and _weight_size(other) > _weight_size(conv_out.producer())):
            return result.fail("the other Conv of the Add is larger: it takes the residual pattern")
        return result

    def rewrite(self, op, x, r, conv_out, act_out, **_):
        conv = conv_out.producer()
        return _emit(op, conv, r, fused_conv.fused_attributes(conv, act_out.producer(), None))


def _weight_size(conv: ir.Node) -> int:
    return int(np.prod(conv.inputs[1].const_value.shape))


def _pool_takes(act_out: ir.Value) -> bool:
    """True when act_out's only consumer is a pool that the pool pattern will fuse."""
    uses = act_out.uses()
    if len(uses) != 1 or act_out.is_graph_output():
        return False
    user = uses[0].node
    return (user.op_type in POOL_OPS and is_standard_domain(user.domain) and pool_problem(user) is None
            and act_problem(act_out.producer(), before_max_pool=user.op_type == "MaxPool") is None)


class ConvAct(RewriteRuleClassBase):
    """A ∘ Conv -> tritonnx::ConvReluPool(pool="none")."""

    def __init__(self, act: str):
        super().__init__(f"Conv{act}")
        self.act = act

    def pattern(self, op, x):
        conv_out = op.Conv(x, _allow_other_inputs=True, _outputs=["conv_out"])
        return _act_pattern(op, self.act, conv_out)

    def check(self, context, x, conv_out, act_out, **_) -> MatchResult:
        result = MatchResult()
        if _pool_takes(act_out):
            return result.fail("left to the Conv+activation+pool pattern")
        why = conv_problem(conv_out.producer()) or act_problem(act_out.producer())
        return result.fail(why) if why else result

    def rewrite(self, op, x, conv_out, act_out, **_):
        conv = conv_out.producer()
        return _emit(op, conv, None, fused_conv.fused_attributes(conv, act_out.producer(), None))


# ----------------------------------------------------------------------------- explain
def explain(node: ir.Node) -> str | None:
    """Why a Conv was left unfused (the first problem found along its would-be chain)."""
    why = conv_problem(node)
    if why:
        return why
    out = node.outputs[0]
    why = _single_use(out, "Conv")
    if why:
        return why
    user = out.uses()[0].node
    if user.domain == CUSTOM_DOMAIN:
        return (f"Conv output feeds fused node {user.name or user.op_type} as its residual input "
                "(the other Conv of the Add took the pattern)")
    if user.op_type == "Add":
        why = residual_problem(user, out) or _single_use(user.outputs[0], "residual Add")
        if why:
            return why
        user = user.outputs[0].uses()[0].node
        if user.op_type not in ACT_OPS:
            return f"residual Add output goes to {user.op_type}, not to Relu/LeakyRelu/Clip"
        return act_problem(user)
    if user.op_type not in ACT_OPS:
        return f"Conv output goes to {user.op_type}, not to Relu/LeakyRelu/Clip (or Add then one of them)"
    return act_problem(user)


RULES = tuple(
    [ConvActPool.rule(act, pool) for pool in POOL_OPS for act in ACT_OPS]
    + [ConvAddAct.rule(act, first) for act in ACT_OPS for first in (True, False)]
    + [ConvAct.rule(act) for act in ACT_OPS]
)

register_rule(FusionRule(name="conv_relu_pool", priority=100, candidates=("Conv",), rules=RULES,
                         explain=explain, schemas=(fused_conv.SCHEMA,)))


#: onnxruntime's ``com.microsoft::FusedConv`` activations the Conv patterns above can take
_MS_ACTIVATIONS = {"Relu": (), "LeakyRelu": ("alpha",)}


def split_ms_fused_conv(model: ir.Model) -> int:
    """``com.microsoft::FusedConv`` (what onnxruntime's optimizer writes for Conv+Relu) back
    into Conv -> Relu / LeakyRelu, so the patterns above see it (FusedConv + MaxPool becomes a
    ConvReluPool). A FusedConv with a sum input (Z) or another activation is left as it is.
    Returns how many were split."""
    count = 0
    for node in list(ir.traversal.RecursiveGraphIterator(model.graph)):
        if node.domain != MS_DOMAIN or node.op_type != "FusedConv" or len(node.inputs) > 3:
            continue
        act = node.attributes.get("activation")
        act = act.as_string() if act is not None else None
        if act not in _MS_ACTIVATIONS:
            continue
        params = node.attributes.get("activation_params")
        params = list(params.as_floats()) if params is not None else []
        conv_attrs = [a for name, a in node.attributes.items() if name not in ("activation", "activation_params")]
        conv = ir.Node("", "Conv", node.inputs, conv_attrs, num_outputs=1, name=node.name)
        act_attrs = [ir.AttrFloat32(name, value) for name, value in zip(_MS_ACTIVATIONS[act], params)]
        activation = ir.Node("", act, conv.outputs, act_attrs, num_outputs=1, name=f"{node.name}_{act}")
        ir.convenience.replace_nodes_and_values(node.graph, node, [node], [conv, activation],
                                                [node.outputs[0]], [activation.outputs[0]])
        count += 1
    return count
