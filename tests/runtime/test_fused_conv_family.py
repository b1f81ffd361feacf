"""The ConvReluPool family module (runtime/ops/fused_conv.py) owns the op's attributes and their
defaults, and one attributes -> kernel keywords translation shared by the handler, the schema's
shape inference and the kernel benchmark."""
from __future__ import annotations

import math

import onnx
import onnx.helper
import onnx.shape_inference
import pytest
import torch

from tritonnx.runtime.ops import fused_conv
from tritonnx.runtime.passes import builtin_rules, register_schema
from tritonnx.triton_kernels.conv_relu_pool import conv_relu_pool_reference

ATTRS = {"pads": [1, 1, 1, 1], "activation": "leaky_relu", "alpha": 0.2, "pool": "avg",
         "pool_kernel": [2, 2], "pool_strides": [2, 2], "pool_auto_pad": "SAME_UPPER"}


def test_schema_declares_exactly_the_attributes():
    assert {a for a in fused_conv.SCHEMA.attributes} == set(fused_conv.ATTRIBUTES)


def test_absent_activation_and_pool_mean_none():
    """Defaults: an absent ``activation`` is no activation (as the rule emits it and the bench
    reads it; the handler used to default to relu), an absent ``pool`` no pool."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 5, 5, generator=gen)
    w = torch.randn(3, 2, 3, 3, generator=gen)
    got = fused_conv.ConvReluPool(x, w, ctx=None)
    want = torch.nn.functional.conv2d(x, w)
    assert (want < 0).any()  # negative outputs kept: no Relu
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    kw = fused_conv.kernel_kwargs({}, (5, 5), (3, 3))
    assert kw["activation"] == "none" and kw["pool"] == "none" and "pool_kernel" not in kw


def test_unknown_attribute_is_an_error():
    with pytest.raises(Exception, match="unknown attribute"):
        fused_conv.kernel_kwargs({"activaton": "relu"}, (5, 5), (3, 3))


def test_shape_inference_and_handler_agree():
    builtin_rules()
    register_schema(fused_conv.SCHEMA)
    node = onnx.helper.make_node("ConvReluPool", ["x", "w"], ["y"], domain="tritonnx", **ATTRS)
    graph = onnx.helper.make_graph(
        [node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 7, 7]),
                      onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [4, 2, 3, 3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18),
                                                         onnx.helper.make_opsetid("tritonnx", 1)])
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    x, w = torch.randn(1, 2, 7, 7), torch.randn(4, 2, 3, 3)
    y = fused_conv.ConvReluPool(x, w, **ATTRS)
    assert dims == list(y.shape) == [1, 4, 4, 4]
    kw = fused_conv.kernel_kwargs(ATTRS, (7, 7), (3, 3))
    torch.testing.assert_close(y, conv_relu_pool_reference(x, w, None, None, **kw))
    assert fused_conv.output_hw(kw, (7, 7), (3, 3)) == [4, 4]
    assert kw["clip_min"] == -math.inf
