"""Run plans (`executor.RunPlan`): one per input signature, its host-side shape arithmetic folded
into constants, a flat walk afterwards; data-dependent shapes keep the dynamic path."""
import threading

import numpy as np
import pytest
import torch
from onnx import parser

from tritonnx.runtime import InferenceSession, executor

#: the exporters' shape arithmetic: y = x reshaped to [N, 6] through Shape -> Gather -> Unsqueeze -> Concat
SHAPES = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 2, 3] x) => (float[N, 6] y, int64[3] s)
<int64 zero = {0}, int64[1] six = {6}, float[1] two = {2.0}>
{ s = Shape(x)
  n = Gather(s, zero)
  n1 = Unsqueeze(n, zero)
  shape = Concat <axis = 0> (n1, six)
  r = Reshape(x, shape)
  y = Mul(r, two) }
""")

#: NonZero's count is data: the Shape after it must be read on every run
NONZERO = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N] x) => (int64[1] count, float[M] doubled)
<int64 zero = {0}>
{ nz = NonZero(x)
  count = Shape(nz) <start = 1>
  flat = Squeeze(nz, zero)
  picked = Gather(x, flat)
  doubled = Add(picked, picked) }
""")

#: an initializer listed as an input, read as a shape: feeding it changes the output's shape
OVERRIDE = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 6] x, int64[2] shape) => (float[A, B] y)
<int64[2] shape = {3, 2}>
{ y = Reshape(x, shape) }
""")


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) + 0.5


def _plan(sess, feed):
    return sess._executor.plan_for(sess._validate(feed), [o.name for o in sess.get_outputs()])


def test_shape_chain_folded_and_the_plan_walked():
    sess = InferenceSession(SHAPES)
    x = _x(4, 2, 3)
    first = sess.run(None, {"x": x})
    plan = _plan(sess, {"x": x})
    assert plan is not None
    assert {s.op_type for s in plan.folded} == {"Shape", "Gather", "Unsqueeze", "Concat"}
    assert [op[0].op_type for op in plan.ops] == ["Reshape", "Mul"]  # device work only
    second = sess.run(None, {"x": x})
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(second[0], x.reshape(4, 6) * 2, rtol=1e-6)
    np.testing.assert_array_equal(second[1], [4, 2, 3])


def test_one_plan_per_signature_with_the_graphs_lru_bound():
    sess = InferenceSession(SHAPES, cuda_graphs_max_shapes=2)
    for n in (1, 2, 1, 3, 2, 3):
        x = _x(n, 2, 3, seed=n)
        for _ in range(2):
            y, s = sess.run(None, {"x": x})
            np.testing.assert_allclose(y, x.reshape(n, 6) * 2, rtol=1e-6)
            np.testing.assert_array_equal(s, [n, 2, 3])
    assert [sig[0][1] for sig in sess._executor._plans] == [(2, 2, 3), (3, 2, 3)]


def test_requested_outputs_only_and_folded_outputs_are_fresh():
    sess = InferenceSession(SHAPES)
    x = _x(2, 2, 3)
    for _ in range(2):
        (s,) = sess.run_torch(["s"], {"x": x})
        s.fill_(-1)  # the caller owns what it gets: the plan's constant is untouched
    (s,) = sess.run_torch(["s"], {"x": x})
    assert s.tolist() == [2, 2, 3]
    plan = sess._executor.plan_for(sess._validate({"x": x}), ["s"])
    assert plan.ops == ()  # nothing but folded shape arithmetic is needed for s


def test_data_dependent_shape_keeps_the_dynamic_path():
    sess = InferenceSession(NONZERO)
    for seed, x in enumerate([np.array([0, 1, 0, 2], np.float32), np.array([3, 1, 0, 2], np.float32),
                              np.array([0, 0, 0, 5], np.float32)]):
        for _ in range(2):
            count, doubled = sess.run(None, {"x": x})
            np.testing.assert_array_equal(count, [np.count_nonzero(x)])
            np.testing.assert_array_equal(doubled, 2 * x[x != 0])
    plan = _plan(sess, {"x": x})
    assert plan is not None and "Shape" in [op[0].op_type for op in plan.ops if op[0] is not None]


def test_an_unforeseen_data_dependent_shape_misses_its_guard(monkeypatch):
    """NonZero treated as shape-static: the guard on its output's shape catches the change."""
    monkeypatch.setattr(executor, "DATA_DEPENDENT_SHAPES", frozenset())
    sess = InferenceSession(NONZERO)
    a, b = np.array([0, 1, 0, 2], np.float32), np.array([3, 1, 0, 2], np.float32)
    sess.run(None, {"x": a})
    assert _plan(sess, {"x": a}) is not None
    with pytest.warns(RuntimeWarning, match="data-dependent shape"):
        count, doubled = sess.run(None, {"x": b})
    np.testing.assert_array_equal(count, [3])
    np.testing.assert_array_equal(doubled, 2 * b[b != 0])
    assert _plan(sess, {"x": b}) is None  # this signature walks from now on
    np.testing.assert_array_equal(sess.run(None, {"x": a})[0], [2])


