"""OrtRunner refuses to time a CUDA-fed session that onnxruntime quietly put on the CPU (what it
does when the CUDA provider's libraries do not load), simulated here with the CPU build: it is
told CUDA is available, so its session falls back to the CPU provider as it would on the GPU."""
import pytest
import torch
from onnx import TensorProto, helper

from tritonnx.bench import ort as bench_ort


class _OnCuda:
    """A CPU tensor that says it lives on cuda:0 (the runner reads only these)."""

    def __init__(self, t):
        self._t = t
        self.device = torch.device("cuda", 0)
        self.shape = t.shape
        self.dtype = t.dtype

    def contiguous(self):
        return self

    def detach(self):
        return self._t


def _model():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def test_cuda_feeds_on_a_session_that_fell_back_to_the_cpu_raise(monkeypatch):
    ort = bench_ort.import_onnxruntime()
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("a real CUDA provider is here")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: type("S", (), {"cuda_stream": 0})())
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider did not load"):
        bench_ort.OrtRunner(_model(), {"x": _OnCuda(torch.tensor([-1.0, 2.0]))})
