"""The recurrent Triton kernels (step and persistent) under the interpreter vs rnn_reference (fp64)."""
from __future__ import annotations

import pytest
import tolerances
import torch

from rnn_testutil import INPUTS, TOL, random_inputs, rel_err
from tritonnx.errors import InvalidArgument
from tritonnx.triton_kernels import recurrent, rnn_reference

# triton 3.6's interpreter converts 1-element arrays to ints the way numpy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")

KERNEL = {"LSTM": recurrent.lstm, "GRU": recurrent.gru, "RNN": recurrent.rnn}
REF = {"LSTM": rnn_reference.lstm, "GRU": rnn_reference.gru, "RNN": rnn_reference.rnn}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MODES = ("step", "persistent")

# (id, op, seq, batch, input, hidden, random_inputs kwargs, attributes)
CASES = [
    ("lstm-bidir-lens-peep", "LSTM", 5, 3, 4, 5,
     dict(dirs=2, lens=[5, 1, 3], h0=True, c0=True, peep=True), dict(direction="bidirectional")),
    ("lstm-reverse-clip-ifg", "LSTM", 4, 2, 3, 6, dict(lens=[2, 4], peep=True, scale=1.5),
     dict(direction="reverse", clip=0.6, input_forget=1)),
    ("lstm-acts", "LSTM", 4, 2, 3, 5, dict(dirs=2),
     dict(direction="bidirectional",
          activations=["HardSigmoid", "Softsign", "Elu"] * 2,
          activation_alpha=[0.3, 0.8, 0.3, 0.8], activation_beta=[0.45, 0.45])),
    ("lstm-acts-per-direction", "LSTM", 4, 2, 3, 5, dict(dirs=2, lens=[4, 1]),
     dict(direction="bidirectional",
          activations=["Sigmoid", "Tanh", "Tanh", "HardSigmoid", "Relu", "Softsign"],
          activation_alpha=[0.25], activation_beta=[0.55])),
    ("lstm-acts2", "LSTM", 3, 2, 3, 5, {},
     dict(activations=["Sigmoid", "ScaledTanh", "Softplus"], activation_alpha=[0.9],
          activation_beta=[1.2])),
    ("lstm-acts3", "LSTM", 3, 2, 3, 5, {},
     dict(activations=["Sigmoid", "LeakyRelu", "Affine"], activation_alpha=[0.1, 0.7],
          activation_beta=[0.2])),
    ("lstm-acts4", "LSTM", 3, 2, 3, 5, {},
     dict(activations=["Sigmoid", "ThresholdedRelu", "Relu"], activation_alpha=[0.05])),
    ("lstm-batch1-2blocks", "LSTM", 3, 1, 5, 20, dict(h0=True), {}),
    ("gru-bidir-lens", "GRU", 5, 3, 4, 7, dict(dirs=2, lens=[1, 5, 3], h0=True),
     dict(direction="bidirectional", linear_before_reset=1)),
    ("gru-clip-nobias", "GRU", 4, 2, 3, 5, dict(bias=False, scale=1.5),
     dict(clip=0.5, linear_before_reset=1)),
    ("gru-lbr0-bidir-lens", "GRU", 5, 3, 4, 7, dict(dirs=2, lens=[1, 5, 3], h0=True),
     dict(direction="bidirectional")),
    ("gru-lbr0-reverse-acts-2blocks", "GRU", 4, 2, 3, 20, dict(lens=[4, 2], scale=1.5),
     dict(direction="reverse", clip=0.8, activations=["HardSigmoid", "Softsign"],
          activation_alpha=[0.3], activation_beta=[0.4])),
    ("rnn-bidir-lens-relu", "RNN", 5, 3, 4, 6, dict(dirs=2, lens=[5, 2, 1], h0=True),
     dict(direction="bidirectional", activations=["Relu", "Relu"])),
    ("rnn-reverse-clip", "RNN", 4, 2, 3, 70, dict(scale=1.0), dict(direction="reverse", clip=0.3)),
]


def _upcast(feeds):
    return {k: v.double() if v is not None and v.is_floating_point() else v for k, v in feeds.items()}