def test_fed_initializer_read_as_a_shape_is_not_folded():
    sess = InferenceSession(OVERRIDE)
    x = _x(1, 6)
    for _ in range(2):
        assert sess.run(None, {"x": x})[0].shape == (3, 2)
    for shape in ([2, 3], [6, 1], [2, 3]):
        for _ in range(2):
            (y,) = sess.run(None, {"x": x, "shape": np.array(shape, np.int64)})
            np.testing.assert_array_equal(y, x.reshape(shape))


def test_threads_share_one_executor():
    sess = InferenceSession(SHAPES)
    errors = []

    def work(n):
        try:
            for i in range(6):
                x = _x(n, 2, 3, seed=i)
                y, _ = sess.run(None, {"x": x})
                np.testing.assert_allclose(y, x.reshape(n, 6) * 2, rtol=1e-6)
        except Exception as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2, 3, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_profile_runs_on_the_plan_and_reports_host_time():
    sess = InferenceSession(SHAPES)
    x = _x(3, 2, 3)
    outs, rows = sess.run_profiled(None, {"x": x})  # a new signature: planned first, then profiled
    np.testing.assert_allclose(outs[0].numpy(), x.reshape(3, 6) * 2, rtol=1e-6)
    assert isinstance(rows, executor.Profile) and rows.planned and rows.steps == 2
    assert [r.op_type for r in rows] == ["Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Mul"]
    assert {r.kernel for r in rows[:4]} == {executor.FOLDED_LABEL} and all(r.ms == 0.0 for r in rows[:4])
    assert rows.wall_ms >= rows.ops_ms >= 0 and rows.host_ms >= 0
    assert rows.host_us_per_step == pytest.approx(rows.host_ms * 1e3 / 2)


def test_stale_prepared_value_through_the_plan():
    """A feed overriding a constant that a prepare step used: the plan binds prepared=None."""
    model = parser.parse_model("""
    <ir_version: 8, opset_import: ["" : 18]>
    g (float[4, 1, 1] x, float[1, 8, 1] w) => (float[4, 1, 1, 2] y)
    <float[1, 8, 1] w = {1., 1., 1., 1., 1., 1., 1., 1.}, float[1, 8, 2] r = {0., 0., 0., 0., 0., 0., 0., 0.,
      0., 0., 0., 0., 0., 0., 0., 0.}>
    { y, h, c = LSTM <hidden_size = 2> (x, w, r) }
    """)
    sess = InferenceSession(model)
    x = _x(4, 1, 1)
    base = [sess.run(None, {"x": x})[0] for _ in range(2)]
    w = np.full((1, 8, 1), 0.5, np.float32)
    fed = [sess.run(None, {"x": x, "w": w})[0] for _ in range(2)]
    np.testing.assert_array_equal(base[0], base[1])
    np.testing.assert_array_equal(fed[0], fed[1])
    assert not np.allclose(base[0], fed[0])
    ref = InferenceSession(model)
    np.testing.assert_allclose(fed[1], ref.run(None, {"x": x, "w": w})[0], rtol=1e-6)


