"""The pass pipeline (folding, dead nodes, BatchNorm into Conv) and the fusion-rule framework."""
import numpy as np
import onnx
import onnx_ir as ir
import onnxruntime as ort
import pytest
import torch
from onnx import parser
from onnxscript.rewriter import MatchResult, RewriteRuleClassBase

from tritonnx.runtime import InferenceSession
from tritonnx.runtime import passes
from tritonnx.runtime.passes import FusionRule, RuleRegistry, apply_fusion, custom_schema
from tritonnx.runtime.registry import OPS

RNG = np.random.default_rng(1234)


def _ort(model, feed):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)


def _ops(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


def _floats(shape, scale=1.0, offset=0.0):
    values = (RNG.standard_normal(int(np.prod(shape))) * scale + offset).astype(np.float32)
    return ", ".join(f"{v:.6f}" for v in values)


# --------------------------------------------------------------------------- generic passes

def test_constant_folding_and_dead_nodes():
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[2, 3] x) => (float[2, 3] y)
    <float[3] k1 = {1.0, 2.0, 3.0}, float[3] k2 = {0.5, 0.5, 0.5}>
    { c = Add(k1, k2)
      unused = Sigmoid(x)
      s = Shape(x)
      r = Reshape(x, s)
      y = Mul(r, c) }
    """)
    s = InferenceSession(model)
    assert _ops(s.rewritten_model()) == ["Mul"]
    x = RNG.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_allclose(s.run(None, {"x": x})[0], _ort(model, {"x": x})[0], rtol=1e-6)


def test_castlike_keeps_saturate():
    model = parser.parse_model("""
    <ir_version: 10, opset_import: ["" : 21]>
    g (float[3] x, float8e4m3fn[1] like) => (float8e4m3fn[3] y) { y = CastLike<saturate = 0>(x, like) }
    """)
    node = InferenceSession(model).rewritten_model().graph.node[0]
    assert node.op_type == "CastLike" and [(a.name, a.i) for a in node.attribute] == [("saturate", 0)]


BN_MODEL = f"""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 2, 5, 5] x) => (float[N, 3, 5, 5] y)
<float[3, 2, 3, 3] w = {{{_floats((3, 2, 3, 3), 0.3)}}}, float[3] b = {{{_floats((3,), 0.1)}}},
 float[3] gamma = {{1.5, 0.5, -1.0}}, float[3] beta = {{0.1, 0.2, 0.3}},
 float[3] mean = {{0.05, -0.1, 0.2}}, float[3] var = {{0.9, 1.5, 0.25}}>
{{ c = Conv<pads=[1, 1, 1, 1]>(x, w, b)
   y = BatchNormalization<epsilon=0.001>(c, gamma, beta, mean, var) }}
