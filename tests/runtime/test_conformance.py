"""ONNX backend node tests (`onnx.backend.test.case.node.collect_testcases`): every case, of
every domain, registered op or not, runs in onnxruntime (CPU) and in tritonnx
(`InferenceSession(..., providers=["CPUExecutionProvider"], fusion=False)`), each compared as
onnx's backend runner does (`Runner.assert_similar_outputs`, the case's own rtol/atol).

A case fails when tritonnx fails it and either onnxruntime passes it or every op of it has a
handler; one that neither runs (no handler here, and onnxruntime fails it too) is skipped with
onnxruntime's error as the reason. So what "onnxruntime passes" means comes from this run, not
from a list. Everything else skipped is in `SKIP`, with its reason. The counts of both
runtimes and their difference are printed by tests/conftest.py (`pytest_terminal_summary`)."""
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
    "training-mode Dropout with ratio > 0: the mask comes from numpy's generator, ours from torch's": [
        "test_training_dropout_default", "test_training_dropout_default_mask",
        "test_training_dropout", "test_training_dropout_mask",
    ],
    # Seen with onnxruntime 1.32: its CPU provider has no fp16 Mul/MatMul/Add/Softmax/... kernels,
    # so its InsertCastTransformer runs the whole chain in fp32 and drops the fp16 casts between
    # (the model's own included), rounding once at Y. tritonnx rounds every op's output to fp16
    # as the spec (and onnxruntime's CUDA provider) does: bit-equal to onnx's reference up to
    # Softmax's input; its Softmax runs in fp32 and rounds once (as onnxruntime's own fp16
    # Softmax), the reference rounds exp, sum and quotient to fp16.
    "fp16 rounding: 2 of 192 elements 2 ulp off (0.4690 for 0.4695, rtol 1e-3): tritonnx rounds each op's fp16 "
    "output as the spec does, onnxruntime's CPU provider runs the chain in fp32 (no fp16 kernels)": [
        "test_attention_4d_causal_fp16_expanded", "test_attention_4d_causal_fp16",
    ],
}
SKIP: dict[str, str] = {name: reason for reason, names in _SKIPPED.items() for name in names}


def _all_ops(graph: onnx.GraphProto):
    for node in graph.node:
        yield canonical_domain(node.domain), node.op_type
        for attr in node.attribute:
            for g in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                yield from _all_ops(g)


def _collect_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(collect_testcases())  # one call: it caches its first answer


def _unregistered(case) -> list[str]:
    """The ops of `case` (subgraphs included) that have no handler, as ``domain::op``."""
    return sorted({f"{dom or 'ai.onnx'}::{op}" for dom, op in _all_ops(case.model.graph)
                   if (dom, op) not in OPS.handlers})


#: every case of onnx's node tests
CASES = _collect_cases()
#: the cases all of whose ops have a handler (the GPU pass runs these)
SUPPORTED = [c for c in CASES if not _unregistered(c)]


def _run(model: onnx.ModelProto, inputs: list[np.ndarray], providers=("CPUExecutionProvider",),
         **options) -> list[np.ndarray]:
    sess = InferenceSession(model.SerializeToString(), providers=list(providers), fusion=False, **options)
    if "CUDAExecutionProvider" in providers:
        assert sess.device.type == "cuda"
    feed = dict(zip([i.name for i in sess.get_inputs()], inputs))
    sess.run(None, feed)  # the first run of a signature walks every step and makes its run plan
    return sess.run(None, feed)  # this one runs on the plan


def _array(value) -> np.ndarray:
    """A case's value as both runtimes take it: a 0-d input comes as a numpy scalar
    (np.int32(10)), which onnxruntime's run refuses as tritonnx's does: given as a 0-d array."""
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return np.asarray(value) if isinstance(value, np.generic) else value


def _check(case, run) -> None:
    """Every data set of `case` through `run(model, inputs) -> outputs`, compared as onnx does."""
    for inputs, expected in case.data_sets:
        outputs = run(case.model, [_array(v) for v in inputs])
        _assert_similar([_array(v) for v in expected], outputs, case)


def _assert_similar(expected: list, outputs: list, case) -> None:
    """onnx's comparison; a sequence output element by element (onnx's runner takes the
    length of each element, which a 0-d tensor in a sequence does not have)."""
    if len(outputs) != len(expected):
        raise AssertionError(f"{len(outputs)} outputs, expected {len(expected)}")
    for ref, out in zip(expected, outputs):
        if isinstance(ref, list):
            if not isinstance(out, list) or len(out) != len(ref):
                raise AssertionError(f"expected a sequence of {len(ref)} tensors, got {type(out).__name__}")
            for r, o in zip(ref, out):
                Runner.assert_similar_outputs([r], [o], rtol=case.rtol, atol=case.atol)
        else:
            Runner.assert_similar_outputs([ref], [out], rtol=case.rtol, atol=case.atol)


def _run_onnxruntime(model: onnx.ModelProto, inputs: list) -> list:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # its own errors come back as exceptions
    sess = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(zip([i.name for i in sess.get_inputs()], inputs)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:200] if text else ''}"


def _onnxruntime_error(case) -> str | None:
    """None when onnxruntime (CPU) passes `case`, else its error's first line."""
    try:
        _check(case, _run_onnxruntime)
    except Exception as exc:
        return _first_line(exc)
    return None


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node(case, record_property):
    ort_error = _onnxruntime_error(case)
    record_property("onnxruntime", "passed" if ort_error is None else "failed")
    if case.name in SKIP:
        pytest.skip(SKIP[case.name])
    missing = _unregistered(case)
    if missing and ort_error is not None:
        pytest.skip(f"neither runtime runs it: no handler for {', '.join(missing)}; onnxruntime: {ort_error}")
    try:
        _check(case, _run)
    except Exception as exc:
        if ort_error is None:
            raise AssertionError(f"onnxruntime passes {case.name} and tritonnx does not "
                                 f"(fix it, or list it in SKIP with a reason): {_first_line(exc)}") from exc
        raise


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
    for case in SUPPORTED:
        if case.name in SKIP:
            continue
        try:
            for inputs, expected in case.data_sets:
                outputs = _run(case.model, [_array(v) for v in inputs], providers=["CUDAExecutionProvider"],
                               tf32=False, cuda_graphs=False)
                _assert_similar([_array(v) for v in expected], outputs, case)
        except Exception as exc:  # collect them all, report once
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
            failures.append(f"{case.name}: {type(exc).__name__}: {first}")
    assert not failures, f"{len(failures)} cases fail on CUDA:\n" + "\n".join(failures)