def test_feeds_and_results_stay_apart():
    sess = InferenceSession(SHAPES)
    x = torch.from_numpy(_x(2, 2, 3))
    kept = x.clone()
    for _ in range(3):
        y, s = sess.run_torch(None, {"x": x})
    torch.testing.assert_close(x, kept)
    torch.testing.assert_close(y, kept.reshape(2, 6) * 2)


#: the built-in ops `plan_fast` reduces to their torch call (weights random, non-zero)
_RNG = np.random.default_rng(11)
_W = ", ".join(f"{v:.4f}" for v in _RNG.standard_normal(3 * 2 * 3 * 3) * 0.3)
_G = ", ".join(f"{v:.4f}" for v in _RNG.standard_normal(4 * 12) * 0.3)
FAST = parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 2, 4, 4] x, int64[N, 2] tok) => (float[N, 4] y, float[N, 2, 4] e, float[N, 3, 2, 2] p)
<float[3, 2, 3, 3] w = {{{_W}}}, float[3] b = {{0.1, -0.2, 0.3}}, float[4, 12] gw = {{{_G}}},
 float[4] gb = {{0.5, -0.5, 0.25, 1.0}}, float[1] half = {{0.5}}, int64[1] one = {{1}}>
{{ c = Conv <pads = [1, 1, 1, 1]> (x, w, b)
   r = Relu(c)
   p = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (r)
   f = Flatten(p)
   g = Gemm <transB = 1> (f, gw, gb)
   d = Div(g, half)
   s = Sub(d, half)
   y = Mul(s, half)
   emb = Transpose <perm = [1, 0]> (y)
   e0 = Gather <axis = 0> (emb, tok)
   e1 = Transpose <perm = [1, 0, 2]> (e0)
   e2 = Unsqueeze(e1, one)
   e3 = Squeeze(e2, one)
   e = Add(e3, e3) }}
""")


def _fast_feeds(n, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((n, 2, 4, 4)).astype(np.float32),
            "tok": rng.integers(-4, 4, (n, 2)).astype(np.int64)}  # negatives count from the end


def test_plan_specializes_builtin_ops_with_the_handlers_results():
    import onnxruntime as ort

    sess = InferenceSession(FAST, fusion=False)  # Conv -> Relu -> MaxPool as three nodes
    ref = ort.InferenceSession(FAST.SerializeToString(), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        feeds = _fast_feeds(n, seed=n)
        first = sess.run(None, feeds)  # walks, makes the plan
        plan = sess._executor.plan_for(sess._validate(feeds), [o.name for o in sess.get_outputs()])
        special = [op[0].op_type for op in plan.ops if op[0] is not None and op[1] is not op[0].impl.fn]
        assert {"Conv", "Relu", "MaxPool", "Flatten", "Gemm", "Div", "Sub", "Mul", "Transpose", "Gather",
                "Unsqueeze", "Squeeze", "Add"} <= set(special)
        for seed in (n, n + 10):  # the plan's runs, on the same and on new values
            feeds = _fast_feeds(n, seed=seed)
            got, want = sess.run(None, feeds), ref.run(None, feeds)
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        for g, w in zip(first, ref.run(None, _fast_feeds(n, seed=n))):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_specialized_gather_still_checks_its_indices():
    sess = InferenceSession(FAST)
    sess.run(None, _fast_feeds(2))
    sess.run(None, _fast_feeds(2, seed=5))  # on the plan
    bad = _fast_feeds(2)
    bad["tok"][1, 0] = 7
    with pytest.raises(Exception, match="Gather: index 7 is out of range for an axis of size 4"):
        sess.run(None, bad)
    bad = _fast_feeds(2)
    bad["tok"][0, 1] = -5  # below -size: the handler's error too
    with pytest.raises(Exception, match="Gather: index -5 is out of range for an axis of size 4"):
        sess.run(None, bad)


def test_no_specialization_for_other_dtypes():
    from tritonnx.runtime import plan_fast

    step = next(s for s in InferenceSession(FAST)._executor.steps if s.op_type == "Add")
    half = (torch.float16, (2, 2))
    assert plan_fast.specialize(step, (half, half), (half,), {}) is None
    f32 = (torch.float32, (2, 2))
    assert plan_fast.specialize(step, (f32, f32), (f32,), {}) is torch.add


def _floats_text(n, scale=0.3):
    return ", ".join(f"{v:.4f}" for v in _RNG.standard_normal(n) * scale)


#: Slice (constant starts/ends/axes/steps) and the recurrent ops on torch's fused functions
H = 3
RECURRENT = parser.parse_model(f"""
<ir_version: 8, opset_import: ["" : 18]>
g (float[T, N, 4] x, float[2, N, {H}] h0, float[2, N, {H}] c0)
  => (float[T, 2, N, {H}] ly, float[2, N, {H}] lh, float[2, N, {H}] lc, float[T, 1, N, {H}] gy, float[1, N, {H}] rh,
      float[A, N, 2] s)
