"""The handlers' prepare step (`tritonnx.runtime.registry`): called once per node at session
creation on the constant inputs, its result handed to every run; the fused handlers pack
their weights there. Tiny models from ONNX text, outputs against onnxruntime."""
from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnx.numpy_helper
import onnx.parser
import pytest
import tolerances
import torch

import tritonnx.runtime.ops  # noqa: F401 - fills OPS
from tritonnx.errors import Fail, InvalidArgument
from tritonnx.runtime import plugins
from tritonnx.runtime.context import ExecContext
from tritonnx.runtime.executor import Executor
from tritonnx.runtime.registry import OPS, OpRegistry
from tritonnx.runtime.session import InferenceSession

ort = pytest.importorskip("onnxruntime")
# triton 3.6's interpreter converts 1-element arrays to ints the way numpy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")

SEQ, BATCH, IN, HID = 3, 2, 4, 5
C, O, HW = 3, 4, 8
RTOL = tolerances.VS_ONNXRUNTIME

LSTM_TEXT = f"""
<ir_version: 8, opset_import: ["" : 14]>
g (float[{SEQ},{BATCH},{IN}] x) => (float[{SEQ},1,{BATCH},{HID}] y, float[1,{BATCH},{HID}] y_h) {{
    y, y_h = LSTM <hidden_size = {HID}> (x, W, R, B)
}}
"""
CONV_TEXT = f"""
<ir_version: 8, opset_import: ["" : 18]>
g (float[1,{C},{HW},{HW}] x{{inputs}}) => (float[1,{O},{HW // 2 - 1},{HW // 2 - 1}] y) {{
    c = Conv <kernel_shape = [3, 3]> (x, w, b)
    r = Relu (c)
    y = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (r)
}}
"""


def _rand(rng, *shape, scale=1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _with_inits(text: str, inits: dict[str, np.ndarray]) -> onnx.ModelProto:
    model = onnx.parser.parse_model(text)
    model.graph.initializer.extend(onnx.numpy_helper.from_array(a, n) for n, a in inits.items())
    onnx.checker.check_model(model)
    return model


def _lstm_model(seed=0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    return _with_inits(LSTM_TEXT, {"W": _rand(rng, 1, 4 * HID, IN, scale=0.5), "R": _rand(rng, 1, 4 * HID, HID, scale=0.5),
                                   "B": _rand(rng, 1, 8 * HID, scale=0.1)})


def _conv_model(seed=0, *, w_as_input=False) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    inputs = f", float[{O},{C},3,3] w" if w_as_input else ""
    return _with_inits(CONV_TEXT.replace("{inputs}", inputs),
                       {"w": _rand(rng, O, C, 3, 3, scale=0.3), "b": _rand(rng, O, scale=0.1)})


def _ort(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _close(got, want, dtype="fp32"):
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=RTOL[dtype], atol=RTOL[dtype] * max(1.0, float(np.abs(w).max())))


def _counted(monkeypatch, module, name):
    """Wrap `module.name` so its calls are counted; returns the call list."""
    calls = []
    fn = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return fn(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def _count_prepare(monkeypatch, domain, op):
    """Count the registered prepare step of `domain::op` (the session copies OPS at creation)."""
    calls = []
    key = (domain, op)
    impls = OPS.handlers[key]

    def wrap(prepare):
        def counted(*args, **kwargs):
            calls.append(op)
            return prepare(*args, **kwargs)
        return counted

    monkeypatch.setitem(OPS.handlers, key, [dataclasses.replace(i, prepare=wrap(i.prepare)) for i in impls])
    return calls


def test_lstm_packed_once_at_creation(monkeypatch):
    from tritonnx.triton_kernels import recurrent

    prepares = _count_prepare(monkeypatch, "tritonnx", "LSTM")
    packs = _counted(monkeypatch, recurrent, "pack")
    model = _lstm_model()
    x = _rand(np.random.default_rng(1), SEQ, BATCH, IN)
    sess = InferenceSession(model, kernels="triton")
    assert [n.op_type for n in sess.rewritten_model().graph.node] == ["LSTM"]
    assert (len(prepares), len(packs)) == (1, 1)  # at creation, before any run
    want = _ort(model, {"x": x})
    for _ in range(2):
        _close(sess.run(None, {"x": x}), want)
    assert (len(prepares), len(packs)) == (1, 1)  # the runs reuse the packed weights


def test_conv_relu_pool_packed_once_at_creation(monkeypatch):
    from tritonnx.runtime.ops import fused_conv

    prepares = _count_prepare(monkeypatch, "tritonnx", "ConvReluPool")
    packs = _counted(monkeypatch, fused_conv, "pack_conv_weight")
    model = _conv_model()
    x = _rand(np.random.default_rng(1), 1, C, HW, HW)
    sess = InferenceSession(model, kernels="triton")
    assert [n.op_type for n in sess.rewritten_model().graph.node] == ["ConvReluPool"]
    assert (len(prepares), len(packs)) == (1, 1)
    want = _ort(model, {"x": x})
    for _ in range(2):
        _close(sess.run(None, {"x": x}), want)
    assert (len(prepares), len(packs)) == (1, 1)


def test_torch_kernels_pack_nothing(monkeypatch):
    from tritonnx.runtime.ops import fused_conv

    packs = _counted(monkeypatch, fused_conv, "pack_conv_weight")
    model = _conv_model()
    x = _rand(np.random.default_rng(1), 1, C, HW, HW)
    sess = InferenceSession(model, kernels="torch")
    assert all(s.prepared is None for s in sess._executor.steps)
    _close(sess.run(None, {"x": x}), _ort(model, {"x": x}))
    assert not packs


def test_fp16_weights_packed_in_fp16():
    model = _lstm_model()
    for init in model.graph.initializer:
        init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init).astype(np.float16), init.name))
    for value in list(model.graph.input) + list(model.graph.output):
        value.type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    sess = InferenceSession(model, kernels="triton")
    (step,) = [s for s in sess._executor.steps if s.domain == "tritonnx"]
    assert step.prepared.dtype == torch.float16


