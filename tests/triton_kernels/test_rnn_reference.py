"""rnn_reference (the ONNX LSTM/GRU/RNN semantics) against onnxruntime and torch.nn."""
from __future__ import annotations

import pytest
import torch

from rnn_testutil import INPUTS, OUTPUTS, make_model, random_inputs, rel_err, run_ort
from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.triton_kernels import gate_order, rnn_reference

REF = {"LSTM": rnn_reference.lstm, "GRU": rnn_reference.gru, "RNN": rnn_reference.rnn}
SEQ, BATCH, INP, HIDDEN = 5, 3, 4, 5

# (id, op, random_inputs kwargs, attributes)
CASES = [
    ("lstm-default", "LSTM", {}, {}),
    ("lstm-nobias-h0c0", "LSTM", dict(bias=False, h0=True, c0=True), {}),
    ("lstm-reverse-lens", "LSTM", dict(lens=[5, 1, 3], h0=True, c0=True), dict(direction="reverse")),
    ("lstm-bidir-lens", "LSTM", dict(dirs=2, lens=[2, 5, 1], h0=True, c0=True, peep=True),
     dict(direction="bidirectional")),
    ("lstm-peep-clip", "LSTM", dict(peep=True, scale=1.5), dict(clip=0.7)),
    ("lstm-input-forget", "LSTM", dict(peep=True, h0=True, c0=True), dict(input_forget=1)),
    ("lstm-acts", "LSTM", dict(dirs=2, lens=[4, 1, 5]),
     dict(direction="bidirectional",
          activations=["HardSigmoid", "LeakyRelu", "Elu", "Sigmoid", "ScaledTanh", "Softsign"],
          activation_alpha=[0.3, 0.05, 0.8, 0.9], activation_beta=[0.45, 1.3])),
    ("lstm-acts2", "LSTM", {}, dict(activations=["Sigmoid", "Affine", "Softplus"],
                                    activation_alpha=[0.7], activation_beta=[0.1])),
    ("lstm-acts3", "LSTM", {}, dict(activations=["Sigmoid", "ThresholdedRelu", "Relu"],
                                    activation_alpha=[0.1])),
    ("gru-default", "GRU", {}, {}),
    ("gru-lbr", "GRU", dict(h0=True), dict(linear_before_reset=1)),
    ("gru-bidir-lens-lbr", "GRU", dict(dirs=2, lens=[1, 3, 5], h0=True),
     dict(direction="bidirectional", linear_before_reset=1)),
    ("gru-reverse-clip", "GRU", dict(lens=[3, 5, 1], scale=1.5), dict(direction="reverse", clip=0.5)),
    ("gru-acts", "GRU", dict(bias=False), dict(activations=["HardSigmoid", "Softsign"],
                                               activation_alpha=[0.25], activation_beta=[0.4])),
    ("rnn-default", "RNN", {}, {}),
    ("rnn-relu-bidir-lens", "RNN", dict(dirs=2, lens=[5, 2, 1], h0=True),
     dict(direction="bidirectional", activations=["Relu", "Tanh"])),
    ("rnn-reverse-clip", "RNN", dict(scale=2.0), dict(direction="reverse", clip=0.3)),
]