<float[2, {4 * H}, 4] lw = {{{_floats_text(2 * 4 * H * 4)}}}, float[2, {4 * H}, {H}] lr = {{{_floats_text(2 * 4 * H * H)}}},
 float[2, {8 * H}] lb = {{{_floats_text(2 * 8 * H)}}},
 float[1, {3 * H}, 4] gw = {{{_floats_text(3 * H * 4)}}}, float[1, {3 * H}, {H}] gr = {{{_floats_text(3 * H * H)}}},
 float[1, {H}, 4] rw = {{{_floats_text(H * 4)}}}, float[1, {H}, {H}] rr = {{{_floats_text(H * H)}}},
 int64[2] st = {{-3, 0}}, int64[2] en = {{100, 3}}, int64[2] ax = {{0, 2}}, int64[2] sp = {{1, 2}}>
{{ ly, lh, lc = LSTM <hidden_size = {H}, direction = "bidirectional"> (x, lw, lr, lb, , h0, c0)
   gy, gh = GRU <hidden_size = {H}, linear_before_reset = 1> (x, gw, gr)
   ry, rh = RNN <hidden_size = {H}> (x, rw, rr)
   s = Slice(x, st, en, ax, sp) }}
""")


def test_plan_specializes_slice_and_the_recurrent_ops():
    import onnxruntime as ort

    sess = InferenceSession(RECURRENT, fusion=False)
    ref = ort.InferenceSession(RECURRENT.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for n in (1, 2):
        for seed in range(3):  # the first run walks and makes the plan, the others run on it
            rng = np.random.default_rng(seed)
            feeds = {"x": rng.standard_normal((5, n, 4)).astype(np.float32),
                     "h0": rng.standard_normal((2, n, H)).astype(np.float32),
                     "c0": rng.standard_normal((2, n, H)).astype(np.float32)}
            for name, g, w in zip(names, sess.run(None, feeds), ref.run(None, feeds)):
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=name)
        plan = sess._executor.plan_for(sess._validate(feeds), names)
        special = {op[0].op_type for op in plan.ops if op[0] is not None and op[1] is not op[0].impl.fn}
        assert {"LSTM", "GRU", "RNN", "Slice"} <= special


def test_checked_feed_signatures_skip_the_checks_but_bad_feeds_still_fail():
    sess = InferenceSession(SHAPES)
    x = torch.from_numpy(_x(2, 2, 3))
    for _ in range(2):  # the second run takes the checked signature's fast path
        y, s = sess.run_torch(None, {"x": x})
        torch.testing.assert_close(y, x.reshape(2, 6) * 2)
    assert len(sess._valid_feeds) == 1
    for bad, message in ((x.double(), "Unexpected input data type"), (x.reshape(2, 6), "Invalid rank")):
        for _ in range(2):  # never remembered
            with pytest.raises(Exception, match=message):
                sess.run_torch(None, {"x": bad})
    with pytest.raises(Exception, match="Invalid input name"):
        sess.run_torch(None, {"x": x, "nope": x})
    np.testing.assert_allclose(sess.run(None, {"x": x.numpy()})[0], x.reshape(2, 6).numpy() * 2)  # numpy: checked


#: MatMul (batched, matrix-vector) and ConstantOfShape of a folded shape (zeros, a value)
MATMUL_FILL = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 3, 4] x, float[4, 5] w, float[4] v) => (float[N, 3, 5] y, float[N, 3] mv, float[N, 3, 4] z,
                                                     int64[N, 3, 4] seven)
{ y = MatMul(x, w)
  mv = MatMul(x, v)
  s = Shape(x)
  z = ConstantOfShape(s)
  seven = ConstantOfShape <value = int64[1] {7}> (s) }
""")


