"""GPU smoke tests, the first thing a lent machine runs (`bench/on_gpu.sh`, steps barrier, graphs,
smoke): one case per kernel family and dtype at a zoo shape, the persistent kernel's real grid
barrier, and one session's CUDA-graph capture and replay. Seconds each once compiled; the
exhaustive sweeps (every config, every conformance case) come later in the plan."""
from __future__ import annotations

import numpy as np
import pytest
import tolerances
import torch

pytestmark = pytest.mark.gpu

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: max |y - ref| / max |ref| against float64 (fp32 runs with tf32, as the session does by default)
TOL = {name: tolerances.kernel_max_rel(name, "cuda") for name in DTYPES}
#: char_lstm's paper shape (input 65, hidden 512), a shorter sequence
SEQ, BATCH, INPUT, HIDDEN = 20, 4, 65, 512


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.double().cpu() - want.double().cpu()).abs().max() / want.double().abs().max().clamp_min(1e-30))


def _lstm_feeds(dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    scale = 1.0 / HIDDEN ** 0.5

    def rand(*shape):
        return ((torch.rand(*shape, generator=gen) * 2 - 1) * scale + scale / 4).to("cuda", dtype)

    X = ((torch.rand(SEQ, BATCH, INPUT, generator=gen) * 2 - 1) + 0.1).to("cuda", dtype)
    return X, rand(1, 4 * HIDDEN, INPUT), rand(1, 4 * HIDDEN, HIDDEN), rand(1, 8 * HIDDEN)


def _lstm(mode, dtype_name):
    from tritonnx.triton_kernels import recurrent, rnn_reference

    X, W, R, B = _lstm_feeds(DTYPES[dtype_name])
    want = rnn_reference.lstm(*(t.double() for t in (X, W, R, B)))
    y_out = torch.full(want[0].shape, float("nan"), dtype=X.dtype, device="cuda")
    got = recurrent.lstm(X, W, R, B, mode=mode, y_out=y_out)
    torch.cuda.synchronize()
    for name, g, w in zip(("Y", "Y_h", "Y_c"), got, want):
        assert not torch.isnan(g).any(), f"{name}: unwritten (NaN) elements"
        assert _rel(g, w) < TOL[dtype_name], (name, mode, dtype_name, _rel(g, w))


def test_barrier_persistent_lstm():
    """The persistent kernel's grid barrier on real hardware (on_gpu.sh gives it a short timeout:
    a barrier that never opens hangs here, not in the sweep)."""
    from tritonnx.triton_kernels import recurrent

    X, W, R, B = _lstm_feeds(torch.float16)
    packed = recurrent.pack("LSTM", W, R, B)
    if not recurrent.persistent_fits(packed, BATCH, torch.device("cuda")):
        pytest.skip("persistent grid not co-resident for char_lstm's shape")
    _lstm("persistent", "fp16")


@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_recurrent_step_per_dtype(dtype_name):
    _lstm("step", dtype_name)


@pytest.mark.parametrize("dtype_name", list(DTYPES))
def test_conv_per_dtype(dtype_name):
    """LeNet-5's first block (1x32x32 -> 6, 5x5, ReLU, 2x2 max pool), batch 64, channels-last."""
    from tritonnx.triton_kernels.conv_relu_pool import conv_relu_pool, conv_relu_pool_reference

    dt = DTYPES[dtype_name]
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(64, 1, 32, 32, generator=gen) + 0.1).to(dt)
    w = (torch.randn(6, 1, 5, 5, generator=gen) / 5).to(dt)
    b = (torch.randn(6, generator=gen) + 0.1).to(dt)
    kw = dict(activation="relu", pool="max", pool_kernel=(2, 2), pool_strides=(2, 2))
    ref = conv_relu_pool_reference(x.double(), w.double(), b.double(), None, **kw)
    out = torch.full(ref.shape, float("nan"), dtype=dt, device="cuda")
    y = conv_relu_pool(x.cuda().contiguous(memory_format=torch.channels_last), w.cuda(), b.cuda(), None,
                       out=out, allow_tf32=True, **kw)
    torch.cuda.synchronize()
    assert not torch.isnan(y).any()
    assert _rel(y, ref) < TOL[dtype_name], _rel(y, ref)


@pytest.mark.parametrize("model", ["lenet5", "char_lstm"])
def test_graphs_session_capture_and_replay(tmp_path, model):
    """A fused zoo model through the session with CUDA graphs: captured (no eager fallback),
    replayed, and equal to the eager session on the same feeds."""
    import tritonnx.zoo
    from tritonnx import InferenceSession
    from tritonnx.export import export_model

    path = tmp_path / f"{model}.onnx"
    export_model(model, path, config="tiny", verify=False)
    entry = tritonnx.zoo.get(model)
    feeds_cpu = entry.example_inputs("tiny", batch=2, seed=0)
    sess = InferenceSession(str(path), providers=["CUDAExecutionProvider"], tf32=False)
    names = [i.name for i in sess.get_inputs()]
    feeds = {n: x.cuda() for n, x in zip(names, feeds_cpu)}
    first = [o.clone() for o in sess.run_torch(None, feeds)]
    again = sess.run_torch(None, feeds)  # a replay
    executor = sess._executor
    assert not executor.graph_fallbacks, executor.graph_fallbacks
    assert len(executor.captured_signatures) == 1
    eager = InferenceSession(str(path), providers=["CUDAExecutionProvider"], cuda_graphs=False, tf32=False)
    for a, b, c in zip(first, again, eager.run_torch(None, feeds)):
        np.testing.assert_allclose(a.cpu().numpy(), c.cpu().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())
