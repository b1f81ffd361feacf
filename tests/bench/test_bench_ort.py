"""The onnxruntime provider's IOBinding plumbing, on the CPU (the same code binds CUDA pointers)."""
import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from tritonnx.bench.ort import OrtRunner


def _model(elem):
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Relu", ["m"], ["y"]),
         helper.make_node("Shape", ["y"], ["s"])], "g",
        [helper.make_tensor_value_info("a", elem, ["N", 5]), helper.make_tensor_value_info("b", elem, [5, 3])],
        [helper.make_tensor_value_info("y", elem, ["N", 3]), helper.make_tensor_value_info("s", TensorProto.INT64, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("dtype, elem", [(torch.float32, TensorProto.FLOAT), (torch.float16, TensorProto.FLOAT16)],
                         ids=["fp32", "fp16"])
def test_outputs_land_in_bound_torch_tensors(dtype, elem):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 5, generator=gen).to(dtype)
    b = torch.randn(5, 3, generator=gen).to(dtype)
    runner = OrtRunner(_model(elem), {"a": a, "b": b})
    y, s = runner.outputs
    y.fill_(float("nan"))  # poisoned: the next run must write every element through the binding
    out = runner()
    assert out[0] is y and out[0].dtype == dtype and out[1].tolist() == [4, 3]
    ref = torch.relu(a.double() @ b.double())
    assert torch.allclose(y.double(), ref, rtol=1e-2 if dtype == torch.float16 else 1e-5, atol=1e-3)
    assert runner.provider == "CPUExecutionProvider"


def test_feeds_on_mixed_devices_are_refused():
    with pytest.raises(RuntimeError, match="expected all on one CUDA device or the CPU"):
        OrtRunner(_model(TensorProto.FLOAT), {"a": torch.ones(2, 5), "b": torch.ones(5, 3, device="meta")})