def test_plan_specializes_matmul_and_constant_of_shape():
    import onnxruntime as ort

    sess = InferenceSession(MATMUL_FILL, fusion=False)
    ref = ort.InferenceSession(MATMUL_FILL.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for n in (1, 2):
        for seed in range(3):  # the first run walks and makes the plan, the others run on it
            feeds = {"x": _x(n, 3, 4, seed=seed), "w": _x(4, 5, seed=seed + 1), "v": _x(4, seed=seed + 2)}
            got = sess.run(None, feeds)
            for name, g, w in zip(names, got, ref.run(None, feeds)):
                assert g.dtype == w.dtype and g.shape == w.shape, name
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)
            got[2][...] = 1.0  # the results are the caller's: the next run's fill is fresh
        plan = _plan(sess, feeds)
        special = [op[0].op_type for op in plan.ops if op[0] is not None and op[1] is not op[0].impl.fn]
        assert special.count("MatMul") == 2 and special.count("ConstantOfShape") == 2
        assert np.all(sess.run(None, feeds)[2] == 0)


#: Gemm <transB = 1> without C, with beta = 0 and with C: torch's linear on the plan
GEMM_T = parser.parse_model("""
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 5] a, float[3, 5] b, float[3] c) => (float[N, 3] y, float[N, 3] z, float[N, 3] w)
{ y = Gemm <transB = 1> (a, b)
  z = Gemm <transB = 1, beta = 0.0> (a, b, c)
  w = Gemm <transB = 1> (a, b, c) }
""")


def test_plan_gemm_transposed_b_as_the_handler():
    import onnxruntime as ort

    sess = InferenceSession(GEMM_T, fusion=False)
    ref = ort.InferenceSession(GEMM_T.SerializeToString(), providers=["CPUExecutionProvider"])
    for seed in range(3):  # the first run walks and makes the plan, the others run on it
        feeds = {"a": _x(2, 5, seed=seed), "b": _x(3, 5, seed=seed + 1), "c": _x(3, seed=seed + 2)}
        for name, g, w in zip("yzw", sess.run(None, feeds), ref.run(None, feeds)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5, err_msg=name)
    plan = _plan(sess, feeds)
    assert sum(op[0] is not None and op[1] is not op[0].impl.fn for op in plan.ops) == 3


def test_a_feed_that_requires_grad_is_detached_on_every_run():
    sess = InferenceSession(SHAPES)
    x = torch.from_numpy(_x(2, 2, 3)).requires_grad_()
    for _ in range(3):  # never a remembered signature: the full path detaches it each time
        y, s = sess.run_torch(None, {"x": x})
        assert not y.requires_grad and y.grad_fn is None
        torch.testing.assert_close(y, x.detach().reshape(2, 6) * 2)
    assert not sess._valid_feeds
