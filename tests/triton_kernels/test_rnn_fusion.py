"""The recurrent rule (ONNX LSTM/GRU/RNN -> tritonnx::*) and its handlers, through InferenceSession,
against onnxruntime on the original model."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from rnn_testutil import INPUTS, OUTPUTS, random_inputs, rel_err, run_ort
from tritonnx.runtime.session import InferenceSession

# triton 3.6's interpreter converts 1-element arrays to ints the way numpy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")

WEIGHTS = ("W", "R", "B", "P")


def _model(nodes_spec, feeds_list, *, opset=14, const_weights=True):
    """Chain of recurrent nodes; node k reads X (k=0) or the previous node's Y reshaped."""
    nodes, inits, g_in, outputs = [], [], [], []
    x_shape = list(feeds_list[0]["X"].shape)
    g_in.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, ["seq", "batch", x_shape[2]]))
    prev = "X"
    feeds = {"X": feeds_list[0]["X"].numpy()}
    for k, ((op, attrs, n_out), f) in enumerate(zip(nodes_spec, feeds_list)):
        names = []
        for name in INPUTS[op]:
            t = f.get(name)
            if name == "X":
                names.append(prev)
            elif t is None:
                names.append("")
            elif name in WEIGHTS and const_weights:
                inits.append(numpy_helper.from_array(t.numpy(), f"{name}{k}"))
                names.append(f"{name}{k}")
            else:
                g_in.append(helper.make_tensor_value_info(
                    f"{name}{k}", TensorProto.INT32 if name == "sequence_lens" else TensorProto.FLOAT,
                    list(t.shape)))
                feeds[f"{name}{k}"] = t.numpy()
                names.append(f"{name}{k}")
        while names[-1] == "":
            names.pop()
        outs = [f"{o}{k}" for o in OUTPUTS[op][:n_out]]
        attrs = {"hidden_size": int(f["R"].shape[-1]), **attrs}
        nodes.append(helper.make_node(op, names, outs, name=f"{op.lower()}{k}", **attrs))
        if k + 1 < len(nodes_spec):  # Y [seq, dirs, batch, H] -> [seq, batch, dirs*H]
            nodes.append(helper.make_node("Transpose", [outs[0]], [f"t{k}"], perm=[0, 2, 1, 3]))
            inits.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"shape{k}"))
            nodes.append(helper.make_node("Reshape", [f"t{k}", f"shape{k}"], [f"x{k + 1}"]))
            prev = f"x{k + 1}"
        outputs += outs
    g_out = [helper.make_tensor_value_info(o, TensorProto.FLOAT, [None] * (4 if o.startswith("Y") and not o.startswith("Y_") else 3))
             for o in outputs]
    graph = helper.make_graph(nodes, "g", g_in, g_out, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, feeds


def _compare(model, feeds, *, n_fused, n_declined=0, **options):
    want = run_ort(model, {k: torch.from_numpy(v) for k, v in feeds.items()})
    sess = InferenceSession(model.SerializeToString(), kernels="triton", **options)
    report = sess.fusion_report()
    assert len(report.fused) == n_fused, str(report)
    assert len(report.declined) == n_declined, str(report)
    got = sess.run(None, feeds)
    for o, g, w in zip(sess.get_outputs(), got, want):
        assert rel_err(torch.from_numpy(np.asarray(g)), torch.from_numpy(w)) < 2e-5, o.name
    onnx.checker.check_model(sess.rewritten_model())
    return sess


def test_stacked_lstm_gru_rnn_fused_and_match_onnxruntime():
    f0 = random_inputs("LSTM", 5, 3, 4, 6, dirs=2, lens=[5, 1, 3], h0=True, c0=True, peep=True, seed=1)
    f1 = random_inputs("GRU", 5, 3, 12, 5, seed=2)
    f2 = random_inputs("RNN", 5, 3, 5, 7, seed=3, h0=True)
    f1["X"] = f2["X"] = None
    spec = [("LSTM", dict(direction="bidirectional"), 3),
            ("GRU", dict(linear_before_reset=1), 2),
            ("RNN", dict(direction="reverse"), 1)]
    model, feeds = _model(spec, [f0, f1, f2])
    sess = _compare(model, feeds, n_fused=3)
    ops = [(n.domain, n.op_type) for n in sess.rewritten_model().graph.node]
    assert ("tritonnx", "LSTM") in ops and ("tritonnx", "GRU") in ops and ("tritonnx", "RNN") in ops
    assert ("", "LSTM") not in ops
    assert sess.get_providers()[0] == "TritonExecutionProvider"
    # the weights stay in ONNX layout in the rewritten model
    inits = {t.name: t for t in sess.rewritten_model().graph.initializer}
    assert list(inits["R0"].dims) == [2, 24, 6]


def test_gru_lbr0_and_per_direction_activations_fused():
    f0 = random_inputs("GRU", 4, 2, 3, 5, seed=4)
    f1 = random_inputs("LSTM", 4, 2, 5, 5, dirs=2, seed=5)
    f1["X"] = None
    spec = [("GRU", dict(linear_before_reset=0), 2),
            ("LSTM", dict(direction="bidirectional",
                          activations=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Tanh"]), 3)]
    model, feeds = _model(spec, [f0, f1])
    # GRU lbr=0: the two-phase step; LSTM: one launch per direction (different activations)
    _compare(model, feeds, n_fused=2, n_declined=0)


def test_non_constant_weights_declined():
    f = random_inputs("RNN", 3, 2, 3, 4, seed=6)
    model, feeds = _model([("RNN", {}, 2)], [f], const_weights=False)
    sess = _compare(model, feeds, n_fused=0, n_declined=1)
    assert "not a constant" in sess.fusion_report().declined[0].reason


def test_fusion_off_and_torch_kernels():
    f = random_inputs("LSTM", 4, 2, 3, 5, lens=[4, 2], seed=7)
    model, feeds = _model([("LSTM", {}, 2)], [f])
    sess = _compare(model, feeds, n_fused=0, n_declined=1, fusion=False)
    assert "disabled" in sess.fusion_report().declined[0].reason
    want = run_ort(model, {k: torch.from_numpy(v) for k, v in feeds.items()})
    sess = InferenceSession(model.SerializeToString(), kernels="torch")
    assert len(sess.fusion_report().fused) == 1
    for g, w in zip(sess.run(None, feeds), want):
        assert rel_err(torch.from_numpy(np.asarray(g)), torch.from_numpy(w)) < 2e-5


@pytest.mark.parametrize("mode", ["step", "persistent"])
def test_session_mode_setting(mode, monkeypatch):
    monkeypatch.setenv("TRITONNX_RNN_MODE", mode)
    f = random_inputs("GRU", 4, 2, 3, 5, seed=8, h0=True)
    model, feeds = _model([("GRU", dict(linear_before_reset=1, layout=0), 2)], [f])
    _compare(model, feeds, n_fused=1)


def test_one_recurrent_attribute_list():
    """rnn_reference.ATTRIBUTES is the one list: the reference functions, the standard handlers
    and the fused ops' schemas take exactly those attributes (the opset 1-6 output_sequence and
    the prepare step's `prepared` weights, which are no ONNX attribute, aside)."""
    import inspect

    from tritonnx.runtime.ops import fused_recurrent, recurrent as std_recurrent
    from tritonnx.triton_kernels import rnn_reference

    for op, fn in (("LSTM", rnn_reference.lstm), ("GRU", rnn_reference.gru), ("RNN", rnn_reference.rnn)):
        params = inspect.signature(fn).parameters
        keywords = {n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert keywords == set(rnn_reference.ATTRIBUTES[op])
        assert [n for n, p in params.items() if p.kind is not inspect.Parameter.KEYWORD_ONLY] == \
            list(rnn_reference.INPUTS[op])
        std = inspect.signature(getattr(std_recurrent, op)).parameters
        assert {n for n, p in std.items() if p.kind is inspect.Parameter.KEYWORD_ONLY} \
            - {"output_sequence", "prepared"} == keywords
        schema = next(s for s in fused_recurrent.SCHEMAS if s.name == op)
        assert set(schema.attributes) == keywords
        assert [i.name for i in schema.inputs] == list(rnn_reference.INPUTS[op])


def test_fused_recurrent_handler_refuses_unknown_attributes():
    import torch

    from tritonnx.errors import InvalidArgument
    from tritonnx.runtime.ops import fused_recurrent

    x, w, r = torch.randn(2, 1, 3), torch.randn(1, 4, 3), torch.randn(1, 4, 4)
    with pytest.raises(InvalidArgument, match="unknown attribute"):
        fused_recurrent.RNN(x, w, r, hidden_size=4, hiden_size=4)
