"""bench/kernels/rnn.py: its ONNX model is the reference LSTM; it refuses to run without CUDA;
on a GPU (marked) the quick sweep gives complete rows that agree with the reference."""
from __future__ import annotations

import pytest
import torch

from rnn_testutil import rel_err, run_ort
from tritonnx.bench.kernels import ROW_KEYS, rnn
from tritonnx.triton_kernels import rnn_reference


def test_onnx_model_matches_reference():
    g = torch.Generator().manual_seed(0)
    W, R = (torch.rand(1, 20, 5, generator=g) - 0.5 for _ in range(2))
    B = torch.rand(1, 40, generator=g) - 0.5
    X = torch.rand(3, 2, 5, generator=g) - 0.5
    got = run_ort(rnn._onnx_lstm(W, R, B, "fp32"), {"X": X})
    want = rnn_reference.lstm(X.double(), W.double(), R.double(), B.double())
    for g_, w in zip(got, want):
        assert rel_err(torch.from_numpy(g_), w) < 1e-5


def test_mode_table_and_cases():
    assert len(rnn._cases(False)) == 32 and len(rnn._cases(True)) == 3
    rows = [dict(family="rnn", provider="tritonnx", median_ms=t, note=n, case="lstm h256 seq32",
                 dtype="fp16", batch=8) for t, n in ((1.0, "mode=step"), (0.5, "mode=persistent; barrier~3%"))]
    assert rnn.mode_table(rows) == {("LSTM", "fp16", 256, 8): "persistent"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_needs_cuda():
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        rnn.benchmark(dtypes=["fp16"], quick=True)


@pytest.mark.gpu
def test_quick_benchmark_on_gpu():
    rows = rnn.benchmark(dtypes=["fp16", "fp32"], quick=True, time_budget=300)
    assert rows
    for row in rows:
        assert set(row) == set(ROW_KEYS)
        if row["median_ms"] is not None and row["provider"] != "onnxruntime":
            assert row["max_rel_err"] < (2e-2 if row["dtype"] == "fp16" else 1e-2), row
