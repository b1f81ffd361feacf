"""Every handler declares the inputs it reads on the host (`tritonnx.runtime.registry`,
"Placement facts"): ``host_inputs`` (shapes, axes, sizes: given a CPU tensor when one is at
hand) or ``syncs`` (data read on the host by nature). An undeclared read would, on a GPU, copy a
small constant to the device and back on every run and break CUDA-graph capture.

Each single-node case of onnx's node tests runs straight through its resolved handler, every
undeclared input wrapped in a guard (a ``torch.Tensor`` subclass) that fails on the calls that
read values on the host: ``.tolist()``, ``.item()``, ``.cpu()``, ``.numpy()``, ``int()``,
``float()``, ``bool()``, ``operator.index`` and numpy conversion. Values computed from a guarded
input are guarded too (torch's subclass propagation). The documented host path of the dtypes
torch has no arithmetic for (uint16/32/64 inputs are not guarded; reads inside
``_common.via_numpy``, which a few uint8 ops use too) and the CPU-only branches in `CPU_ONLY`
are allowed. The whole scan takes a few seconds on the CPU.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
import onnx
import pytest
import torch

from tritonnx.runtime.context import ExecContext
from tritonnx.runtime.executor import array_to_tensor, attribute_value
from tritonnx.runtime.ops import OPS
from tritonnx.runtime.ops._common import LIMITED_UNSIGNED
from tritonnx.runtime.registry import canonical_domain

#: (op type, input position) -> why a host read there is no device read: the handler only
#: reads it when the tensor is on the CPU (the guard is a CPU tensor).
CPU_ONLY = {
    ("Gather", 1): "the index bounds check runs on CPU tensors only (shape.py)",
    ("GatherElements", 1): "the index bounds check runs on CPU tensors only (shape.py)",
    ("RotaryEmbedding", 3): "its function body's Gather: the index bounds check on CPU tensors only",
    ("DFT", 0): "the CPU path computes the FFT with numpy (signal.py)",
    ("STFT", 0): "the CPU path computes the FFT with numpy (signal.py)",
    ("STFT", 2): "the CPU path computes the FFT with numpy (signal.py)",
}

pytestmark = pytest.mark.xdist_group("conformance")  # shares onnx's collected cases

_READS = {torch.Tensor.tolist, torch.Tensor.item, torch.Tensor.cpu, torch.Tensor.numpy,
          torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__,
          torch.Tensor.__array__}


class _HostRead(Exception):
    pass


class _Guarded(torch.Tensor):
    """A tensor whose values must not be read on the host (its trips are recorded in `trips`)."""

    trips: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in _READS and not _in_via_numpy():
            cls.trips.append(func.__name__)
            raise _HostRead(func.__name__)
        return super().__torch_function__(func, types, args, kwargs or {})


def _in_via_numpy() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "via_numpy" and frame.f_globals.get("__name__", "").endswith("ops._common"):
            return True
        frame = frame.f_back
    return False


def _single_node_cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = collect_testcases()  # cached by onnx after its first call
    for case in cases:
        graph = case.model.graph
        if len(graph.node) != 1 or canonical_domain(graph.node[0].domain) != "":
            continue
        version = next((o.version for o in case.model.opset_import if canonical_domain(o.domain) == ""), 1)
        impl = OPS.resolve("", graph.node[0].op_type, version)
        if impl is not None and case.data_sets:
            yield case, impl


def _call(case, impl):
    """(args, kwargs) of the case's first data set, or None when an input has no torch form."""
    node, graph = case.model.graph.node[0], case.model.graph
    inputs, _ = case.data_sets[0]
    feeds = dict(zip((i.name for i in graph.input), inputs))
    args = []
    for name in node.input:
        if not name:
            args.append(None)
            continue
        value = feeds.get(name)
        value = onnx.numpy_helper.to_array(value) if isinstance(value, onnx.TensorProto) else value
        if not isinstance(value, np.ndarray) or value.dtype.kind in "OSU":
            return None
        try:
            args.append(array_to_tensor(value, "cpu"))
        except Exception:  # a dtype torch lacks (int4, float4, ...): skipped by the conformance list too
            return None
    while args and args[-1] is None:
        args.pop()
    kwargs = {a.name: attribute_value(a, "cpu") for a in node.attribute}
    if impl.wants_num_outputs:
        kwargs["num_outputs"] = len(node.output)
    if impl.wants_ctx:
        kwargs["ctx"] = ExecContext(device=torch.device("cpu"))
    if impl.wants_prepared:
        kwargs["prepared"] = None
    return args, kwargs


def _trips(impl, args, kwargs, guarded: set[int]) -> bool:
    _Guarded.trips.clear()
    call = [a.as_subclass(_Guarded) if pos in guarded and isinstance(a, torch.Tensor)
            and a.dtype not in LIMITED_UNSIGNED else a for pos, a in enumerate(args)]
    try:
        impl.fn(*call, **kwargs)
    except Exception:  # errors are the conformance test's business; only reads count here
        pass
    return bool(_Guarded.trips)


def test_handlers_declare_their_host_reads():
    undeclared: dict[tuple[str, int], str] = {}
    scanned = 0
    for case, impl in _single_node_cases():
        call = _call(case, impl)
        if call is None:
            continue
        args, kwargs = call
        op = case.model.graph.node[0].op_type
        allowed = impl.host_inputs | impl.syncs | {p for (o, p) in CPU_ONLY if o == op}
        suspects = {p for p, a in enumerate(args) if isinstance(a, torch.Tensor) and p not in allowed}
        scanned += 1
        if not suspects or not _trips(impl, args, kwargs, suspects):
            continue
        for pos in sorted(suspects):  # which input: one at a time
            if _trips(impl, args, kwargs, {pos}):
                undeclared.setdefault((op, pos), case.name)
    assert scanned > 500
    assert not undeclared, "handlers read these inputs on the host without declaring them " \
        "(register(..., host_inputs=...) or syncs=...): " + \
        ", ".join(f"{op} input {pos} (e.g. {name})" for (op, pos), name in sorted(undeclared.items()))


def test_guard_catches_an_undeclared_read():
    """The guard itself: a handler reading its second input with .tolist() is caught, and
    declaring the position clears it."""
    from tritonnx.runtime.registry import OpRegistry

    def Probe(x, shape):
        return x.reshape(shape.tolist())

    reg = OpRegistry()
    bare = reg.add("Probe", Probe, domain="test")
    declared = reg.add("Probe", Probe, domain="test", since=2, host_inputs=(1,))
    args = [torch.ones(2, 3), torch.tensor([3, 2])]
    assert _trips(bare, args, {}, {0, 1})
    assert not _trips(declared, args, {}, {0})


@pytest.mark.parametrize("op, positions", [
    ("Col2Im", {1, 2}), ("CenterCropPad", {1}), ("STFT", {1, 3}), ("DFT", {1, 2}), ("ReduceLogSum", {1}),
    ("Reshape", {1}), ("Slice", {1, 2, 3, 4}), ("Resize", {1, 2, 3}),
])
def test_issue_named_host_inputs(op, positions):
    assert positions <= OPS.resolve("", op, 26).host_inputs
