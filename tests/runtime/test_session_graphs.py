"""The CUDA-graph cache logic (signatures, LRU of max_shapes, static inputs, cloned outputs,
eager fallback when capture fails), exercised on the CPU with a stand-in backend that
records the captured function and re-runs it on replay. The real capture: the gpu tests."""
import dataclasses

import numpy as np
import pytest
import torch
from onnx import parser

from tritonnx.runtime import InferenceSession

MODEL = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 3] x) => (float[N, 3] y, float[N, 3] x_again)
<float[3] b = {1.0, 2.0, 3.0}>
{ t = Add(x, b)
  y = Relu(t)
  x_again = Identity(x) }
""")


class StandInGraphs:
    """Captures = remembers the function; replay = runs it again over the static inputs."""

    def __init__(self, fail_rows=()):
        self.fail_rows = set(fail_rows)
        self.warmups = self.captures = self.replays = 0

    def warmup(self, fn):
        self.warmups += 1
        fn()

    def capture(self, fn):
        outputs = fn()
        if outputs[0].shape[0] in self.fail_rows:
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captures += 1
        return (fn, outputs), outputs

    def replay(self, graph):
        self.replays += 1
        fn, outputs = graph
        for static, fresh in zip(outputs, fn()):
            static.copy_(fresh)

    def recover(self):
        pass


def _session(max_shapes=2, fail_rows=()):
    s = InferenceSession(MODEL, cuda_graphs_max_shapes=max_shapes)
    ex = s._executor
    ex.ctx = dataclasses.replace(ex.ctx, cuda_graphs=True, cuda_graphs_max_shapes=max_shapes)
    ex.graph_backend = StandInGraphs(fail_rows)
    return s, ex


def _x(n, seed):
    return np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)


def _expected(x):
    return np.maximum(x + np.array([1.0, 2.0, 3.0], np.float32), 0)


def test_replay_per_signature_with_lru():
    s, ex = _session(max_shapes=2)
    backend = ex.graph_backend
    for i, n in enumerate([1, 2, 1, 3, 1, 2]):
        x = _x(n, i)
        y, x_again = s.run(None, {"x": x})
        np.testing.assert_allclose(y, _expected(x), rtol=1e-6)
        np.testing.assert_array_equal(x_again, x)
    # captures: 1, 2, (1 replay), 3 evicts 2, (1 replay), 2 again
    assert backend.captures == 4 and backend.replays == 6
    assert [sig[0][1] for sig in ex.captured_signatures] == [(1, 3), (2, 3)]


def test_results_are_not_the_static_buffers():
    s, ex = _session()
    first = s.run_torch(None, {"x": torch.from_numpy(_x(2, 0))})[0]
    kept = first.clone()
    s.run_torch(None, {"x": torch.from_numpy(_x(2, 1))})
    torch.testing.assert_close(first, kept)


def test_capture_failure_falls_back_to_eager_once():
    s, ex = _session(fail_rows={2})
    with pytest.warns(RuntimeWarning, match="CUDA-graph capture failed.*running eagerly"):
        y = s.run(None, {"x": _x(2, 0)})[0]
    np.testing.assert_allclose(y, _expected(_x(2, 0)), rtol=1e-6)
    y = s.run(None, {"x": _x(2, 1)})[0]  # no second warning, no second capture attempt
    np.testing.assert_allclose(y, _expected(_x(2, 1)), rtol=1e-6)
    assert list(ex._no_graph) and ex.graph_backend.captures == 0
    s.run(None, {"x": _x(1, 0)})  # another signature still captures
    assert ex.graph_backend.captures == 1
