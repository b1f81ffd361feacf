"""ONNX backend node tests (`onnx.backend.test.case.node.collect_testcases`) for every op type
registered in `OPS` for the standard domain, `_expanded` variants included when all their ops
are registered. Each case runs through `InferenceSession(..., providers=["CPUExecutionProvider"],
fusion=False)` and is compared as onnx's backend runner does (`Runner.assert_similar_outputs`,
the case's own rtol/atol). Everything skipped is in `SKIP`, with its reason; the counts
(passed / skipped / failed / total) are printed by tests/runtime/conftest.py."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from onnx.backend.test.runner import Runner

from tritonnx.runtime import InferenceSession
from tritonnx.runtime.ops import OPS
from tritonnx.runtime.registry import canonical_domain

pytestmark = pytest.mark.xdist_group("conformance")

#: Why a case is skipped -> the cases. Nothing else is skipped.
_SKIPPED: dict[str, list[str]] = {
    "torch has no 4-bit, 2-bit, float4 or float8e8m0 dtype": [
        "test_cast_FLOAT_to_UINT4", "test_cast_FLOAT16_to_UINT4", "test_cast_FLOAT_to_INT4",
        "test_cast_FLOAT16_to_INT4", "test_cast_UINT4_to_FLOAT", "test_cast_UINT4_to_FLOAT16",
        "test_cast_UINT4_to_UINT8", "test_cast_INT4_to_FLOAT", "test_cast_INT4_to_FLOAT16",
        "test_cast_INT4_to_INT8", "test_cast_FLOAT4E2M1_to_FLOAT",
        "test_cast_FLOAT4E2M1_to_FLOAT16", "test_cast_FLOAT_to_FLOAT4E2M1",
        "test_cast_FLOAT16_to_FLOAT4E2M1", "test_cast_FLOAT_to_UINT2",
        "test_cast_FLOAT16_to_UINT2", "test_cast_FLOAT_to_INT2", "test_cast_FLOAT16_to_INT2",
        "test_cast_UINT2_to_FLOAT", "test_cast_UINT2_to_FLOAT16", "test_cast_UINT2_to_UINT8",
        "test_cast_INT2_to_FLOAT", "test_cast_INT2_to_FLOAT16", "test_cast_INT2_to_INT8",
        "test_cast_e8m0_FLOAT_to_FLOAT8E8M0", "test_cast_e8m0_FLOAT16_to_FLOAT8E8M0",
        "test_cast_e8m0_FLOAT8E8M0_to_FLOAT", "test_cast_e8m0_FLOAT8E8M0_to_FLOAT16",
        "test_castlike_FLOAT_to_UINT4", "test_castlike_FLOAT_to_UINT4_expanded",
        "test_castlike_FLOAT16_to_UINT4", "test_castlike_FLOAT16_to_UINT4_expanded",
        "test_castlike_FLOAT_to_INT4", "test_castlike_FLOAT_to_INT4_expanded",
        "test_castlike_FLOAT16_to_INT4", "test_castlike_FLOAT16_to_INT4_expanded",
        "test_castlike_UINT4_to_FLOAT", "test_castlike_UINT4_to_FLOAT_expanded",
        "test_castlike_UINT4_to_FLOAT16", "test_castlike_UINT4_to_FLOAT16_expanded",
        "test_castlike_UINT4_to_UINT8", "test_castlike_UINT4_to_UINT8_expanded",
        "test_castlike_INT4_to_FLOAT", "test_castlike_INT4_to_FLOAT_expanded",
        "test_castlike_INT4_to_FLOAT16", "test_castlike_INT4_to_FLOAT16_expanded",
        "test_castlike_INT4_to_INT8", "test_castlike_INT4_to_INT8_expanded",
        "test_castlike_FLOAT4E2M1_to_FLOAT", "test_castlike_FLOAT4E2M1_to_FLOAT_expanded",
        "test_castlike_FLOAT4E2M1_to_FLOAT16", "test_castlike_FLOAT4E2M1_to_FLOAT16_expanded",
        "test_castlike_FLOAT_to_FLOAT4E2M1", "test_castlike_FLOAT_to_FLOAT4E2M1_expanded",
        "test_castlike_FLOAT16_to_FLOAT4E2M1", "test_castlike_FLOAT16_to_FLOAT4E2M1_expanded",
        "test_castlike_FLOAT_to_UINT2", "test_castlike_FLOAT_to_UINT2_expanded",
        "test_castlike_FLOAT16_to_UINT2", "test_castlike_FLOAT16_to_UINT2_expanded",
        "test_castlike_FLOAT_to_INT2", "test_castlike_FLOAT_to_INT2_expanded",
        "test_castlike_FLOAT16_to_INT2", "test_castlike_FLOAT16_to_INT2_expanded",
        "test_castlike_UINT2_to_FLOAT", "test_castlike_UINT2_to_FLOAT_expanded",
        "test_castlike_UINT2_to_FLOAT16", "test_castlike_UINT2_to_FLOAT16_expanded",
        "test_castlike_UINT2_to_UINT8", "test_castlike_UINT2_to_UINT8_expanded",
        "test_castlike_INT2_to_FLOAT", "test_castlike_INT2_to_FLOAT_expanded",
        "test_castlike_INT2_to_FLOAT16", "test_castlike_INT2_to_FLOAT16_expanded",
        "test_castlike_INT2_to_INT8", "test_castlike_INT2_to_INT8_expanded",
    ],
    "torch has no 4-bit, 2-bit or float4 dtype (quantisation storage types)": [
        "test_dequantizelinear_uint4", "test_dequantizelinear_int4", "test_dequantizelinear_uint2",
        "test_dequantizelinear_int2", "test_dequantizelinear_float4e2m1", "test_quantizelinear_uint4",
        "test_quantizelinear_int4", "test_quantizelinear_uint2", "test_quantizelinear_int2",
        "test_quantizelinear_float4e2m1",
    ],
    "string tensors: torch has no string dtype": [
        "test_equal_string", "test_equal_string_broadcast",
    ],
    "training-mode Dropout with ratio > 0: the mask comes from numpy's generator, ours from torch's": [
        "test_training_dropout_default", "test_training_dropout_default_mask",
        "test_training_dropout", "test_training_dropout_mask",
    ],
    "fp16 tolerance: 1 of 192 elements is 1 fp16 ulp off (0.00049 at 0.47, rtol 1e-3); we accumulate fp16 in fp32": [
        "test_attention_4d_causal_fp16_expanded", "test_attention_4d_causal_fp16",
    ],
    "sequence and optional values: the runtime handles tensors only": [
        "test_identity_sequence", "test_identity_opt", "test_sequence_map_identity_1_sequence",
        "test_sequence_map_identity_2_sequences", "test_sequence_map_identity_1_sequence_1_tensor",
        "test_sequence_map_add_2_sequences", "test_sequence_map_add_1_sequence_1_tensor",
        "test_sequence_map_extract_shapes",
    ],
}
SKIP: dict[str, str] = {name: reason for reason, names in _SKIPPED.items() for name in names}


def _all_ops(graph: onnx.GraphProto):
    for node in graph.node:
        yield canonical_domain(node.domain), node.op_type
        for attr in node.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _all_ops(g)


def _select_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()  # one call: it caches its first answer
    registered = set(OPS.op_types(""))
    return [
        c for c in cases
        if all(dom == "" and op in registered for dom, op in _all_ops(c.model.graph))
    ]


CASES = _select_cases()


def _run(model: onnx.ModelProto, inputs: list[np.ndarray], providers=("CPUExecutionProvider",),
         **options) -> list[np.ndarray]:
    sess = InferenceSession(model.SerializeToString(), providers=list(providers), fusion=False, **options)
    if "CUDAExecutionProvider" in providers:
        assert sess.device.type == "cuda"
    feeds = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(feeds, inputs)))


def _array(value) -> np.ndarray:
    return onnx.numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node(case):
    if case.name in SKIP:
        pytest.skip(SKIP[case.name])
    for inputs, expected in case.data_sets:
        outputs = _run(case.model, [_array(v) for v in inputs])
        Runner.assert_similar_outputs([_array(v) for v in expected], outputs, rtol=case.rtol, atol=case.atol)


def test_skip_list_names_real_cases():
    """Every SKIP entry names a collected case (no stale entries)."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = {c.name for c in collect_testcases()}
    assert not [n for n in SKIP if n not in names]