def _check(op, feeds, attrs, dtype, mode, layout=0):
    """Run the kernel on `feeds` (cast to dtype) with a NaN-poisoned Y; compare with float64."""
    low = {k: v.to(dtype) if v is not None and v.is_floating_point() else v for k, v in feeds.items()}
    if layout == 1:
        for n in ("X", "initial_h", "initial_c"):
            if low.get(n) is not None:
                low[n] = low[n].transpose(0, 1).contiguous()
    want = REF[op](*[_upcast(low).get(n) for n in INPUTS[op]], **attrs, layout=layout)
    y_out = torch.full(want[0].shape, float("nan"), dtype=dtype)
    got = KERNEL[op](*[low.get(n) for n in INPUTS[op]], **attrs, layout=layout, mode=mode,
                     y_out=y_out)
    assert got[0] is y_out
    for name, g, w in zip(("Y", "Y_h", "Y_c"), got, want):
        assert g.dtype == dtype and g.shape == w.shape, name
        assert not torch.isnan(g).any(), f"{name}: unwritten (NaN) elements"
        err = rel_err(g, w)
        assert err < TOL[dtype], f"{name}: rel err {err:.2e} >= {TOL[dtype]:.0e} ({dtype}, {mode})"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kernel_matches_reference_fp32(case, mode):
    _, op, seq, batch, inp, hidden, kw, attrs = case
    feeds = random_inputs(op, seq, batch, inp, hidden, seed=1, **kw)
    _check(op, feeds, attrs, torch.float32, mode)


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["LSTM", "GRU", "GRU0"])
def test_kernel_low_precision(op, mode, dtype):
    attrs = dict(direction="bidirectional")
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    op = "GRU" if op.startswith("GRU") else op
    feeds = random_inputs(op, 4, 3, 5, 9, dirs=2, lens=[4, 1, 2], h0=True, c0=True, peep=True, seed=2)
    _check(op, feeds, attrs, DTYPES[dtype], mode)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_kernel_layout1(op, mode):
    feeds = random_inputs(op, 4, 3, 4, 6, dirs=2, lens=[3, 4, 1], h0=True, c0=True, seed=3)
    attrs = dict(direction="bidirectional")
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    _check(op, feeds, attrs, torch.float32, mode, layout=1)


def test_kernel_long_sequence_persistent():
    """>= 200 steps at tiny hidden, a length-1 item: one persistent launch under the interpreter
    (LSTM only: ~5-10 s of interpreter time; the GRU/RNN cells share the whole loop)."""
    feeds = random_inputs("LSTM", 200, 2, 3, 7, lens=[200, 1], h0=True, c0=True, seed=4)
    _check("LSTM", feeds, {}, torch.float32, "persistent")