def test_overridden_initializer_gives_correct_results(monkeypatch):
    from tritonnx.runtime.ops import fused_conv

    model = _conv_model(w_as_input=True)  # w: an initializer listed as a graph input
    rng = np.random.default_rng(2)
    x = _rand(rng, 1, C, HW, HW)
    w2 = _rand(rng, O, C, 3, 3, scale=0.3)
    sess = InferenceSession(model, kernels="triton")
    assert [s.prepared is not None for s in sess._executor.steps] == [True]  # fused, w constant
    packs = _counted(monkeypatch, fused_conv, "pack_conv_weight")
    _close(sess.run(None, {"x": x}), _ort(model, {"x": x}))
    _close(sess.run(None, {"x": x, "w": w2}), _ort(model, {"x": x, "w": w2}))
    _close(sess.run(None, {"x": x}), _ort(model, {"x": x}))
    assert not packs  # the override runs the unfused model; the fused one stays prepared


# ---- the hook itself, with a handler of its own ---------------------------------------------
DOMAIN = "test.prepare"
SCALE_TEXT = f"""
<ir_version: 8, opset_import: ["" : 18, "{DOMAIN}" : 1]>
g (float[3] x{{inputs}}) => (float[3] y) {{
    t = {DOMAIN}.AddTwice <factor = 2.0> (x, w)
    y = {DOMAIN}.AddTwice <factor = 2.0> (t, w)
}}
"""
W = np.array([0.5, -1.0, 2.0], np.float32)
X = np.array([1.0, 2.0, -3.0], np.float32)


def _scale_model(*, w_as_input=False) -> onnx.ModelProto:
    model = onnx.parser.parse_model(SCALE_TEXT.replace("{inputs}", ", float[3] w" if w_as_input else ""))
    model.graph.initializer.append(onnx.numpy_helper.from_array(W, "w"))
    return model


