"""Every zoo model through the executor's CUDA-graph path with the capture simulated on the CPU
(capture_sim.py: host syncs and host<->device copies raise inside the capture, as a real one
refuses them): each signature must be captured, none may fall back to eager runs, and the
replayed outputs equal the plain CPU session's. The real capture: tests/bench/test_gpu_capture.py."""
from __future__ import annotations

import pytest
import torch

import tritonnx.zoo
from capture_sim import CaptureBreak, OnDevice, SimulatedDevice, _to_device, simulate_on_gpu
from tritonnx import InferenceSession
from tritonnx.export import export_model

MODELS = list(tritonnx.zoo.names())
# triton 3.6's interpreter converts 1-element arrays to ints the way numpy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    cache = {}

    def get(name):
        if name not in cache:
            path = folder / f"{name}.onnx"
            export_model(name, path, config="tiny", verify=False)
            cache[name] = path
        return cache[name]
    return get


@pytest.mark.parametrize("model", MODELS)
def test_zoo_model_captures_in_simulation(model, exported, monkeypatch):
    path = exported(model)
    entry = tritonnx.zoo.get(model)
    feeds_cpu = list(entry.example_inputs("tiny", batch=2, seed=0))
    plain = InferenceSession(str(path), kernels="torch")  # the reference: the kernels' torch references
    names = [i.name for i in plain.get_inputs()]
    want = plain.run_torch(None, dict(zip(names, feeds_cpu)))

    sess = InferenceSession(str(path), kernels="triton")
    executor = sess._executor
    backend = simulate_on_gpu(executor, monkeypatch)
    outputs = tuple(o.name for o in sess.get_outputs())
    feeds = {n: _to_device(x.clone()) for n, x in zip(names, feeds_cpu)}
    got = executor.run(feeds, outputs)  # warm-up, capture, replay
    assert not executor.graph_fallbacks, f"{model}: {list(executor.graph_fallbacks.values())}"
    assert backend.captures == 1 and backend.replays == 1
    for g, w in zip(got, want):
        assert isinstance(g, OnDevice), "a result left the device"
        torch.testing.assert_close(g.as_subclass(torch.Tensor), w, rtol=1e-4, atol=1e-5)


def test_the_simulation_catches_what_a_capture_refuses():
    mode = SimulatedDevice()
    x = _to_device(torch.arange(4.0))
    host = torch.ones(4)
    breakers = [lambda: x.sum().item(), lambda: x.tolist(), lambda: bool(x.max() > 0), lambda: x.cpu(),
                lambda: x.to("cpu"), lambda: host.to("cuda"), lambda: torch.tensor([1, 2], device="cuda"),
                lambda: x[x > 1], lambda: torch.nonzero(x), lambda: int(x[0]), lambda: x.copy_(host)]
    mode.capturing = True
    for i, fn in enumerate(breakers):
        with mode, pytest.raises(CaptureBreak):
            fn()
    assert len(mode.breaks) == len(breakers)
    with mode:  # what a capture allows: device ops, allocations on the device, host values' syncs
        y = torch.zeros(4, device="cuda") + x * 2
        assert isinstance(y, OnDevice) and y.device.type == "cuda" and y.is_cuda
        assert host.sum().item() == 4 and torch.empty(3, device=x.device).shape == (3,)


def test_a_data_dependent_op_falls_back_and_says_why(monkeypatch):
    """NonZero's output shape depends on the values: a real capture refuses it, so must this."""
    from onnx import parser

    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[N] x) => (int64[1, M] y)
    { y = NonZero(x) }
    """)
    sess = InferenceSession(model)
    executor = sess._executor
    backend = simulate_on_gpu(executor, monkeypatch)
    x = _to_device(torch.tensor([1.0, 0.0, 2.0]))
    with pytest.warns(RuntimeWarning, match="CUDA-graph capture failed"):
        (y,) = executor.run({"x": x}, ("y",))
    assert y.tolist() == [[0, 2]]
    (reason,) = executor.graph_fallbacks.values()
    assert "CaptureBreak" in reason and backend.captures == 0
