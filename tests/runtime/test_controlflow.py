"""If, Loop and Scan against onnxruntime, side by side: outer-scope values, nested subgraphs,
subgraphs with their own initializers, loop-carried values, scan outputs along axes and
directions, dynamic trip counts and conditions, zero iterations, every opset where they
changed."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tritonnx.runtime import InferenceSession

ort = pytest.importorskip("onnxruntime")

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
#: every opset where If and Loop changed (10: If-1/Loop-1); onnxruntime 1.32 runs them all
IF_OPSETS = (10, 11, 13, 16, 19, 21, 23, 24, 25)
#: every opset where Scan changed after 8 (Scan 8's batched form has its own test)
SCAN_OPSETS = (9, 11, 16, 19, 21, 23, 24, 25)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, opset, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    ir = 8 if opset < 21 else 10 if opset < 24 else 11
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def _both(model, feeds, **options):
    """Run `model` in tritonnx and onnxruntime; return both output lists."""
    data = model.SerializeToString()
    ours = InferenceSession(data, providers=["CPUExecutionProvider"], **options).run(None, feeds)
    ref = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)
    return ours, ref


def _assert_same(ours, ref, rtol=1e-5, atol=1e-6):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        assert np.asarray(a).shape == np.asarray(b).shape
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


def _x(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)).astype(np.float32)


# --------------------------------------------------------------------------------------- If
def _if_model(opset):
    """y = If(sum(x) > 0): x * w_outer + 1 (then: an outer initializer and its own) else: a
    nested If on the same condition reading the outer `x` from two levels up."""
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    then = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "one"], ["t_out"])],
        "then", [], [_vi("t_out", F, [2, 3])], initializer=[one])
    inner_then = helper.make_graph([helper.make_node("Neg", ["x"], ["it"])], "inner_then", [],
                                   [_vi("it", F, [2, 3])])
    inner_else = helper.make_graph([helper.make_node("Abs", ["x"], ["ie"])], "inner_else", [],
                                   [_vi("ie", F, [2, 3])])
    els = helper.make_graph(
        [helper.make_node("If", ["flip"], ["e_out"], then_branch=inner_then, else_branch=inner_else)],
        "else", [], [_vi("e_out", F, [2, 3])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0) if opset >= 13 else
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["cond"]),
        helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=els),
    ]
    inits = [numpy_helper.from_array(np.full((2, 3), 2.0, np.float32), "w"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    return _model(nodes, [_vi("x", F, [2, 3]), _vi("flip", B, [])], [_vi("y", F, [2, 3])], opset, inits)


@pytest.mark.parametrize("opset", IF_OPSETS, ids=[f"opset{o}" for o in IF_OPSETS])
@pytest.mark.parametrize("sign,flip", [(1, False), (-1, True), (-1, False)],
                         ids=["then", "else-nested-then", "else-nested-else"])
def test_if_outer_scope_nested_and_own_initializers(opset, sign, flip):
    x = np.abs(_x((2, 3))) * sign
    feeds = {"x": x.astype(np.float32), "flip": np.array(flip)}
    _assert_same(*_both(_if_model(opset), feeds))


def test_if_condition_from_shapes_is_a_host_value():
    """A condition computed from shapes only runs on the host (no device sync on a GPU)."""
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["a"])], "then", [], [_vi("a", F, ["N", 3])])
    els = helper.make_graph([helper.make_node("Neg", ["x"], ["b"])], "else", [], [_vi("b", F, ["N", 3])])
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("Greater", ["n", "two"], ["big"]),
             helper.make_node("If", ["big"], ["y"], then_branch=then, else_branch=els)]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(2, np.int64), "two")]
    model = _model(nodes, [_vi("x", F, ["N", 3])], [_vi("y", F, ["N", 3])], 17, inits)
    sess = InferenceSession(model.SerializeToString(), fusion=False)
    step = next(s for s in sess._executor.steps if s.op_type == "If")
    assert "big" in sess._executor._host_values, "the condition is a host value"
    assert step.inputs[0] == "big"
    for n in (1, 4):
        x = _x((n, 3), n)
        _assert_same(sess.run(None, {"x": x}),
                     ort.InferenceSession(model.SerializeToString()).run(None, {"x": x}))


# --------------------------------------------------------------------------------------- Loop
def _loop_model(opset, with_m=True, with_cond=True):
    """Loop(M, cond): acc = acc + x * i (x from the outer scope), scan output acc per step;
    the body's condition is i < limit (limit from the outer scope)."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("Add", ["acc_in", "xi"], ["acc_out"]),
         helper.make_node("Identity", ["acc_out"], ["scan_out"]),
         helper.make_node("Less", ["i", "limit"], ["cond_out"])],
        "body", [_vi("i", I64, []), _vi("cond_in", B, []), _vi("acc_in", F, [2])],
        [_vi("cond_out", B, []), _vi("acc_out", F, [2]), _vi("scan_out", F, [2])])
    node = helper.make_node("Loop", ["M" if with_m else "", "cond" if with_cond else "", "acc0"],
                            ["acc", "scans"], body=body)
    inputs = [_vi("x", F, [2]), _vi("acc0", F, [2]), _vi("limit", I64, [])]
    if with_m:
        inputs.append(_vi("M", I64, []))
    if with_cond:
        inputs.append(_vi("cond", B, []))
    return _model([node], inputs, [_vi("acc", F, [2]), _vi("scans", F, [None, 2])], opset)


