"""The ONNX backend node tests of LSTM, GRU and RNN (layout=1 ones included, which onnxruntime
rejects) run through InferenceSession with the recurrent Triton kernels (interpreter).

The cases feed W/R/B/P as graph inputs; the rule only fuses constant weights (they are packed
once), so each case's weights are moved into initializers first; then every case must be fused
and pass. The counts are printed: fused-and-passed / total.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tritonnx.runtime.session import InferenceSession

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::RuntimeWarning")
OPS = ("LSTM", "GRU", "RNN")
WEIGHT_POSITIONS = {1, 2, 3, 7}  # W, R, B, P


def _cases():
    from onnx.backend.test.case.node import collect_testcases

    return [c for c in collect_testcases()
            if any(n.op_type in OPS for n in c.model.graph.node)]


def _constant_weights(case):
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    (node,) = [n for n in model.graph.node if n.op_type in OPS]
    inputs, _ = case.data_sets[0]
    names = [i.name for i in model.graph.input]
    weights = {node.input[p] for p in WEIGHT_POSITIONS if p < len(node.input) and node.input[p]}
    feeds = {}
    keep = []
    for name, value, vi in zip(names, inputs, list(model.graph.input)):
        if name in weights:
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        else:
            feeds[name] = np.asarray(value)
            keep.append(vi)
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model, feeds


COUNTS = {"fused": 0}


@pytest.mark.parametrize("case", _cases(), ids=lambda c: c.name)
def test_conformance_with_kernels(case):
    model, feeds = _constant_weights(case)
    _, expected = case.data_sets[0]
    sess = InferenceSession(model.SerializeToString(), kernels="triton")
    report = sess.fusion_report()
    assert len(report.fused) == 1 and not report.declined, str(report)
    COUNTS["fused"] += 1
    got = sess.run(None, feeds)
    for g, w in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), w, rtol=case.rtol or 1e-3, atol=case.atol or 1e-6)


def test_conformance_counts(capsys):
    total = len(_cases())
    with capsys.disabled():
        print(f"\nrecurrent conformance with kernels: {COUNTS['fused']} fused+passed of {total}")
    assert total >= 18
