"""Loading as onnxruntime loads: each hand-built model below is given to onnxruntime (CPU) and
to tritonnx side by side. Where onnxruntime accepts it, tritonnx accepts it (with at most a
warning) and gives the same outputs; where onnxruntime refuses it, tritonnx refuses it with its
own one-line error. The expectation is written down too, so a change of either side shows."""
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from tritonnx.errors import InvalidArgument, InvalidGraph, NotImplemented, TritonnxError
from tritonnx.runtime import InferenceSession
from tritonnx.runtime.loader import supported_opsets


def _base(ir=8, opset=18, name="g", in_shape=(2, 3), out_shape=(2, 3), init_as_input=False):
    b = numpy_helper.from_array(np.array([1.0, -2.0, 3.0], np.float32), "b")
    nodes = [helper.make_node("Add", ["x", "b"], ["t"], name="add"),
             helper.make_node("Relu", ["t"], ["y"], name="relu")]
    inputs = [helper.make_tensor_value_info("x", TP.FLOAT, None if in_shape is None else list(in_shape))]
    if init_as_input:
        inputs.append(helper.make_tensor_value_info("b", TP.FLOAT, [3]))
    graph = helper.make_graph(nodes, name, inputs,
                              [helper.make_tensor_value_info("y", TP.FLOAT, None if out_shape is None else list(out_shape))],
                              [b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)


def _edit(fn, **kw):
    def build():
        model = _base(**kw)
        fn(model)
        return model
    return build


def _sparse(model):
    values = numpy_helper.from_array(np.array([5.0], np.float32), "sb")
    model.graph.sparse_initializer.append(
        helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([1], np.int64), "idx"), [3]))
    model.graph.node[0].input[1] = "sb"


def _value_info(name, elem, shape):
    return lambda m: m.graph.value_info.append(helper.make_tensor_value_info(name, elem, shape))


def _output(elem, shape):
    return lambda m: m.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", elem, shape))


def _untyped_output(m):
    m.graph.output[0].type.Clear()


def _set(path, value):
    def fn(m):
        obj = m
        for part in path[:-1]:
            obj = getattr(obj, part) if not isinstance(part, int) else obj[part]
        if isinstance(path[-1], int):
            obj[path[-1]] = value
        else:
            setattr(obj, path[-1], value)
    return fn


def _dup_initializer(m):
    m.graph.initializer.append(numpy_helper.from_array(np.array([4.0, 5.0, 6.0], np.float32), "b"))


def _dropout_with_unnamed_mask(m):
    """Relu -> Dropout(y, "") : the mask output left unnamed (constant folding once made an
    unnamed initializer of it)."""
    m.graph.node[1].output[0] = "r"
    m.graph.node.append(helper.make_node("Dropout", ["r"], ["y", ""], name="drop"))


def _opset(domain, version):
    return lambda m: m.opset_import.append(helper.make_opsetid(domain, version))


def _node_domain(op, domain):
    def fn(m):
        m.graph.node[1].op_type = op
        m.graph.node[1].domain = domain
    return fn


#: name -> (model builder, onnxruntime accepts it, tritonnx's error type and message when refused)
ACCEPTED = {
    "io_without_shape": _base(in_shape=None, out_shape=None),
    "output_without_type": _edit(_untyped_output)(),
    "ir3_initializer_not_an_input": _base(ir=3),
    "ir3_initializer_as_input": _base(ir=3, init_as_input=True),
    "ir0_with_opset_import": _base(ir=0),
    "ir2_with_opset_import": _base(ir=2),
    "empty_graph_name": _base(name=""),
    "newest_opset": _base(opset=supported_opsets()[""]),
    "newest_ir": _base(ir=onnx.IR_VERSION),
    "ai_onnx_node_domain": _edit(_set(("graph", "node", 1, "domain"), "ai.onnx"))(),
    "ai_onnx_opset_domain": _edit(_set(("opset_import", 0, "domain"), "ai.onnx"))(),
    "duplicate_initializer_last_wins": _edit(_dup_initializer)(),
    "nodes_not_sorted": _edit(lambda m: m.graph.node.reverse())(),
    "sparse_initializer": _edit(_sparse)(),
    "value_info_other_shape": _edit(_value_info("t", TP.FLOAT, [5, 7]))(),
    "value_info_without_type": _edit(lambda m: m.graph.value_info.add().MergeFrom(onnx.ValueInfoProto(name="t")))(),
    "output_other_shape": _edit(_output(TP.FLOAT, [5, 7]))(),
    "output_other_rank": _edit(_output(TP.FLOAT, [2]))(),
    "unused_initializer": _edit(lambda m: m.graph.initializer.append(
        numpy_helper.from_array(np.ones(3, np.float32), "unused_w")))(),
    "empty_node_names": _edit(lambda m: [n.ClearField("name") for n in m.graph.node])(),
    "com_microsoft_without_opset_import": _edit(_node_domain("Gelu", "com.microsoft"))(),
    "unused_domain_import": _edit(_opset("com.example", 99))(),
    "ml_opset_5_unused": _edit(_opset("ai.onnx.ml", 5))(),
    "duplicate_opset_import": _edit(_opset("", 17))(),
    "initializer_input_symbolic_dim": _edit(lambda m: m.graph.input[1].CopyFrom(
        helper.make_tensor_value_info("b", TP.FLOAT, ["n"])), init_as_input=True)(),
    "input_is_an_output": _edit(lambda m: m.graph.output.append(
        helper.make_tensor_value_info("x", TP.FLOAT, [2, 3])))(),
    "trailing_unnamed_output": _edit(_dropout_with_unnamed_mask)(),
    "symbolic_and_negative_dims": _edit(lambda m: (
        _set(("graph", "input", 0, "type", "tensor_type", "shape", "dim", 0, "dim_param"), "N")(m),
        _set(("graph", "input", 0, "type", "tensor_type", "shape", "dim", 1, "dim_value"), -1)(m)))(),
}

