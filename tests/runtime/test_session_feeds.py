"""Wrong feeds fail before anything runs, with onnxruntime-like messages naming the input."""
import numpy as np
import pytest
from onnx import parser

from tritonnx.errors import InvalidArgument, TritonnxError
from tritonnx.runtime import InferenceSession
from tritonnx.runtime.registry import OPS

MODEL = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 3, 4] x, int64[2] idx) => (float[N, 3, 4] y)
{ y = Relu(x) }
""")


@pytest.fixture(scope="module")
def sess():
    return InferenceSession(MODEL)


def _feed(**over):
    feed = {"x": np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32),
            "idx": np.array([1, 2], dtype=np.int64)}
    feed.update(over)
    return feed


@pytest.fixture()
def no_launch(monkeypatch, sess):
    """Any handler call fails the test: validation must come first."""
    calls = []
    monkeypatch.setattr(sess._executor, "execute_eager", lambda *a, **k: calls.append(a) or pytest.fail("launched"))
    return calls


CASES = [
    ("unknown name", dict(extra=np.zeros(1, np.float32)), r"Invalid input name: extra"),
    ("wrong dtype", dict(x=np.zeros((2, 3, 4), np.float64)),
     r"Unexpected input data type for input 'x'\. Actual: \(tensor\(double\)\) , expected: \(tensor\(float\)\)"),
    ("wrong int dtype", dict(idx=np.array([1, 2], np.int32)),
     r"input 'idx'\. Actual: \(tensor\(int32\)\) , expected: \(tensor\(int64\)\)"),
    ("wrong rank", dict(x=np.zeros((2, 12), np.float32)), r"Invalid rank for input: x Got: 2 Expected: 3"),
    ("wrong fixed dim", dict(x=np.zeros((2, 5, 4), np.float32)),
     r"Got invalid dimensions for input: x for the following indices\n index: 1 Got: 5 Expected: 3"),
    ("wrong fixed dim int", dict(idx=np.array([1, 2, 3], np.int64)), r"input: idx .*\n index: 0 Got: 3 Expected: 2"),
]


@pytest.mark.parametrize("case, over, message", CASES, ids=[c[0] for c in CASES])
def test_bad_feed(sess, no_launch, case, over, message):
    feed = _feed(**over)
    with pytest.raises(InvalidArgument, match=message):
        sess.run(None, feed)
    assert not no_launch


def test_missing_input(sess, no_launch):
    feed = _feed()
    del feed["x"]
    with pytest.raises(InvalidArgument, match=r"Required inputs \(\['x'\]\) are missing from input feed \(\['idx'\]\)"):
        sess.run(None, feed)
    with pytest.raises(InvalidArgument, match="Invalid output name: q"):
        sess.run(["q"], _feed())
    assert not no_launch


def test_errors_are_catchable_as_value_errors(sess):
    with pytest.raises(ValueError):
        sess.run(None, _feed(x=np.zeros((2, 12), np.float32)))
    with pytest.raises(TritonnxError):
        sess.run(None, {})


def test_symbolic_dim_accepts_any_size(sess):
    for n in (1, 5):
        (y,) = sess.run(None, _feed(x=np.full((n, 3, 4), -1.5, np.float32)))
        assert y.shape == (n, 3, 4) and not y.any()


def test_handler_error_names_the_node():
    def Boom(x):  # noqa: N802 - named like an op
        raise InvalidArgument("Boom: input x is bad")

    OPS.add("Boom", Boom, domain="test.boom")
    try:
        model = parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 18, "test.boom" : 1]>
        g (float[2] x) => (float[2] y) { y = test.boom.Boom(x) }
        """)
        model.graph.node[0].name = "the_boom"
        s = InferenceSession(model)
        with pytest.raises(InvalidArgument, match=r"node 'the_boom' \(Boom\): Boom: input x is bad"):
            s.run(None, {"x": np.ones(2, np.float32)})
    finally:
        OPS.handlers.pop(("test.boom", "Boom"), None)
