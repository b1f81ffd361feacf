"""A demo tritonnx plugin (used by tests/runtime/test_plugins.py; never installed).

It adds a kernel for an op of its own domain (``demo.ext::Cube``) and a fusion rule
"Mul(x, Sigmoid(x)) -> tritonnx::DemoSwish" with its schema and kernel. Its entry point:

    [tritonnx.plugins]
    demo = tritonnx_demo_plugin:register
"""
from __future__ import annotations

import torch
from onnxscript.rewriter import RewriteRuleClassBase

from tritonnx.runtime.passes import FusionRule, custom_schema


class SwishRule(RewriteRuleClassBase):
    """Mul(x, Sigmoid(x)) -> tritonnx::DemoSwish."""

    def pattern(self, op, x):
        return op.Mul(x, op.Sigmoid(x))

    def rewrite(self, op, x):
        return op.DemoSwish(x, _domain="tritonnx", _version=1)


def DemoSwish(x):  # noqa: N802 - named like the op
    return x * torch.sigmoid(x)


def Cube(x):  # noqa: N802 - named like the op
    return x * x * x


def explain(node):
    users = [n.op_type for n, _ in node.outputs[0].uses()]
    return f"Sigmoid output goes to {users}, not to Mul(x, Sigmoid(x))"


def register(registry) -> None:
    registry.add_kernel("DemoSwish", DemoSwish, domain="tritonnx")
    registry.register("Cube", domain="demo.ext")(Cube)
    schema = custom_schema("DemoSwish", inputs=["X"], outputs=["Y"])
    registry.add_schema(schema)
    registry.add_rule(FusionRule("demo_swish", 500, ("Sigmoid",), (SwishRule().rule(),), explain, (schema,)))


def register_fails(registry) -> None:
    registry.register("Half", domain="demo.ext")(lambda x: x / 2)
    raise RuntimeError("this plugin is broken on purpose")