REFUSED = {
    "opset_newer_than_released": (_base(opset=supported_opsets()[""] + 1), NotImplemented, "opset .* up to"),
    "ir_newer_than_known": (_base(ir=onnx.IR_VERSION + 1), NotImplemented, "IR version .* up to"),
    "ml_opset_newer": (_edit(_opset("ai.onnx.ml", supported_opsets()["ai.onnx.ml"] + 1))(), NotImplemented,
                       "ai.onnx.ml"),
    "com_microsoft_opset_2": (_edit(_opset("com.microsoft", 2))(), NotImplemented, "com.microsoft opsets up to 1"),
    "duplicate_node_names": (_edit(_set(("graph", "node", 1, "name"), "add"))(), InvalidGraph, "two nodes named 'add'"),
    "output_other_type": (_edit(_output(TP.DOUBLE, [2, 3]))(), InvalidGraph, "type error.*relu"),
    "value_info_other_type": (_edit(_value_info("t", TP.DOUBLE, [2, 3]))(), InvalidGraph, "type error.*add"),
    "input_type_contradicts_use": (_edit(_set(("graph", "input", 0, "type", "tensor_type", "elem_type"), TP.DOUBLE))(),
                                   InvalidGraph, "type error.*add"),
    "domain_not_imported": (_edit(_node_domain("Foo", "com.example"))(), InvalidGraph, "No opset import.*com.example"),
    "unknown_attribute": (_edit(lambda m: m.graph.node[1].attribute.append(helper.make_attribute("foo", 1)))(),
                          InvalidGraph, "Unrecognized attribute: foo"),
    "unknown_standard_op": (_edit(_node_domain("Relu6", ""))(), InvalidGraph, "Relu6"),
    "empty_required_input": (_edit(_set(("graph", "node", 0, "input", 1), ""))(), InvalidGraph, "empty string"),
    "initializer_input_other_dims": (_edit(lambda m: m.graph.input[1].CopyFrom(
        helper.make_tensor_value_info("b", TP.FLOAT, [4])), init_as_input=True)(), InvalidGraph,
        r"initializer 'b' \[3\] does not match .* \[4\]"),
    "initializer_input_other_rank": (_edit(lambda m: m.graph.input[1].CopyFrom(
        helper.make_tensor_value_info("b", TP.FLOAT, ["n", 3])), init_as_input=True)(), InvalidGraph,
        r"initializer 'b' \[3\] does not match .* \['\?', 3\]"),
    "ssa_violation": (_edit(lambda m: (_set(("graph", "node", 1, "output", 0), "x")(m),
                                       _set(("graph", "output", 0, "name"), "x")(m)))(), InvalidGraph, "'x'"),
}


def _x():
    return np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32) + 0.1


def _feed(sess):
    return {"x": _x()} if [i.name for i in sess.get_inputs()] == ["x"] else {}