"""


def test_batchnorm_folded_into_conv():
    model = parser.parse_model(BN_MODEL)
    s = InferenceSession(model, fusion=False)
    assert "BatchNormalization" not in _ops(s.rewritten_model())
    assert _ops(s.rewritten_model()) == ["Conv"]
    x = RNG.standard_normal((2, 2, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(s.run(None, {"x": x})[0], _ort(model, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_nothing_optimised_with_disable_all():
    from tritonnx.runtime import GraphOptimizationLevel, SessionOptions

    opts = SessionOptions()
    opts.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    s = InferenceSession(parser.parse_model(BN_MODEL), sess_options=opts)
    assert _ops(s.rewritten_model()) == ["Conv", "BatchNormalization"]
    assert all("fusion disabled" in d.reason for d in s.fusion_report().declined)


# --------------------------------------------------------------------------- fusion framework

class AddRelu(RewriteRuleClassBase):
    """Relu ∘ Add -> tritonnx::TestAddRelu (a toy fusion for the framework's tests)."""

    def __init__(self, op_name="TestAddRelu"):
        super().__init__(name=op_name)
        self.op_name = op_name

    def pattern(self, op, a, b):
        return op.Relu(op.Add(a, b, _outputs=["sum"]))

    def check(self, context, a, b, sum, **_):
        result = MatchResult()
        if b.const_value is None:
            return result.fail("B is not a constant")
        seen_contexts.append(passes.current_context())
        return result

    def rewrite(self, op, a, b, sum, **_):
        return op.op(self.op_name, a, b, _domain="tritonnx", _version=1, flavour="toy")


seen_contexts: list = []


def explain(node):
    users = [n.op_type for n, _ in node.outputs[0].uses()]
    if node.outputs[0].is_graph_output():
        users.append("the graph output")
    if node.inputs[1].const_value is None:
        return "B is not a constant"
    if users != ["Relu"]:
        return f"Add output goes to {users}, not to one Relu"
    return None


def TestAddRelu(a, b, *, flavour="toy"):  # noqa: N802 - named like the op
    return torch.relu(a + b)


def _rule(name="add_relu", priority=50, op_name="TestAddRelu"):
    return FusionRule(name=name, priority=priority, candidates=("Add",), rules=(AddRelu(op_name).rule(),),
                      explain=explain,
                      schemas=(custom_schema(op_name, inputs=["A", "B"], outputs=["Y"], attributes={"flavour": "string"}),))


FUSE_MODEL = """
<ir_version: 8, opset_import: ["" : 18]>
g (float[2, 3] x, float[3] v) => (float[2, 3] y1, float[2, 3] y2, float[2, 3] y3, float[2, 3] t2)
<float[3] b = {0.5, -1.0, 2.0}>
{ t1 = Add(x, b)
  y1 = Relu(t1)
  t2 = Add(x, b)
  y2 = Relu(t2)
  t3 = Add(x, v)
  y3 = Relu(t3) }
"""


@pytest.fixture()
def toy_rule(monkeypatch):
    monkeypatch.setitem(OPS.handlers, ("tritonnx", "TestAddRelu"), [])
    OPS.add("TestAddRelu", TestAddRelu, domain="tritonnx")
    rule = _rule()
    passes.builtin_rules()
    passes.register_rule(rule)
    yield rule
    passes.RULES.remove(rule.name)


def test_fusion_rewrites_reports_and_stays_valid(toy_rule):
    model = parser.parse_model(FUSE_MODEL)
    seen_contexts.clear()
    s = InferenceSession(model)
    fused = s.rewritten_model()
    assert _ops(fused).count("TestAddRelu") == 1
    assert _ops(fused).count("Add") == 2
    onnx.checker.check_model(fused, full_check=True)  # the schema is registered
    report = s.fusion_report()
    assert [(g.rule, g.op_type, g.replaced_ops) for g in report.fused] == [("add_relu", "TestAddRelu", ("Add", "Relu"))]
    declined = {d.node: d.reason for d in report.declined}
    assert len(declined) == 2
    assert any("not to one Relu" in r for r in declined.values())  # t2 is also a graph output
    assert any("B is not a constant" in r for r in declined.values())
    assert seen_contexts and seen_contexts[0] is s.context
    feed = {"x": RNG.standard_normal((2, 3)).astype(np.float32), "v": RNG.standard_normal(3).astype(np.float32)}
    for a, b in zip(s.run(None, feed), _ort(model, feed)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert "add_relu" in str(report)


def test_fusion_off_declines_every_candidate(toy_rule):
    s = InferenceSession(parser.parse_model(FUSE_MODEL), fusion=False)
    assert "TestAddRelu" not in _ops(s.rewritten_model())
    report = s.fusion_report()
    assert not report.fused and len(report.declined) == 3
    assert all("fusion disabled" in d.reason for d in report.declined)


def test_no_match_leaves_the_graph_alone(toy_rule):
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[2, 3] x) => (float[2, 3] y) <float[3] b = {1.0, 2.0, 3.0}>
    { t = Add(x, b)
      y = Sigmoid(t) }
    """)
    s = InferenceSession(model)
    assert _ops(s.rewritten_model()) == ["Add", "Sigmoid"]
    (d,) = s.fusion_report().declined
    assert d.op_type == "Add" and "['Sigmoid']" in d.reason


def test_lower_priority_runs_first():
    model = ir.serde.deserialize_model(parser.parse_model(FUSE_MODEL))
    late = _rule("late", priority=200, op_name="TestAddReluLate")
    early = _rule("early", priority=10, op_name="TestAddRelu")
    report = apply_fusion(model, RuleRegistry([late, early]))
    assert {g.rule for g in report.fused} == {"early"}
    assert [r.name for r in RuleRegistry([late, early]).ordered()] == ["early", "late"]
    # Each declined candidate carries one reason per rule that could have fused it.
    assert all([r for r, _ in d.reasons] == ["early", "late"] for d in report.declined)


def test_explain_that_raises_is_reported_not_fatal():
    def broken(node):
        raise KeyError("oops")

    rule = FusionRule("broken", 300, ("Add",), (), broken)
    model = ir.serde.deserialize_model(parser.parse_model(FUSE_MODEL))
    report = apply_fusion(model, RuleRegistry([rule]))
    assert len(report.declined) == 3 and all("explain() raised KeyError" in d.reason for d in report.declined)


def test_custom_schema_shape_inference():
    schema = custom_schema("TestAddRelu", inputs=["A", "B"], outputs=["Y"], attributes={"flavour": "string"})
    passes.register_schema(schema)
    assert passes.register_schema(schema) is False  # once per process
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18, "tritonnx" : 1]>
    g (float[2, 3] x, float[3] b) => (float y) { y = tritonnx.TestAddRelu<flavour="toy">(x, b) }
    """)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model)
    assert inferred.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_rule_runs_only_on_a_graph_holding_a_candidate():
    """A rule whose candidates are all absent is skipped (start-up cost); none listed: it runs."""
    def run(candidates):
        model = ir.serde.deserialize_model(parser.parse_model(FUSE_MODEL))
        rule = FusionRule("toy", 50, candidates, (AddRelu("TestAddRelu").rule(),), explain)
        return apply_fusion(model, RuleRegistry([rule]))

    assert len(run(("Add",)).fused) == 1
    assert len(run(()).fused) == 1
    assert not run(("Mul",)).fused  # no Mul in the graph: its pattern is not even tried