def _add_twice_handler(log: list):
    """A handler `x + factor * w` whose prepare step computes `factor * w` (logged)."""

    def prepare(x=None, w=None, *, factor=1.0, ctx=None, dynamic_inputs=()):
        log.append(("prepare", None if w is None else w.tolist(), tuple(dynamic_inputs), ctx.kernels))
        return None if w is None else w * factor

    def AddTwice(x, w, *, factor=1.0, prepared=None):  # noqa: N802 - named like an op
        log.append(("run", prepared is not None))
        return x + (prepared if prepared is not None else w * factor)

    return AddTwice, prepare


def _entry_point(register):
    class EntryPoint:
        name, value = "prep", "test_prepare:register"

        def load(self):
            return register

    return EntryPoint()


def test_plugin_handler_prepares_once(monkeypatch):
    log: list = []
    fn, prepare = _add_twice_handler(log)

    def register(registry: plugins.PluginRegistry) -> None:
        registry.register("AddTwice", domain=DOMAIN, prepare=prepare)(fn)

    monkeypatch.setattr(plugins, "discover", lambda group=plugins.GROUP: [_entry_point(register)])
    sess = InferenceSession(_scale_model(), kernels="torch")
    assert sess.plugins == ["prep"]
    assert log == [("prepare", W.tolist(), (0,), "torch")] * 2  # once per node, at creation
    log.clear()
    for _ in range(3):
        (y,) = sess.run(None, {"x": X})
        np.testing.assert_allclose(y, X + 4 * W)
    assert log == [("run", True)] * 6


def test_override_hands_none_and_non_constant_inputs_are_none(monkeypatch):
    log: list = []
    fn, prepare = _add_twice_handler(log)

    def register(registry):
        registry.add_handler("AddTwice", fn, domain=DOMAIN, prepare=prepare)

    monkeypatch.setattr(plugins, "discover", lambda group=plugins.GROUP: [_entry_point(register)])
    sess = InferenceSession(_scale_model(w_as_input=True), kernels="torch")
    (y,) = sess.run(None, {"x": X})
    np.testing.assert_allclose(y, X + 4 * W)
    log.clear()
    (y,) = sess.run(None, {"x": X, "w": 3 * W})  # the unoptimised executor: w is not constant there
    np.testing.assert_allclose(y, X + 12 * W)
    assert log == [("prepare", None, (0, 1), "torch")] * 2 + [("run", False)] * 2


def test_executor_feed_overriding_a_constant_disables_its_prepared_value():
    log: list = []
    fn, prepare = _add_twice_handler(log)
    ops = OpRegistry()
    ops.add("AddTwice", fn, domain=DOMAIN, prepare=prepare)
    ex = Executor(_scale_model(), ops, ExecContext(device=torch.device("cpu"), kernels="torch"))
    x = torch.from_numpy(X)
    (y,) = ex.run({"x": x}, ["y"])
    torch.testing.assert_close(y, x + 4 * torch.from_numpy(W))
    log.clear()
    (y,) = ex.run({"x": x, "w": torch.ones(3)}, ["y"])
    torch.testing.assert_close(y, x + 4)
    assert log == [("run", False)] * 2


def test_prepare_needs_a_prepared_parameter_and_errors_name_the_node():
    ops = OpRegistry()
    with pytest.raises(TypeError, match="prepared"):
        ops.add("AddTwice", lambda x, w: x, domain=DOMAIN, prepare=lambda *a, **k: None)

    def bad(x=None, w=None, **attrs):
        raise InvalidArgument("w: expected 4 values, got 3")

    ops.add("AddTwice", lambda x, w, *, factor=1.0, prepared=None: x, domain=DOMAIN, prepare=bad)
    model = _scale_model()
    model.graph.node[0].name = "first"
    with pytest.raises(InvalidArgument, match=r"node 'first' \(AddTwice\): preparing: w: expected 4"):
        Executor(model, ops, ExecContext(device=torch.device("cpu"), kernels="torch"))
    ops.add("AddTwice", lambda x, w, *, factor=1.0, prepared=None: x, domain=DOMAIN,
            prepare=lambda *a, **k: 1 / 0)
    with pytest.raises(Fail, match=r"node 'first' \(AddTwice\): preparing failed: ZeroDivisionError"):
        Executor(model, ops, ExecContext(device=torch.device("cpu"), kernels="torch"))