#: The op list of issue 3 ("Op coverage"): each must have a handler.
ISSUE_OPS = """Conv ConvTranspose Relu LeakyRelu Sigmoid Tanh Softmax LogSoftmax MaxPool AveragePool
GlobalAveragePool GlobalMaxPool LRN BatchNormalization Dropout Gemm MatMul Add Sub Mul Div Sum Pow Sqrt
Erf LayerNormalization Reshape Flatten Transpose Concat Split Slice Squeeze Unsqueeze Gather Shape
Constant ConstantOfShape Identity Cast Expand Where Equal Range ReduceMean Clip Pad LSTM GRU RNN""".split()


def test_issue_ops_are_registered_and_tested():
    registered = set(OPS.op_types(""))
    assert not [op for op in ISSUE_OPS if op not in registered]
    tested = {op for c in CASES if c.name not in SKIP for _, op in _all_ops(c.model.graph)}
    assert not [op for op in ISSUE_OPS if op not in tested]


@pytest.mark.gpu
def test_cases_on_cuda():
    """Every case again on the GPU (torch ops on CUDA, tf32 off so fp32 keeps fp32 accuracy)."""
    failures = []
    for case in CASES:
        if case.name in SKIP:
            continue
        try:
            for inputs, expected in case.data_sets:
                outputs = _run(case.model, [_array(v) for v in inputs], providers=["CUDAExecutionProvider"],
                               tf32=False, cuda_graphs=False)
                Runner.assert_similar_outputs([_array(v) for v in expected], outputs, rtol=case.rtol, atol=case.atol)
        except Exception as exc:  # collect them all, report once
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            failures.append(f"{case.name}: {type(exc).__name__}: {first}")
    assert not failures, f"{len(failures)} cases fail on CUDA:\n" + "\n".join(failures)
