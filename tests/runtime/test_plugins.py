"""Plugins through the entry-point group `tritonnx.plugins` (a demo package in plugin_pkg/)."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import parser

from tritonnx.errors import NotImplemented
from tritonnx.runtime import InferenceSession
from tritonnx.runtime.plugins import GROUP, discover
from tritonnx.runtime.registry import OPS

PLUGIN_SRC = Path(__file__).parent / "plugin_pkg"

MODEL = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18, "demo.ext" : 1]>
g (float[2, 3] x) => (float[2, 3] y, float[2, 3] z)
{ s = Sigmoid(x)
  y = Mul(x, s)
  z = demo.ext.Cube(x) }
""")


@pytest.fixture()
def plugin_env(tmp_path, monkeypatch):
    """Make the demo plugin's entry points discoverable without installing anything."""
    dist = tmp_path / "tritonnx_demo_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tritonnx-demo-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{GROUP}]\n"
        "demo = tritonnx_demo_plugin:register\n"
        "half = tritonnx_demo_plugin:register_fails\n"
        "missing = tritonnx_no_such_module:register\n"
    )
    monkeypatch.syspath_prepend(str(PLUGIN_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_plugin_adds_kernel_schema_and_rule(plugin_env):
    assert {"demo", "half", "missing"} <= {ep.name for ep in discover()}
    with pytest.warns(RuntimeWarning) as record:
        s = InferenceSession(MODEL)
    messages = [str(w.message) for w in record]
    assert any("plugin half" in m and "broken on purpose" in m for m in messages)
    assert any("plugin missing" in m and "failed to load" in m for m in messages)
    assert s.plugins == ["demo"]
    fused = s.rewritten_model()
    assert [n.op_type for n in fused.graph.node] == ["DemoSwish", "Cube"]
    assert [g.rule for g in s.fusion_report().fused] == ["demo_swish"]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    y, z = s.run(None, {"x": x})
    np.testing.assert_allclose(y, x / (1 + np.exp(-x)), rtol=1e-6)
    np.testing.assert_allclose(z, x ** 3, rtol=1e-6)
    # The half-registered plugin was undone; nothing leaked into the built-in registry.
    assert s._tools.ops.resolve("demo.ext", "Half", 1) is None
    assert OPS.resolve("demo.ext", "Cube", 1) is None


def test_plugins_off(plugin_env):
    with pytest.raises(NotImplemented, match="demo.ext::Cube"):
        InferenceSession(MODEL, plugins=False)


def test_standard_model_unchanged_by_plugin_rule_decline(plugin_env):
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[2, 3] x) => (float[2, 3] y) { s = Sigmoid(x)
      y = Add(x, s) }
    """)
    with pytest.warns(RuntimeWarning):
        s = InferenceSession(model)
    (d,) = s.fusion_report().declined
    assert d.op_type == "Sigmoid" and "demo_swish" in d.reason and "['Add']" in d.reason
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(s.run(None, {"x": x})[0], ref.run(None, {"x": x})[0], rtol=1e-6)