def _run_ref(op, feeds, attrs, layout=0):
    args = [feeds.get(n) for n in INPUTS[op]]
    return REF[op](*args, **attrs, layout=layout)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reference_matches_onnxruntime(case):
    _, op, kw, attrs = case
    feeds = random_inputs(op, SEQ, BATCH, INP, HIDDEN, **kw)
    want = run_ort(make_model(op, feeds, attrs), feeds)
    got = _run_ref(op, {k: v.double() if v is not None and v.is_floating_point() else v
                        for k, v in feeds.items()}, attrs)
    for name, g, w in zip(OUTPUTS[op], got, want):
        assert rel_err(g, w) < 2e-6, f"{name}: {rel_err(g, w)}"
    if kw.get("lens"):
        y = got[0]
        for b, n in enumerate(kw["lens"]):
            assert bool((y[n:, :, b] == 0).all()), "Y must be zero past each length"


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout1_is_transposed_layout0(op):
    feeds = random_inputs(op, SEQ, BATCH, INP, HIDDEN, dirs=2, lens=[5, 1, 3], h0=True, c0=True)
    attrs = dict(direction="bidirectional")
    want = _run_ref(op, feeds, attrs)
    t = dict(feeds)
    t["X"] = feeds["X"].transpose(0, 1).contiguous()
    for n in ("initial_h", "initial_c"):
        if feeds.get(n) is not None:
            t[n] = feeds[n].transpose(0, 1).contiguous()
    got = _run_ref(op, t, attrs, layout=1)
    # The same math on transposed operands: equal up to the BLAS kernel's summation order
    # (which the CPU's matmul kernel picks by stride; bit-equality held on one machine only).
    assert rel_err(got[0], want[0].permute(2, 0, 1, 3)) < 1e-6
    for g, w in zip(got[1:], want[1:]):
        assert rel_err(g, w.transpose(0, 1)) < 1e-6


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_matches_torch_nn_through_gate_order(op):
    torch.manual_seed(0)
    kwargs = dict(input_size=INP, hidden_size=HIDDEN, bidirectional=True)
    mod = {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[op](**kwargs).double()
    onnx_w = gate_order.torch_layer_to_onnx(mod)
    x = torch.randn(SEQ, BATCH, INP, dtype=torch.float64)
    attrs = dict(direction="bidirectional")
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    got = REF[op](x, onnx_w["W"], onnx_w["R"], onnx_w["B"], **attrs)
    with torch.no_grad():
        want = mod(x)
    want_y = want[0].view(SEQ, BATCH, 2, HIDDEN).permute(0, 2, 1, 3)
    assert rel_err(got[0], want_y) < 1e-12
    finals = want[1] if op == "LSTM" else (want[1],)
    for g, w in zip(got[1:], finals):
        assert rel_err(g, w) < 1e-12
    # and back: load the ONNX weights into a fresh module, same outputs
    mod2 = type(mod)(**kwargs).double()
    gate_order.onnx_to_torch_layer(mod2, onnx_w["W"], onnx_w["R"], onnx_w["B"])
    with torch.no_grad():
        assert torch.equal(mod2(x)[0], want[0])


def test_gate_order_roundtrip_and_blocks():
    lstm_blocks = torch.arange(4).repeat_interleave(3)  # ONNX i,o,f,c numbered 0,1,2,3
    assert gate_order.onnx_to_torch(lstm_blocks, "LSTM").view(4, 3)[:, 0].tolist() == [0, 2, 3, 1]
    gru_blocks = torch.arange(3).repeat_interleave(2)  # ONNX z,r,h numbered 0,1,2
    assert gate_order.onnx_to_torch(gru_blocks, "GRU").view(3, 2)[:, 0].tolist() == [1, 0, 2]
    for op, gates in (("LSTM", 4), ("GRU", 3), ("RNN", 1)):
        w = torch.randn(gates * 5, 3)
        assert torch.equal(gate_order.torch_to_onnx(gate_order.onnx_to_torch(w, op), op), w)
        assert torch.equal(gate_order.onnx_to_torch(gate_order.torch_to_onnx(w.T, op, 1), op, 1), w.T)
    with pytest.raises(InvalidArgument, match="multiple of 4"):
        gate_order.onnx_to_torch(torch.randn(6, 2), "LSTM")


def test_low_precision_inputs_compute_in_fp32():
    feeds = random_inputs("LSTM", SEQ, BATCH, INP, HIDDEN, lens=[5, 1, 2])
    want = _run_ref("LSTM", feeds, {})
    half = {k: v.half() if v is not None and v.is_floating_point() else v for k, v in feeds.items()}
    got = _run_ref("LSTM", half, {})
    assert all(g.dtype == torch.float16 for g in got)
    for g, w in zip(got, want):
        assert rel_err(g, w) < 5e-3


def test_errors_name_op_and_input():
    feeds = random_inputs("LSTM", SEQ, BATCH, INP, HIDDEN)
    with pytest.raises(InvalidArgument, match="LSTM: input 'R'"):
        rnn_reference.lstm(feeds["X"], feeds["W"], feeds["R"][:, :-1])
    with pytest.raises(InvalidArgument, match="sequence_lens"):
        rnn_reference.lstm(feeds["X"], feeds["W"], feeds["R"], sequence_lens=torch.tensor([9, 1, 1]))
    with pytest.raises(NotImplemented, match="Gelu"):
        rnn_reference.lstm(feeds["X"], feeds["W"], feeds["R"], activations=["Gelu", "Tanh", "Tanh"])
    with pytest.raises(InvalidArgument, match="activations"):
        rnn_reference.lstm(feeds["X"], feeds["W"], feeds["R"], activations=["Tanh"])