@pytest.mark.parametrize("opset", IF_OPSETS, ids=[f"opset{o}" for o in IF_OPSETS])
@pytest.mark.parametrize("m,cond,limit", [(5, True, 100), (5, True, 2), (0, True, 100), (3, False, 100)],
                         ids=["trip-count", "condition-stops", "zero-trips", "cond-false"])
def test_loop_carried_and_scan_outputs(opset, m, cond, limit):
    feeds = {"x": _x((2,)), "acc0": _x((2,), 1), "limit": np.array(limit, np.int64),
             "M": np.array(m, np.int64), "cond": np.array(cond)}
    _assert_same(*_both(_loop_model(opset), feeds))


@pytest.mark.parametrize("with_m,with_cond", [(False, True), (True, False)], ids=["no-M", "no-cond"])
def test_loop_optional_trip_count_or_condition(with_m, with_cond):
    feeds = {"x": _x((2,)), "acc0": _x((2,), 1), "limit": np.array(3, np.int64)}
    if with_m:
        feeds["M"] = np.array(4, np.int64)
    if with_cond:
        feeds["cond"] = np.array(True)
    _assert_same(*_both(_loop_model(16, with_m, with_cond), feeds))


def test_loop_dynamic_trip_count_from_shape_and_nested_if():
    """M = x.shape[0] (host shape arithmetic), and an If inside the body that reads both the
    body's iteration number and a value of the main graph."""
    then = helper.make_graph([helper.make_node("Add", ["acc_in", "w"], ["t"])], "then", [], [_vi("t", F, [3])])
    els = helper.make_graph([helper.make_node("Sub", ["acc_in", "w"], ["e"])], "else", [], [_vi("e", F, [3])])
    body = helper.make_graph(
        [helper.make_node("Mod", ["i", "two"], ["odd_i"]),
         helper.make_node("Equal", ["odd_i", "one"], ["odd"]),
         helper.make_node("If", ["odd"], ["acc_out"], then_branch=then, else_branch=els),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", I64, []), _vi("cond_in", B, []), _vi("acc_in", F, [3])],
        [_vi("cond_out", B, []), _vi("acc_out", F, [3])],
        initializer=[numpy_helper.from_array(np.array(2, np.int64), "two"),
                     numpy_helper.from_array(np.array(1, np.int64), "one")])
    nodes = [helper.make_node("Shape", ["x"], ["shape"]),
             helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
             helper.make_node("ReduceSum", ["x", "axes0"], ["acc0"], keepdims=0),
             helper.make_node("Loop", ["n", "", "acc0"], ["acc"], body=body)]
    inits = [numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes0"),
             numpy_helper.from_array(np.array([0.5, 1.0, 2.0], np.float32), "w")]
    model = _model(nodes, [_vi("x", F, ["N", 3])], [_vi("acc", F, [3])], 18, inits)
    for n in (0, 1, 4):
        _assert_same(*_both(model, {"x": _x((n, 3), n)}))


# --------------------------------------------------------------------------------------- a voice model's If
H = 4


def _vad_branch(tag, seed, kernel):
    """One sample rate's network, silero-VAD style: Conv(1->4)+Relu+MaxPool over the samples,
    an LSTM over the pooled frames started from the outer `state`, a Sigmoid head; its own
    weights (the branch's initializers), the outer `input` and `state` read from the enclosing graph."""
    rng = np.random.default_rng(seed)
    def w(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.5).astype(np.float32), f"{tag}_{name}")
    conv_w, conv_b = w("conv_w", 4, 1, 1, kernel), w("conv_b", 4)
    lstm_w, lstm_r, lstm_b = w("lstm_w", 1, 4 * H, 4), w("lstm_r", 1, 4 * H, H), w("lstm_b", 1, 8 * H)
    head_w = w("head_w", H, 1)
    names = {k: t.name for k, t in dict(cw=conv_w, cb=conv_b, lw=lstm_w, lr=lstm_r, lb=lstm_b, hw=head_w).items()}
    axes = numpy_helper.from_array(np.array([1, 2], np.int64), f"{tag}_axes")
    sq = numpy_helper.from_array(np.array([2], np.int64), f"{tag}_sq")
    split = numpy_helper.from_array(np.array([1, 1], np.int64), f"{tag}_split")
    nodes = [
        helper.make_node("Unsqueeze", ["input", axes.name], [f"{tag}_x4"]),                  # [B, 1, 1, T]
        helper.make_node("Conv", [f"{tag}_x4", names["cw"], names["cb"]], [f"{tag}_c"]),     # [B, 4, 1, T-k+1]
        helper.make_node("Relu", [f"{tag}_c"], [f"{tag}_r"]),
        helper.make_node("MaxPool", [f"{tag}_r"], [f"{tag}_p"], kernel_shape=[1, 2], strides=[1, 2]),
        helper.make_node("Squeeze", [f"{tag}_p", sq.name], [f"{tag}_f"]),                    # [B, 4, T']
        helper.make_node("Transpose", [f"{tag}_f"], [f"{tag}_seq"], perm=[2, 0, 1]),          # [T', B, 4]
        helper.make_node("Split", ["state", split.name], [f"{tag}_h0", f"{tag}_c0"], axis=0),
        helper.make_node("LSTM", [f"{tag}_seq", names["lw"], names["lr"], names["lb"], "", f"{tag}_h0", f"{tag}_c0"],
                         ["", f"{tag}_hn", f"{tag}_cn"], hidden_size=H),
        helper.make_node("Concat", [f"{tag}_hn", f"{tag}_cn"], [f"{tag}_state"], axis=0),
        helper.make_node("Squeeze", [f"{tag}_hn", f"{tag}_sq0"], [f"{tag}_h"]),
        helper.make_node("MatMul", [f"{tag}_h", names["hw"]], [f"{tag}_logit"]),
        helper.make_node("Sigmoid", [f"{tag}_logit"], [f"{tag}_prob"]),
    ]
    inits = [conv_w, conv_b, lstm_w, lstm_r, lstm_b, head_w, axes, sq, split,
             numpy_helper.from_array(np.array([0], np.int64), f"{tag}_sq0")]
    return helper.make_graph(nodes, tag, [], [_vi(f"{tag}_prob", F, ["B", 1]), _vi(f"{tag}_state", F, [2, "B", H])],
                             initializer=inits)


