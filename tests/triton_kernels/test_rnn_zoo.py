"""Every recurrent zoo model (tiny config), exported to ONNX, fused through InferenceSession with
the Triton kernels (interpreter), matches onnxruntime on the same file."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from rnn_testutil import rel_err
from tritonnx import zoo
from tritonnx.export import export_model
from tritonnx.runtime.session import InferenceSession

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
RECURRENT_ZOO = ["rnn_lm", "char_lstm", "lstm_lm", "gru_lm", "seq2seq", "bilstm_speech", "captioner"]


@pytest.mark.parametrize("name", RECURRENT_ZOO)
def test_zoo_model_fused_matches_onnxruntime(name, tmp_path):
    import onnxruntime as ort

    result = export_model(name, tmp_path / f"{name}.onnx", config="tiny", verify=False)
    model = onnx.load(result.path)
    n_rec = sum(n.op_type in ("LSTM", "GRU", "RNN") for n in model.graph.node)
    assert n_rec >= 1
    entry = zoo.get(name)
    inputs = entry.example_inputs("tiny", batch=2, seed=3)
    feeds = {k: v.numpy() for k, v in zip(entry.input_names, inputs)}
    want = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"]).run(None, feeds)
    sess = InferenceSession(result.path, kernels="triton")
    report = sess.fusion_report()
    fused = [g for g in report.fused if g.rule == "fuse_recurrent"]
    declined = [d for d in report.declined if d.op_type in ("LSTM", "GRU", "RNN")]
    assert len(fused) == n_rec and not declined, str(report)
    got = sess.run(None, feeds)
    for g, w in zip(got, want):
        assert rel_err(torch.from_numpy(np.asarray(g)), torch.from_numpy(w)) < 1e-4


@pytest.mark.parametrize("name", ["char_lstm", "gru_lm", "bilstm_speech"])
def test_zoo_model_fp16_kernels_match_reference(name, tmp_path):
    """fp16 export: the fused fp16 kernels (fp32 state) agree with the plain-torch reference."""
    result = export_model(name, tmp_path / f"{name}.onnx", config="tiny", dtype="fp16", verify=False)
    entry = zoo.get(name)
    inputs = entry.example_inputs("tiny", batch=2, seed=3)
    feeds = {k: (v.half() if v.is_floating_point() else v).numpy() for k, v in zip(entry.input_names, inputs)}
    fused = InferenceSession(result.path, kernels="triton")
    assert any(g.rule == "fuse_recurrent" for g in fused.fusion_report().fused)
    got = fused.run(None, feeds)
    want = InferenceSession(result.path, kernels="torch").run(None, feeds)
    for g, w in zip(got, want):
        assert g.dtype == np.float16
        assert rel_err(torch.from_numpy(g), torch.from_numpy(w)) < 5e-3