def test_mode_choice_and_declines():
    feeds = random_inputs("LSTM", 2, 2, 3, 300, seed=5)
    packed = recurrent.pack("LSTM", feeds["W"], feeds["R"], feeds["B"])
    assert not recurrent.persistent_fits(packed, 2, torch.device("cpu"))  # 64 x 512 fp32 tile
    assert recurrent.choose_mode(packed, 2, torch.device("cpu")) == "step"
    with pytest.raises(InvalidArgument, match="persistent kernel does not fit"):
        recurrent.run(packed, feeds["X"], mode="persistent")
    small = recurrent.pack("LSTM", *[random_inputs("LSTM", 2, 2, 3, 8)[n] for n in ("W", "R")])
    assert recurrent.choose_mode(small, 2, torch.device("cpu")) == "persistent"
    assert recurrent.unsupported_reason("GRU") is None
    assert recurrent.unsupported_reason("GRU", linear_before_reset=1) is None
    assert recurrent.unsupported_reason(
        "LSTM", direction="bidirectional", activations=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"]) is None
    assert "Gelu" in recurrent.unsupported_reason("RNN", activations=["Gelu"])
    assert "dtype" in recurrent.unsupported_reason("LSTM", dtype=torch.float64)
    with pytest.raises(InvalidArgument, match="Gelu"):
        g = random_inputs("GRU", 2, 2, 3, 4)
        recurrent.gru(g["X"], g["W"], g["R"], activations=["Sigmoid", "Gelu"])
    with pytest.raises(InvalidArgument, match="input 'X'"):
        recurrent.run(small, torch.randn(2, 2, 4))
    with pytest.raises(InvalidArgument, match="sequence_lens"):
        recurrent.run(small, torch.randn(2, 2, 3), torch.tensor([3, 1]))


@pytest.mark.gpu
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("shape", [(16, 3, 20, 37), (64, 8, 256, 256), (40, 70, 64, 100)],
                         ids=["tiny-multiblock", "h256-b8", "b70-two-batch-blocks"])
def test_kernel_on_gpu(shape, dtype, mode):
    """The compiled kernels (real grid barrier across many programs) on a GPU."""
    seq, batch, inp, hidden = shape
    dev = torch.device("cuda")
    lens = [seq] + [max(1, (7 * i) % seq) for i in range(1, batch)]
    for op, attrs in (("LSTM", dict(direction="bidirectional")),
                      ("GRU", dict(direction="bidirectional", linear_before_reset=1))):
        feeds = random_inputs(op, seq, batch, inp, hidden, dirs=2, lens=lens, h0=True, c0=True,
                              peep=True, seed=9, scale=1.0 / hidden ** 0.5)
        feeds = {k: v.to(dev) if v is not None else None for k, v in feeds.items()}
        packed_dtype = DTYPES[dtype]
        if mode == "persistent":
            probe = recurrent.pack(op, feeds["W"].to(packed_dtype), feeds["R"].to(packed_dtype),
                                   **{k: v for k, v in attrs.items()})
            if not recurrent.persistent_fits(probe, batch, dev):
                pytest.skip("persistent grid not co-resident for this shape")
        tol = tolerances.kernel_max_rel(packed_dtype, dev)  # fp32: tf32
        low = {k: v.to(packed_dtype) if v is not None and v.is_floating_point() else v for k, v in feeds.items()}
        want = REF[op](*[_upcast(low).get(n) for n in INPUTS[op]], **attrs)
        y_out = torch.full(want[0].shape, float("nan"), dtype=packed_dtype, device=dev)
        got = KERNEL[op](*[low.get(n) for n in INPUTS[op]], **attrs, mode=mode, y_out=y_out)
        for name, g, w in zip(("Y", "Y_h", "Y_c"), got, want):
            assert not torch.isnan(g).any(), name
            assert rel_err(g.cpu(), w.cpu()) < tol, (op, name, rel_err(g.cpu(), w.cpu()))


def test_first_use_measurement_fills_mode_table(monkeypatch):
    """`run(mode="auto")` on a GPU times both kernels once per shape bucket (here with a fake
    timer, so the plumbing runs on the CPU) and keeps the faster in MODE_TABLE."""
    import triton.testing

    calls = []

    def fake_bench(fn, warmup, rep):
        out = fn()
        calls.append(out[0].shape)
        return 1.0 if len(calls) == 2 else 2.0  # the second mode timed ("persistent") wins

    monkeypatch.setattr(triton.testing, "do_bench", fake_bench)
    monkeypatch.setattr(recurrent, "MODE_TABLE", {})
    feeds = random_inputs("RNN", 3, 2, 3, 4, seed=11)
    packed = recurrent.pack("RNN", feeds["W"], feeds["R"], feeds["B"])
    assert recurrent._measure_mode(packed, feeds["X"], (None, None, None), {"layout": 0}) == "persistent"
    assert recurrent.MODE_TABLE == {("RNN", "fp32", 4, 2): "persistent"}
    assert recurrent.choose_mode(packed, 2, torch.device("cpu")) == "persistent"
    assert len(calls) == 2


@pytest.mark.gpu
def test_auto_mode_measures_on_gpu(monkeypatch):
    monkeypatch.setattr(recurrent, "MODE_TABLE", {})
    feeds = {k: v.cuda() if v is not None else None
             for k, v in random_inputs("LSTM", 8, 4, 16, 32, seed=12).items()}
    got = recurrent.lstm(feeds["X"], feeds["W"], feeds["R"], feeds["B"])
    assert list(recurrent.MODE_TABLE.values())[0] in ("step", "persistent")
    want = REF["LSTM"](*(feeds[n].double() for n in ("X", "W", "R", "B")))
    assert rel_err(got[0].cpu(), want[0].cpu()) < tolerances.kernel_max_rel(torch.float32, "cuda")