def _voice_model():
    nodes = [helper.make_node("Equal", ["sr", "sr16k"], ["is16k"]),
             helper.make_node("If", ["is16k"], ["prob", "stateN"], name="sample_rate",
                              then_branch=_vad_branch("sr16k_net", 1, 5), else_branch=_vad_branch("sr8k_net", 2, 3))]
    graph = helper.make_graph(nodes, "vad", [_vi("input", F, ["B", "T"]), _vi("state", F, [2, "B", H]), _vi("sr", I64, [])],
                              [_vi("prob", F, ["B", 1]), _vi("stateN", F, [2, "B", H])],
                              initializer=[numpy_helper.from_array(np.array(16000, np.int64), "sr16k")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_voice_model_picks_its_sample_rate_branch():
    """The issue's example: a VAD model picks its 16 kHz or 8 kHz network with If on the `sr`
    feed; each branch's Conv+Relu+MaxPool and LSTM are fused where they live, and `sr` is taken
    as onnxruntime takes a declared scalar: 0-d or [1]."""
    model = _voice_model().SerializeToString()
    sess = InferenceSession(model, providers=["CPUExecutionProvider"])
    where = sorted(str(g).rsplit(" in ", 1)[1] for g in sess.fusion_report().fused)
    assert where == ["If 'sample_rate' else_branch"] * 2 + ["If 'sample_rate' then_branch"] * 2
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for sr in (np.array(16000), np.array([8000]), np.array(8000), np.array([16000])):
        feeds = {"input": rng.standard_normal((2, 32)).astype(np.float32),
                 "state": rng.standard_normal((2, 2, H)).astype(np.float32), "sr": sr.astype(np.int64)}
        _assert_same(sess.run(None, feeds), ref.run(None, feeds))


# --------------------------------------------------------------------------------------- Scan
def _scan_model(opset, in_axis, in_dir, out_axis, out_dir):
    """Scan over x [T=4, 3] or [3, 4] (axis 1): state s = s + x_t * w (w from the outer
    scope), scan outputs s and x_t * 2."""
    body = helper.make_graph(
        [helper.make_node("Mul", ["x_t", "w"], ["xw"]),
         helper.make_node("Add", ["s_in", "xw"], ["s_out"]),
         helper.make_node("Add", ["x_t", "x_t"], ["x2"]),
         helper.make_node("Identity", ["s_out"], ["s_scan"])],
        "body", [_vi("s_in", F, [3]), _vi("x_t", F, [3])],
        [_vi("s_out", F, [3]), _vi("s_scan", F, [3]), _vi("x2", F, [3])])
    node = helper.make_node("Scan", ["s0", "x"], ["s", "ss", "xs"], body=body, num_scan_inputs=1,
                            scan_input_axes=[in_axis], scan_input_directions=[in_dir],
                            scan_output_axes=[out_axis, out_axis], scan_output_directions=[out_dir, 1 - out_dir])
    shape = [4, 3] if in_axis in (0, -2) else [3, 4]
    return _model([node], [_vi("s0", F, [3]), _vi("x", F, shape), _vi("w", F, [3])],
                  [_vi("s", F, [3]), _vi("ss", F, ["A", "B"]), _vi("xs", F, ["A", "B"])], opset), shape


@pytest.mark.parametrize("opset", SCAN_OPSETS, ids=[f"opset{o}" for o in SCAN_OPSETS])
@pytest.mark.parametrize("in_axis,in_dir,out_axis,out_dir", [(0, 0, 0, 0), (1, 1, 1, 0), (-1, 0, -1, 1)],
                         ids=["forward", "reverse-in-axis1", "negative-axes"])
def test_scan_axes_and_directions(opset, in_axis, in_dir, out_axis, out_dir):
    if opset < 11 and (in_axis < 0 or out_axis < 0):
        pytest.skip("negative scan axes arrive in opset 11")
    model, shape = _scan_model(opset, in_axis, in_dir, out_axis, out_dir)
    feeds = {"s0": _x((3,)), "x": _x(shape, 1), "w": _x((3,), 2)}
    _assert_same(*_both(model, feeds))


def test_scan8_batched_with_sequence_lens():
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y"])],
        "body", [_vi("s_in", F, [2]), _vi("x_t", F, [2])], [_vi("s_out", F, [2]), _vi("y", F, [2])])
    node = helper.make_node("Scan", ["lens", "s0", "x"], ["s", "ys"], body=body, num_scan_inputs=1,
                            directions=[1])
    model = _model([node], [_vi("lens", I64, [2]), _vi("s0", F, [2, 2]), _vi("x", F, [2, 3, 2])],
                   [_vi("s", F, [2, 2]), _vi("ys", F, [2, 3, 2])], 8)
    model.ir_version = 4
    feeds = {"lens": np.array([3, 2], np.int64), "s0": _x((2, 2)), "x": _x((2, 3, 2), 1)}
    _assert_same(*_both(model, feeds))


def test_subgraph_reads_initializer_kept_alive():
    """An initializer and an intermediate used only inside a body are kept until the node runs."""
    then = helper.make_graph([helper.make_node("Add", ["h", "w"], ["a"])], "then", [], [_vi("a", F, [3])])
    els = helper.make_graph([helper.make_node("Sub", ["h", "w"], ["b"])], "else", [], [_vi("b", F, [3])])
    nodes = [helper.make_node("Relu", ["x"], ["h"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els)]
    model = _model(nodes, [_vi("x", F, [3]), _vi("c", B, [])], [_vi("y", F, [3])], 18,
                   [numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "w")])
    for c in (True, False):
        _assert_same(*_both(model, {"x": _x((3,)), "c": np.array(c)}))


def test_loop_without_carried_values_scan_output_only():
    """Loop(M, "") with only a scan output (onnx-ir drops the trailing absent input when it
    serializes the rewritten model: the passes put it back)."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F), helper.make_node("Mul", ["x", "fi"], ["y"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", I64, []), _vi("cond_in", B, [])], [_vi("cond_out", B, []), _vi("y", F, [2])])
    model = _model([helper.make_node("Loop", ["M", ""], ["ys"], body=body)],
                   [_vi("x", F, [2]), _vi("M", I64, [])], [_vi("ys", F, ["T", 2])], 18)
    for m in (0, 3):
        _assert_same(*_both(model, {"x": _x((2,)), "M": np.array(m, np.int64)}))
    assert len(next(n for n in InferenceSession(model.SerializeToString()).rewritten_model().graph.node).input) == 2


# --------------------------------------------------------------------------------------- GPU logic, on the CPU
class _StandInGraphs:
    """CUDA-graph stand-in: capture remembers the function, replay re-runs it (see
    tests/runtime/test_session_graphs.py)."""

    def __init__(self):
        self.captures = self.replays = 0

    def warmup(self, fn):
        fn()

    def capture(self, fn):
        self.captures += 1
        outputs = fn()
        return (fn, outputs), outputs

    def replay(self, graph):
        self.replays += 1
        fn, outputs = graph
        for static, fresh in zip(outputs, fn()):
            static.copy_(fresh)

    def recover(self):
        pass


def test_fed_trip_count_and_condition_stay_on_the_host_and_key_the_graph():
    """Loop's M and cond fed by the user are kept on the host (the decision needs no device
    sync); a captured graph is keyed by their values, so another M is another graph."""
    import dataclasses

    model = _loop_model(16)
    sess = InferenceSession(model.SerializeToString(), fusion=False)
    ex = sess._executor
    assert ex.host_feed_inputs == {"M", "cond"}
    ex.ctx = dataclasses.replace(ex.ctx, cuda_graphs=True)
    ex.graph_backend = _StandInGraphs()
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for m in (2, 3, 2):
        feeds = {"x": _x((2,)), "acc0": _x((2,), 1), "limit": np.array(100, np.int64),
                 "M": np.array(m, np.int64), "cond": np.array(True)}
        _assert_same(sess.run(None, feeds), ref.run(None, feeds))
    assert ex.graph_backend.captures == 2 and ex.graph_backend.replays == 3


def test_feed_used_beyond_a_decision_is_not_a_host_feed():
    """`c` decides an If and is data for Not; `x` is read inside the branches: both go to the
    device like any feed."""
    then = helper.make_graph([helper.make_node("Not", ["x"], ["a"])], "then", [], [_vi("a", B, [])])
    els = helper.make_graph([helper.make_node("Identity", ["x"], ["b"])], "else", [], [_vi("b", B, [])])
    model = _model([helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=els),
                    helper.make_node("Not", ["c"], ["nc"])],
                   [_vi("c", B, []), _vi("x", B, [])], [_vi("y", B, []), _vi("nc", B, [])], 18)
    assert InferenceSession(model.SerializeToString())._executor.host_feed_inputs == frozenset()


def test_capture_transfers_reuse_copies_by_order():
    """Inside control flow, the n-th host->device copy of a captured run reuses the n-th buffer."""
    import torch

    from tritonnx.runtime.subgraph import CaptureTransfers

    inner = CaptureTransfers()
    firsts = []
    for run in range(2):
        with inner.active():
            firsts.append([inner.copy(torch.tensor(float(i)), torch.device("cpu")) for i in range(3)])
    assert all(a is b for a, b in zip(*firsts))
    assert [t.item() for t in firsts[0]] == [0.0, 1.0, 2.0]


def test_unknown_op_inside_a_body_fails_at_load_naming_it():
    from tritonnx.errors import InvalidGraph, NotImplemented as NotImpl

    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("Acosh", ["x"], ["y"], domain="", name="deep")],
                             "body", [_vi("i", I64, []), _vi("cond_in", B, [])],
                             [_vi("cond_out", B, []), _vi("y", F, [2])])
    model = _model([helper.make_node("Loop", ["M", ""], ["ys"], body=body)],
                   [_vi("x", F, [2]), _vi("M", I64, [])], [_vi("ys", F, ["T", 2])], 18)
    model.graph.node[0].attribute[0].g.node[1].op_type = "NoSuchOp"
    with pytest.raises((NotImpl, InvalidGraph), match=r"NoSuchOp"):
        InferenceSession(model.SerializeToString())
