"""Sequence and optional values against onnxruntime, side by side: the sequence ops, values
carried through Loop and If, and sequences/optionals as session inputs and outputs in
onnxruntime's Python form (a list of arrays, None), with its type strings and feed checks."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import InferenceSession

ort = pytest.importorskip("onnxruntime")

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _seq(name, elem=F, shape=None):
    return helper.make_tensor_sequence_value_info(name, elem, shape)


def _opt(name, inner):
    return helper.make_value_info(name, helper.make_optional_type_proto(inner))


def _tensor_type(elem=F, shape=(2,)):
    return helper.make_tensor_type_proto(elem, list(shape))


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(nodes, inputs, outputs, opset=18, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def _both(model, feeds):
    data = model.SerializeToString()
    return (InferenceSession(data).run(None, feeds),
            ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds))


def _assert_same(ours, ref):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        if b is None:
            assert a is None
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b)
            _assert_same(a, b)
        else:
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_allclose(a, b, rtol=1e-6)


def _x(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)).astype(np.float32)


def test_sequence_ops_chain():
    """Construct, Insert (front and back), Erase, At (negative), Length, Split/ConcatFromSequence."""
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s1"]),
        helper.make_node("SequenceInsert", ["s1", "c", "zero"], ["s2"]),
        helper.make_node("SequenceInsert", ["s2", "a"], ["s3"]),
        helper.make_node("SequenceErase", ["s3", "one"], ["s4"]),
        helper.make_node("SequenceAt", ["s4", "minus_one"], ["last"]),
        helper.make_node("SequenceLength", ["s4"], ["n"]),
        helper.make_node("ConcatFromSequence", ["s4"], ["cat"], axis=1),
        helper.make_node("ConcatFromSequence", ["s4"], ["stacked"], axis=-1, new_axis=1),
        helper.make_node("SplitToSequence", ["cat", "sizes"], ["parts"], axis=1),
        helper.make_node("SplitToSequence", ["a"], ["rows"], axis=0, keepdims=0),
        helper.make_node("SequenceEmpty", [], ["empty"], dtype=F),
        helper.make_node("SequenceInsert", ["empty", "b"], ["one_elem"]),
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n)
             for n, v in (("zero", 0), ("one", 1), ("minus_one", -1), ("sizes", [1, 5]))]
    model = _model(nodes, [_vi(n, F, [2, 2]) for n in "abc"],
                   [_vi("last", F, [2, 2]), _vi("n", I64, []), _vi("cat", F, [2, 6]), _vi("stacked", F, [2, 2, 3]),
                    _seq("parts"), _seq("rows"), _seq("one_elem")], initializers=inits)
    feeds = {n: _x((2, 2), i) for i, n in enumerate("abc")}
    _assert_same(*_both(model, feeds))


def test_sequence_and_optional_session_io():
    """Inputs and outputs: a list of arrays for a sequence, None for an empty optional; the
    type strings and shapes as onnxruntime shows them."""
    nodes = [helper.make_node("Identity", ["s"], ["s_out"]),
             helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("Identity", ["o"], ["o_out"]),
             helper.make_node("Identity", ["os"], ["os_out"])]
    seq_of = helper.make_sequence_type_proto(_tensor_type())
    inputs = [_seq("s", F, [2, None]), _opt("o", _tensor_type()), _opt("os", seq_of)]
    outputs = [_seq("s_out", F, [2, None]), _vi("has", B, []), _opt("o_out", _tensor_type()), _opt("os_out", seq_of)]
    model = _model(nodes, inputs, outputs)
    ours = InferenceSession(model.SerializeToString())
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for a, b in zip(ours.get_inputs() + ours.get_outputs(), ref.get_inputs() + ref.get_outputs()):
        assert (a.name, a.type, a.shape) == (b.name, b.type, b.shape)
    assert ours.get_inputs()[0].type == "seq(tensor(float))"
    assert ours.get_inputs()[2].type == "optional(seq(tensor(float)))"
    for feeds in ({"s": [_x((2, 3))], "o": None, "os": None},
                  {"s": [], "o": _x((2,)), "os": [_x((2,), 1), _x((2,), 2)]},
                  {"s": [_x((2, 1)), _x((2, 4))]}):  # optional inputs left out: empty
        _assert_same(ours.run(None, feeds), ref.run(None, feeds))


@pytest.mark.parametrize("feeds,match", [
    ({"s": _x((2, 3)), "o": None}, "expected to be of type: seq"),
    ({"s": [np.ones((2, 3), np.int64)], "o": None}, "Unexpected input data type"),
    ({"s": [_x((2, 3))], "o": _x((2, 2))}, "Invalid rank|invalid dimensions"),
    ({"s": [_x((3, 3))], "o": None}, None),
], ids=["tensor-for-sequence", "element-dtype", "optional-rank", "element-dims-not-checked"])
def test_sequence_feed_validation(feeds, match):
    """Feeds are checked before anything runs (element dims are not: onnxruntime does not)."""
    model = _model([helper.make_node("Identity", ["s"], ["s_out"]), helper.make_node("Identity", ["o"], ["o_out"])],
                   [_seq("s", F, [2, None]), _opt("o", _tensor_type(shape=(2,)))],
                   [_seq("s_out"), _opt("o_out", _tensor_type(shape=(2,)))])
    sess = InferenceSession(model.SerializeToString())
    if match is None:
        assert sess.run(None, feeds)[0][0].shape == (3, 3)
        return
    with pytest.raises(InvalidArgument, match=match):
        sess.run(None, feeds)


def test_loop_builds_a_sequence_and_if_returns_an_optional():
    """Loop carries a sequence (SequenceInsert per step, starting from SequenceEmpty), If picks an
    optional's value or a fallback, SequenceMap maps a body over it."""
    body = helper.make_graph(
        [helper.make_node("Cast", ["i"], ["fi"], to=F),
         helper.make_node("Mul", ["x", "fi"], ["xi"]),
         helper.make_node("SequenceInsert", ["seq_in", "xi"], ["seq_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [_vi("i", I64, []), _vi("cond_in", B, []), _seq("seq_in")],
        [_vi("cond_out", B, []), _seq("seq_out")])
    then = helper.make_graph([helper.make_node("OptionalGetElement", ["o"], ["got"])], "then", [],
                             [_vi("got", F, [2])])
    els = helper.make_graph([helper.make_node("Identity", ["x"], ["fallback"])], "else", [], [_vi("fallback", F, [2])])
    square = helper.make_graph([helper.make_node("Mul", ["e", "e"], ["sq"])], "square", [_vi("e", F, [2])],
                               [_vi("sq", F, [2])])
    nodes = [helper.make_node("SequenceEmpty", [], ["empty"], dtype=F),
             helper.make_node("Loop", ["M", "", "empty"], ["built"], body=body),
             helper.make_node("SequenceMap", ["built"], ["squares"], body=square),
             helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("If", ["has"], ["picked"], then_branch=then, else_branch=els)]
    model = _model(nodes, [_vi("x", F, [2]), _vi("M", I64, []), _opt("o", _tensor_type())],
                   [_seq("built"), _seq("squares"), _vi("picked", F, [2])])
    for m, o in ((3, None), (0, _x((2,), 5))):
        _assert_same(*_both(model, {"x": _x((2,)), "M": np.array(m, np.int64), "o": o}))


def test_sequence_op_errors_name_the_node():
    model = _model([helper.make_node("SequenceConstruct", ["a"], ["s"]),
                    helper.make_node("SequenceAt", ["s", "p"], ["y"], name="at")],
                   [_vi("a", F, [2]), _vi("p", I64, [])], [_vi("y", F, [2])])
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(InvalidArgument, match=r"node 'at' \(SequenceAt\).*position 3 is out of range"):
        sess.run(None, {"a": _x((2,)), "p": np.array(3, np.int64)})
