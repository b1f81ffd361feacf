"""The compile stage (`tritonnx.runtime.compiler`) on its own: model + settings -> executor,
fusion report, rewritten model; the session is a thin user of it."""
import numpy as np
import onnx_ir as ir
import torch
from onnx import parser

from tritonnx.runtime import InferenceSession, compiler
from tritonnx.runtime.context import build_context

MODEL = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[2, 3] x, float[2] b) => (float[3, 2] y)
<float[2] b = {1.0, 2.0}, int64[2] shape = {3, 2}>
{
  r = Reshape(x, shape)
  t = Relu(r)
  y = Add(t, b)
}
""")


def test_compile_model_gives_executor_report_and_rewritten_model():
    tools = compiler.toolchain(build_context(torch.device("cpu"), {"plugins": False}, {}))
    compiled = compiler.compile_model(compiler.convert(MODEL, tools), tools)
    assert isinstance(compiled.rewritten, ir.Model)
    assert compiled.report is not None
    assert compiled.executor.input_names == ("x",)  # initializer inputs are constants here
    x = torch.arange(6, dtype=torch.float32).reshape(2, 3) - 2
    (y,) = compiled.executor.run({"x": x}, ["y"])
    torch.testing.assert_close(y, torch.relu(x.reshape(3, 2)) + torch.tensor([1.0, 2.0]))


def test_unfixed_initializers_stay_feedable():
    tools = compiler.toolchain(build_context(torch.device("cpu"), {"plugins": False}, {}))
    compiled = compiler.compile_model(MODEL, tools, optimize=False, fusion=False, fixed_initializers=False)
    assert compiled.executor.input_names == ("x", "b")


def test_session_uses_one_compile_for_both_executors():
    s = InferenceSession(MODEL, plugins=False)
    x = np.ones((2, 3), np.float32)
    (y,) = s.run(None, {"x": x})
    (y2,) = s.run(None, {"x": x, "b": np.zeros(2, np.float32)})  # overrides an initializer
    np.testing.assert_array_equal(y - np.array([1, 2], np.float32), y2)
    assert s._override_executor is not None and s._override_executor is not s._executor
