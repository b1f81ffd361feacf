"""Every zoo model (tiny config), run unfused by tritonnx, matches onnxruntime (CPU) at two
batch sizes (and, for sequence models, two sequence lengths)."""
import numpy as np
import onnxruntime as ort
import pytest
import tolerances

import tritonnx.zoo as zoo
from tritonnx.runtime import InferenceSession

BATCHES = (1, 3)
RTOL = ATOL = tolerances.VS_ONNXRUNTIME["fp32"]  # both sides in fp32, different reduction orders


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_unfused_matches_onnxruntime(name, tiny_onnx):
    entry = zoo.get(name)
    path = str(tiny_onnx(name))
    ours = InferenceSession(path, fusion=False)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    assert [i.name for i in ours.get_inputs()] == [i.name for i in ref.get_inputs()]
    cases = [(b, None) for b in BATCHES]
    if entry.is_sequence:
        cases[1] = (BATCHES[1], 7)
    for batch, seq_len in cases:
        inputs = entry.example_inputs("tiny", batch=batch, seq_len=seq_len, seed=batch)
        feed = {n: t.numpy() for n, t in zip(entry.input_names, inputs)}
        expected = ref.run(None, feed)
        got = ours.run(None, feed)
        assert len(got) == len(expected)
        for out_name, a, b in zip(entry.output_names, got, expected):
            assert a.shape == b.shape and a.dtype == b.dtype, (out_name, batch)
            scale = max(1.0, float(np.abs(b).max()))
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * scale, err_msg=f"{name}:{out_name} batch={batch}")
