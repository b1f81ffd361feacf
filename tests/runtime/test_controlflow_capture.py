"""Control flow through the executor's CUDA-graph path with the capture simulated on the CPU
(capture_sim.py: a host sync or a host<->device copy inside the capture raises, as a real one
refuses it). A Loop whose trip count is fed from the host and an If decided by shapes are
captured (no sync, no fallback) and replay the right values; an If whose condition is computed
on the device syncs once, and its signature falls back to eager with one warning."""
from __future__ import annotations

import dataclasses
import warnings
from types import MappingProxyType

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from capture_sim import CUDA, OnDevice, _to_device, simulate_on_gpu
from tritonnx.runtime import InferenceSession
from tritonnx.runtime.executor import _HOST, _subgraphs_of

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _simulate_bodies(executor) -> None:
    """`simulate_on_gpu` for the nested executors of every If/Loop/Scan body too."""
    for step in executor.steps:
        for sub in _subgraphs_of(step):
            ex = sub.executor
            sub.device = ex.device = CUDA
            ex.ctx = dataclasses.replace(ex.ctx, device=CUDA)
            ex.weights = {k: (v if k.endswith(_HOST) or not isinstance(v, torch.Tensor) else _to_device(v))
                          for k, v in ex.weights.items()}
            ex.steps = tuple(ex._bind(s) if s.host else ex._bind(dataclasses.replace(
                s, prepared=_to_device(s.prepared), attrs=MappingProxyType(_to_device(dict(s.attrs)))))
                for s in ex.steps)
            _simulate_bodies(ex)


def _session(model, monkeypatch):
    sess = InferenceSession(model.SerializeToString(), fusion=False)
    backend = simulate_on_gpu(sess._executor, monkeypatch)
    _simulate_bodies(sess._executor)
    return sess, backend


def _loop_model():
    """Loop(M from the host): acc = acc * w + i (w an outer initializer, i the host iteration
    number moved to the device inside the body), a scan output per step."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F), helper.make_node("Mul", ["acc_in", "w"], ["aw"]),
         helper.make_node("Add", ["aw", "fi"], ["acc_out"]), helper.make_node("Identity", ["acc_out"], ["step"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", I64, []), _vi("cond_in", B, []), _vi("acc_in", F, [3])],
        [_vi("cond_out", B, []), _vi("acc_out", F, [3]), _vi("step", F, [3])])
    graph = helper.make_graph([helper.make_node("Loop", ["M", "", "acc0"], ["acc", "steps"], body=body)], "g",
                              [_vi("acc0", F, [3]), _vi("M", I64, [])], [_vi("acc", F, [3]), _vi("steps", F, ["T", 3])],
                              initializer=[numpy_helper.from_array(np.array([0.5, 1.0, 2.0], np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


def _reference(m: int, acc0: np.ndarray):
    acc, steps = acc0.copy(), []
    for i in range(m):
        acc = acc * np.array([0.5, 1.0, 2.0], np.float32) + i
        steps.append(acc.copy())
    return acc, np.stack(steps)


def test_loop_with_host_trip_count_is_captured(monkeypatch):
    sess, backend = _session(_loop_model(), monkeypatch)
    ex = sess._executor
    acc0 = np.array([1.0, -1.0, 2.0], np.float32)
    for m in (3, 4, 3):
        feeds = {"acc0": _to_device(torch.from_numpy(acc0.copy())), "M": torch.tensor(m)}  # M stays on the host
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no capture fallback warning
            acc, steps = ex.run(feeds, ("acc", "steps"))
        assert isinstance(acc, OnDevice) and isinstance(steps, OnDevice)
        want_acc, want_steps = _reference(m, acc0)
        np.testing.assert_allclose(acc.as_subclass(torch.Tensor).numpy(), want_acc)
        np.testing.assert_allclose(steps.as_subclass(torch.Tensor).numpy(), want_steps)
    assert not ex.graph_fallbacks
    assert backend.captures == 2 and backend.replays == 3


def test_if_on_a_device_condition_falls_back_once(monkeypatch):
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["a"])], "then", [], [_vi("a", F, [3])])
    els = helper.make_graph([helper.make_node("Neg", ["x"], ["b"])], "else", [], [_vi("b", F, [3])])
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
         helper.make_node("Greater", ["s", "zero"], ["positive"]),
         helper.make_node("If", ["positive"], ["y"], then_branch=then, else_branch=els)],
        "g", [_vi("x", F, [3])], [_vi("y", F, [3])],
        initializer=[numpy_helper.from_array(np.array(0.0, np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    sess, backend = _session(model, monkeypatch)
    ex = sess._executor
    # the eager fallback runs outside the backend's calls: "cuda" is simulated for it too
    with pytest.warns(RuntimeWarning, match="CUDA-graph capture failed.*If"), backend.mode:
        y = ex.run({"x": _to_device(torch.tensor([1.0, -2.0, 3.0]))}, ("y",))[0]
    np.testing.assert_allclose(y.as_subclass(torch.Tensor).numpy(), [1.0, 0.0, 3.0])
    with warnings.catch_warnings(), backend.mode:
        warnings.simplefilter("error")  # the warning comes once per signature
        y = ex.run({"x": _to_device(torch.tensor([-1.0, -2.0, 1.0]))}, ("y",))[0]
    np.testing.assert_allclose(y.as_subclass(torch.Tensor).numpy(), [1.0, 2.0, -1.0])
    assert len(ex.graph_fallbacks) == 1 and backend.captures == 0


def test_if_decided_by_shapes_is_captured(monkeypatch):
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["a"])], "then", [], [_vi("a", F, ["N"])])
    els = helper.make_graph([helper.make_node("Neg", ["x"], ["b"])], "else", [], [_vi("b", F, ["N"])])
    graph = helper.make_graph(
        [helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("ReduceProd", ["shape"], ["n"], keepdims=0),
         helper.make_node("Greater", ["n", "two"], ["big"]),
         helper.make_node("If", ["big"], ["y"], then_branch=then, else_branch=els)],
        "g", [_vi("x", F, ["N"])], [_vi("y", F, ["N"])],
        initializer=[numpy_helper.from_array(np.array(2, np.int64), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    sess, backend = _session(model, monkeypatch)
    ex = sess._executor
    for x, want in (([1.0, -2.0, 3.0], [1.0, 0.0, 3.0]), ([1.0, -2.0], [-1.0, 2.0]), ([-1.0, 5.0, -3.0], [0.0, 5.0, 0.0])):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            y = ex.run({"x": _to_device(torch.tensor(x))}, ("y",))[0]
        np.testing.assert_allclose(y.as_subclass(torch.Tensor).numpy(), want)
    assert not ex.graph_fallbacks and backend.captures == 2 and backend.replays == 3
