"""Executor placement: shape arithmetic runs on the host, device nodes read it where ONNX
reads shapes, and host values are moved to the device only where a device node computes on
them (checked on the CPU through the plan; the GPU tests check the devices)."""
import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import parser

from tritonnx.runtime import GraphOptimizationLevel, InferenceSession, SessionOptions

MODEL = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 3, 4] x, int64[N, T] tokens) => (float[N, 12] y, int64[2] shape, float[N, T, 5] e)
<float[16, 5] table = {""" + ", ".join(f"{v:.4f}" for v in np.random.default_rng(0).standard_normal(80)) + """}>
{
  sh = Shape(x)
  zero = Constant<value = int64[1] {0}>()
  n = Gather<axis = 0>(sh, zero)
  twelve = Constant<value = int64[1] {12}>()
  shape = Concat<axis = 0>(n, twelve)
  y = Reshape(x, shape)
  tsh = Shape(tokens)
  one = Constant<value = int64 {1}>()
  t = Gather<axis = 0>(tsh, one)
  start = Constant<value = int64 {0}>()
  step = Constant<value = int64 {1}>()
  pos = Range(start, t, step)
  pe = Gather<axis = 0>(table, pos)
  te = Gather<axis = 0>(table, tokens)
  e = Add(te, pe)
}
""")


def _feed(n=2, t=3):
    rng = np.random.default_rng(n)
    return {"x": rng.standard_normal((n, 3, 4)).astype(np.float32), "tokens": rng.integers(0, 16, (n, t)).astype(np.int64)}


@pytest.mark.parametrize("optimize", [True, False], ids=["optimized", "disable_all"])
def test_shape_arithmetic_on_host(optimize):
    opts = SessionOptions()
    if not optimize:
        opts.graph_optimization_level = GraphOptimizationLevel.ORT_DISABLE_ALL
    s = InferenceSession(MODEL, sess_options=opts)
    steps = {st.op_type + ":" + ",".join(st.outputs): st for st in s._executor.steps}
    host = {k for k, st in steps.items() if st.host}
    assert {"Shape:sh", "Gather:n", "Concat:shape", "Shape:tsh", "Gather:t", "Range:pos"} <= host
    assert not steps["Reshape:y"].host and steps["Reshape:y"].to_device == ()  # reads the shape on the host
    assert not steps["Gather:pe"].host and steps["Gather:pe"].to_device == (1,)  # computes with positions
    assert not steps["Gather:te"].host and not steps["Add:e"].host
    ref = ort.InferenceSession(MODEL.SerializeToString(), providers=["CPUExecutionProvider"])
    for n, t in ((2, 3), (1, 5)):
        feed = _feed(n, t)
        for a, b in zip(s.run(None, feed), ref.run(None, feed)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        outs = s.run_torch(None, feed)
        assert all(o.device == s.device for o in outs)


@pytest.mark.gpu
def test_shape_arithmetic_on_host_with_cuda_graphs():
    s = InferenceSession(MODEL, providers=["CUDAExecutionProvider"])
    ref = ort.InferenceSession(MODEL.SerializeToString(), providers=["CPUExecutionProvider"])
    for n, t in ((2, 3), (1, 5), (2, 3)):
        feed = _feed(n, t)
        outs = s.run_torch(None, {k: torch.from_numpy(v).cuda() for k, v in feed.items()})
        assert all(o.is_cuda for o in outs)
        for a, b in zip(outs, ref.run(None, feed)):
            np.testing.assert_allclose(a.cpu().numpy(), b, rtol=1e-5, atol=1e-6)
    assert not s._executor._no_graph, s._executor._no_graph  # every signature captured
