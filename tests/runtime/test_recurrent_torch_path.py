"""The standard LSTM/GRU/RNN handlers on torch's fused functions (torch.lstm, torch.gru,
torch.rnn_tanh/relu): equal to the reference (triton_kernels/rnn_reference.py) over every
attribute combination they claim, and not taken for the ones torch cannot do."""
import numpy as np
import pytest
import tolerances
import torch

from tritonnx.runtime.ops import recurrent
from tritonnx.triton_kernels import rnn_reference

SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6
REFERENCE = {"LSTM": rnn_reference.lstm, "GRU": rnn_reference.gru, "RNN": rnn_reference.rnn}
HANDLER = {"LSTM": recurrent.LSTM, "GRU": recurrent.GRU, "RNN": recurrent.RNN}


def _inputs(cell, direction, layout, dtype, *, bias=True, initial=True, lens=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    nd = 2 if direction == "bidirectional" else 1
    gates = rnn_reference.GATES[cell]

    def rand(*shape):
        return ((torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5) + 0.05).to(dtype)

    x = rand(BATCH, SEQ, INPUT) if layout else rand(SEQ, BATCH, INPUT)
    state = (BATCH, nd, HIDDEN) if layout else (nd, BATCH, HIDDEN)
    args = [x, rand(nd, gates * HIDDEN, INPUT), rand(nd, gates * HIDDEN, HIDDEN),
            rand(nd, 2 * gates * HIDDEN) if bias else None,
            None if lens is None else torch.tensor(lens, dtype=torch.int32),
            rand(*state) if initial else None]
    if cell == "LSTM":
        args.append(rand(*state) if initial else None)
    return args


def _spy(monkeypatch):
    calls = []
    real = recurrent.run_torch

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out is not None)
        return out
    monkeypatch.setattr(recurrent, "run_torch", spy)
    return calls


def _check(cell, args, attrs, dtype):
    got = HANDLER[cell](*args, **attrs)
    want = REFERENCE[cell](*args, **{k: v for k, v in attrs.items() if k != "prepared"})
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=tolerances.rtol(dtype), atol=tolerances.atol(dtype))


CLAIMED = [(cell, direction, layout) for cell in ("LSTM", "GRU", "RNN")
           for direction in ("forward", "reverse", "bidirectional") for layout in (0, 1)]


@pytest.mark.parametrize("cell, direction, layout", CLAIMED, ids=[f"{c}-{d}-layout{l}" for c, d, l in CLAIMED])
def test_fast_path_matches_the_reference(cell, direction, layout, monkeypatch):
    calls = _spy(monkeypatch)
    attrs = dict(direction=direction, layout=layout, hidden_size=HIDDEN)
    if cell == "GRU":
        attrs["linear_before_reset"] = 1
    for dtype, bias, initial in ((torch.float32, True, True), (torch.float64, False, False), (torch.float16, True, False)):
        _check(cell, _inputs(cell, direction, layout, dtype, bias=bias, initial=initial), attrs, dtype)
    # sequence_lens all equal to the sequence length: no packing; unequal: packed (not in reverse)
    _check(cell, _inputs(cell, direction, layout, torch.float32, lens=[SEQ] * BATCH), attrs, torch.float32)
    unequal = _inputs(cell, direction, layout, torch.float32, lens=[SEQ, 2, 4])
    _check(cell, unequal, attrs, torch.float32)
    assert calls == [True] * 4 + [direction != "reverse"]


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_prepared_weights_are_used(cell, monkeypatch):
    args = _inputs(cell, "bidirectional", 0, torch.float32)
    attrs = dict(direction="bidirectional", **({"linear_before_reset": 1} if cell == "GRU" else {}))
    prepared = recurrent._prepare(cell)(*args[:4], **attrs)
    assert isinstance(prepared, recurrent.TorchWeights) and len(prepared.params) == 8
    converted = []
    real = recurrent.torch_weights
    monkeypatch.setattr(recurrent, "torch_weights", lambda *a: converted.append(a) or real(*a))
    _check(cell, args, dict(attrs, prepared=prepared), torch.float32)
    assert not converted  # the gate order was converted once, at prepare


DECLINED = [
    ("LSTM", dict(clip=0.5)), ("LSTM", dict(input_forget=1)), ("LSTM", dict(peepholes=True)),
    ("LSTM", dict(activations=["Sigmoid", "Tanh", "Relu"])), ("GRU", dict(linear_before_reset=0)),
    ("GRU", dict(activations=["HardSigmoid", "Tanh"], linear_before_reset=1)),
    ("RNN", dict(activations=["Relu", "Tanh"], direction="bidirectional")), ("RNN", dict(clip=2.0)),
    ("RNN", dict(activations=["Affine"], activation_alpha=[0.5], activation_beta=[0.1])),
    ("LSTM", dict(direction="reverse", lens=[SEQ, 2, 4])), ("GRU", dict(lens=[SEQ, 0, 4], linear_before_reset=1)),
]


@pytest.mark.parametrize("cell, attrs", DECLINED, ids=[f"{c}-{'-'.join(a)}" for c, a in DECLINED])
def test_not_taken_where_torch_differs(cell, attrs, monkeypatch):
    calls = _spy(monkeypatch)
    attrs = dict(attrs)
    lens, peep = attrs.pop("lens", None), attrs.pop("peepholes", False)
    args = _inputs(cell, attrs.get("direction", "forward"), 0, torch.float32, lens=lens)
    if peep:
        args.append(torch.full((1, 3 * HIDDEN), 0.1))
    _check(cell, args, attrs, torch.float32)
    assert calls in ([], [False])  # declined by its attributes, or by the run's sequence lengths


def test_against_onnxruntime_through_a_session():
    ort = pytest.importorskip("onnxruntime")
    from onnx import helper, TensorProto

    rng = np.random.default_rng(0)
    w = rng.uniform(-0.5, 0.5, (2, 4 * HIDDEN, INPUT)).astype(np.float32)
    r = rng.uniform(-0.5, 0.5, (2, 4 * HIDDEN, HIDDEN)).astype(np.float32)
    b = rng.uniform(-0.5, 0.5, (2, 8 * HIDDEN)).astype(np.float32)
    node = helper.make_node("LSTM", ["x", "w", "r", "b", "lens"], ["y", "yh", "yc"], hidden_size=HIDDEN,
                            direction="bidirectional")
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [SEQ, BATCH, INPUT]),
                      helper.make_tensor_value_info("lens", TensorProto.INT32, [BATCH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [SEQ, 2, BATCH, HIDDEN])]
        + [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, BATCH, HIDDEN]) for n in ("yh", "yc")],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel()),
         helper.make_tensor("r", TensorProto.FLOAT, r.shape, r.ravel()),
         helper.make_tensor("b", TensorProto.FLOAT, b.shape, b.ravel())])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    from tritonnx import InferenceSession

    sess = InferenceSession(model.SerializeToString(), fusion=False)
    (step,) = sess._executor.steps
    assert isinstance(step.prepared, recurrent.TorchWeights)
    feed = {"x": rng.uniform(-1, 1, (SEQ, BATCH, INPUT)).astype(np.float32), "lens": np.array([5, 3, 1], np.int32)}
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    for _ in range(2):
        for a, e in zip(sess.run(None, feed), want):
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