def _ort_session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_like_onnxruntime(name):
    model = ACCEPTED[name]
    ref = _ort_session(model)
    expected = ref.run(None, _feed(ref))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sess = InferenceSession(model.SerializeToString())
    ours = [w for w in caught if "loaded as onnxruntime loads it" in str(w.message)]
    assert len(ours) <= 1, [str(w.message) for w in ours]
    assert [i.name for i in sess.get_inputs()] == [i.name for i in ref.get_inputs()]
    assert [o.name for o in sess.get_outputs()] == [o.name for o in ref.get_outputs()]
    got = sess.run(None, _feed(sess))
    for a, b in zip(got, expected):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # erf (Gelu) differs in the last bits


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_like_onnxruntime(name):
    model, error, match = REFUSED[name]
    with pytest.raises(Exception):
        _ort_session(model)
    with pytest.raises(error, match=match) as info:
        InferenceSession(model.SerializeToString())
    assert isinstance(info.value, TritonnxError)
    assert "\n" not in str(info.value)


def test_warning_names_the_fault():
    with pytest.warns(RuntimeWarning, match="onnx.checker finds fault.*name"):
        InferenceSession(ACCEPTED["empty_graph_name"])
    with pytest.warns(RuntimeWarning, match="duplicate initializer.*'b'"):
        InferenceSession(ACCEPTED["duplicate_initializer_last_wins"])


def test_supported_opsets_come_from_onnx():
    limits = supported_opsets()
    assert limits[""] == onnx.defs.onnx_opset_version()
    assert limits["com.microsoft"] == 1 and "ai.onnx.ml" in limits


@pytest.mark.parametrize("declared, fed, accepted", [
    ([], (), True), ([], (1,), True), ([], (2, 3), True), ([], (0,), True),
    ([1], (), False), ([2], (1, 2), False), (["N", 2], (2,), False),
], ids=["scalar-0d", "scalar-fed-[1]", "scalar-fed-2x3", "scalar-fed-empty", "[1]-fed-0d", "[2]-fed-1x2", "Nx2-fed-2"])
def test_feed_rank_like_onnxruntime(declared, fed, accepted):
    """onnxruntime checks a feed's rank against a declared shape, except a declared scalar
    (shape []), which takes any rank (models declare `sr` or a trip count so and are fed [1])."""
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Neg", ["x"], ["y"])], "g", [helper.make_tensor_value_info("x", TP.FLOAT, declared)],
        [helper.make_tensor_value_info("y", TP.FLOAT, None)]), opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    feed = {"x": np.random.default_rng(0).standard_normal(fed).astype(np.float32)}
    quiet = ort.SessionOptions()
    quiet.log_severity_level = 3  # its warning that the output's shape differs from the declared one
    ref = ort.InferenceSession(model.SerializeToString(), quiet, providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the output declared without a shape
        sess = InferenceSession(model.SerializeToString())
    if accepted:
        np.testing.assert_array_equal(sess.run(None, feed)[0], ref.run(None, feed)[0])
        return
    with pytest.raises(Exception, match="Invalid rank"):
        ref.run(None, feed)
    with pytest.raises(InvalidArgument, match=f"Invalid rank for input: x Got: {len(fed)} Expected: {len(declared)}"):
        sess.run(None, feed)


FEED_FORMS = {  # name -> (the feed for a float [None] input, onnxruntime's error or None)
    "list-of-ints": ([1, 2], None),
    "list-of-float64": ([1.5, 2.5], None),
    "empty-list": ([], None),
    "tuple": ((1.0, 2.0), "list of dictionaries or a single numpy array"),
    "numpy-scalar": (np.float32(1.0), "Unable to handle object of type"),
    "python-scalar": (1.0, "Unable to handle object of type"),
    "ragged-list": ([[1.0], [2.0, 3.0]], "Could not create tensor from given input list"),
}


@pytest.mark.parametrize("name", sorted(FEED_FORMS))
def test_feed_forms_like_onnxruntime(name):
    """Lists are converted to the input's type; tuples, numpy and Python scalars and ragged lists
    are refused, with onnxruntime's words."""
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["f"], ["y"])], "g", [helper.make_tensor_value_info("f", TP.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TP.FLOAT, [None])]), opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    feed, error = FEED_FORMS[name]
    ref = _ort_session(model)
    sess = InferenceSession(model.SerializeToString())
    if error is None:
        got, expected = sess.run(None, {"f": feed})[0], ref.run(None, {"f": feed})[0]
        assert got.dtype == expected.dtype and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        return
    with pytest.raises(Exception, match=error):
        ref.run(None, {"f": feed})
    with pytest.raises(InvalidArgument, match=error):
        sess.run(None, {"f": feed})
