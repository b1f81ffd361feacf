"""The executor: a rewritten ONNX graph lowered to a list of handler calls.

Each node becomes a frozen `Step` (its handler, input/output names, attributes converted once,
and the values whose last use it is). Weights are converted and placed on the device once,
at construction; a run keeps a name -> tensor environment of its own (so several threads may
run one executor at once) and drops each intermediate after its last use.

On a CUDA device with ``cuda_graphs`` on, the first run of each input signature (names,
shapes, dtypes of the feeds, and the requested outputs) warms up on a side stream, then
captures the whole run in a CUDA graph; later runs of that signature copy the feeds into the
static inputs and replay it. At most ``cuda_graphs_max_shapes`` graphs are kept (least
recently used dropped). A signature whose capture fails (a handler that syncs with the host,
data-dependent shapes) runs eagerly from then on, with one warning naming the reason.
"""
from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnx.numpy_helper
import torch

from tritonnx.errors import Fail, InvalidArgument, TritonnxError
from tritonnx.runtime import dtypes
from tritonnx.runtime.context import ExecContext
from tritonnx.runtime.registry import OpImpl, OpRegistry, canonical_domain

#: (op type -> input positions) that ONNX reads on the host (shapes, axes, sizes). A constant
#: used only at such positions stays on the CPU on a CUDA device, so handlers reading it
#: (``.tolist()``) neither sync with the device nor break CUDA-graph capture.
HOST_INPUTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Expand": frozenset({1}), "Tile": frozenset({1}),
    "Slice": frozenset({1, 2, 3, 4}), "Pad": frozenset({1, 3}), "Unsqueeze": frozenset({1}),
    "Squeeze": frozenset({1}), "Split": frozenset({1}), "ReduceMean": frozenset({1}),
    "ReduceSum": frozenset({1}), "ReduceMax": frozenset({1}), "ReduceMin": frozenset({1}),
    "ReduceProd": frozenset({1}), "ReduceL1": frozenset({1}), "ReduceL2": frozenset({1}),
    "ReduceLogSumExp": frozenset({1}), "ReduceSumSquare": frozenset({1}),
    "Resize": frozenset({1, 2, 3}), "Upsample": frozenset({1}), "TopK": frozenset({1}),
}


def tensor_from_proto(tensor: onnx.TensorProto, device) -> Any:
    """An ONNX tensor as a torch tensor on `device` (string tensors stay numpy arrays)."""
    return array_to_tensor(onnx.numpy_helper.to_array(tensor), device)


def array_to_tensor(array: np.ndarray, device) -> Any:
    """A numpy array (ml_dtypes bfloat16/float8 included) as a torch tensor on `device`."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        return array
    if not array.flags.writeable:
        array = array.copy()
    return dtypes.from_numpy(array, device)


def attribute_value(attr: onnx.AttributeProto, device) -> Any:
    """An attribute as the handler contract wants it (str, list[str], torch tensors, ...)."""
    value = onnx.helper.get_attribute_value(attr)
    kind = attr.type
    if kind == onnx.AttributeProto.STRING:
        return value.decode("utf-8", errors="replace")
    if kind == onnx.AttributeProto.STRINGS:
        return [v.decode("utf-8", errors="replace") for v in value]
    if kind == onnx.AttributeProto.TENSOR:
        return tensor_from_proto(value, device)
    if kind == onnx.AttributeProto.TENSORS:
        return [tensor_from_proto(v, device) for v in value]
    if kind in (onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS):
        return list(value)
    return value


@dataclass(frozen=True)
class Step:
    """One node, lowered: call `impl.fn(*inputs, **attrs)` and bind `outputs`."""

    index: int
    name: str
    op_type: str
    domain: str
    impl: OpImpl
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    release: tuple[str, ...] = ()

    @property
    def kernel(self) -> str:
        fn = self.impl.fn
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


@dataclass
class ProfileRow:
    node: str
    op_type: str
    domain: str
    kernel: str
    ms: float


@dataclass
class _Captured:
    graph: Any
    static_inputs: dict[str, torch.Tensor]
    static_outputs: list[torch.Tensor]


class Executor:
    """Runs one rewritten model (a ``ModelProto`` every node of which has a handler)."""

    def __init__(self, model: onnx.ModelProto, ops: OpRegistry, ctx: ExecContext,
                 weights: Mapping[str, np.ndarray] | None = None) -> None:
        """Lower `model`; `weights` (name -> array), when given, replace its initializers' data
        (a `weightless_proto` plus `initializer_arrays` avoids serializing the weights)."""
        self.ctx = ctx
        self.device = torch.device(ctx.device)
        graph = model.graph
        opsets = {canonical_domain(e.domain): int(e.version) for e in model.opset_import}
        self.output_names: tuple[str, ...] = tuple(o.name for o in graph.output)
        self.input_names: tuple[str, ...] = tuple(i.name for i in graph.input)

        host_only = self._host_only_names(graph)
        self.weights: dict[str, Any] = {}
        for init in graph.initializer:
            device = "cpu" if init.name in host_only else self.device
            if weights is not None and init.name in weights:
                self.weights[init.name] = array_to_tensor(weights[init.name], device)
            else:
                self.weights[init.name] = tensor_from_proto(init, device)

        steps: list[Step] = []
        for index, node in enumerate(graph.node):
            domain = canonical_domain(node.domain)
            impl = ops.resolve(domain, node.op_type, opsets.get(domain, 1))
            if impl is None:  # the session checked this; keep a clear message anyway
                raise Fail(f"node {node.name!r}: no handler for {domain or 'ai.onnx'}::{node.op_type}")
            attrs = {a.name: attribute_value(a, self.device) for a in node.attribute}
            steps.append(Step(index, node.name, node.op_type, domain, impl, tuple(node.input),
                              tuple(node.output), MappingProxyType(attrs)))
        self.steps = tuple(self._with_releases(steps))
        self.has_custom_nodes = any(s.domain not in ("",) for s in self.steps)
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._no_graph: dict[tuple, str] = {}
        self._graph_lock = threading.Lock()

    # ----------------------------------------------------------------- construction helpers
    def _host_only_names(self, graph: onnx.GraphProto) -> set[str]:
        if self.device.type != "cuda":
            return set()
        uses: dict[str, list[bool]] = {}
        for node in graph.node:
            host = HOST_INPUTS.get(node.op_type, frozenset()) if canonical_domain(node.domain) == "" else frozenset()
            for pos, name in enumerate(node.input):
                if name:
                    uses.setdefault(name, []).append(pos in host)
        graph_outputs = {o.name for o in graph.output}
        return {
            init.name for init in graph.initializer
            if init.data_type == onnx.TensorProto.INT64 and init.name not in graph_outputs
            and uses.get(init.name) and all(uses[init.name])
        }

    def _with_releases(self, steps: list[Step]) -> list[Step]:
        keep = set(self.output_names) | set(self.weights)
        last_use: dict[str, int] = {}
        for step in steps:
            for name in step.inputs:
                if name:
                    last_use[name] = step.index
            for name in step.outputs:  # produced and never used: drop right away
                if name:
                    last_use.setdefault(name, step.index)
        release: dict[int, list[str]] = {}
        for name, idx in last_use.items():
            if name not in keep:
                release.setdefault(idx, []).append(name)
        return [Step(s.index, s.name, s.op_type, s.domain, s.impl, s.inputs, s.outputs, s.attrs,
                     tuple(release.get(s.index, ()))) for s in steps]

    # ----------------------------------------------------------------- running
    def run(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str], *,
            profile: list[ProfileRow] | None = None) -> list[torch.Tensor]:
        """Run the graph on `feeds` (torch tensors on the device, already validated).

        Returns the requested outputs (fresh tensors, or the handlers' own results).
        """
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(self.ctx.tf32)
            torch.backends.cudnn.allow_tf32 = bool(self.ctx.tf32)
            if self.ctx.cuda_graphs and profile is None:
                return self._run_graph(feeds, tuple(output_names))
        return self._execute(feeds, output_names, profile=profile)

    def _execute(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str], *,
                 profile: list[ProfileRow] | None = None) -> list[torch.Tensor]:
        env: dict[str, Any] = dict(self.weights)
        env.update(feeds)
        ctx = self.ctx
        timing = profile is not None
        cuda = self.device.type == "cuda"
        events = []
        for step in self.steps:
            args = []
            for name in step.inputs:
                if not name:
                    args.append(None)
                    continue
                try:
                    args.append(env[name])
                except KeyError:
                    raise Fail(f"node {step.name!r} ({step.op_type}): input {name!r} was never produced "
                               "(an earlier node returned fewer outputs than it declares)") from None
            while args and args[-1] is None:
                args.pop()
            kwargs = dict(step.attrs)
            if step.impl.wants_ctx:
                kwargs["ctx"] = ctx
            if step.impl.wants_num_outputs:
                kwargs["num_outputs"] = len(step.outputs)
            if timing:
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                else:
                    t0 = time.perf_counter()
            try:
                result = step.impl.fn(*args, **kwargs)
            except TritonnxError as exc:
                raise type(exc)(f"node {step.name!r} ({step.op_type}): {exc}") from exc
            except Exception as exc:
                raise Fail(f"node {step.name!r} ({step.op_type}) failed: {type(exc).__name__}: {exc}") from exc
            if timing:
                if cuda:
                    end.record()
                    events.append((step, start, end))
                else:
                    profile.append(ProfileRow(step.name, step.op_type, step.domain, self.kernel_label(step),
                                              (time.perf_counter() - t0) * 1e3))
            outs = result if isinstance(result, (tuple, list)) else (result,)
            for name, value in zip(step.outputs, outs):
                if name:
                    env[name] = value if isinstance(value, torch.Tensor) or not np.isscalar(value) \
                        else torch.as_tensor(value, device=self.device)
            for name in step.release:
                env.pop(name, None)
        if events:
            torch.cuda.synchronize(self.device)
            for step, start, end in events:
                profile.append(ProfileRow(step.name, step.op_type, step.domain, self.kernel_label(step),
                                          start.elapsed_time(end)))
        try:
            return [env[name] for name in output_names]
        except KeyError as exc:
            raise Fail(f"graph output {exc.args[0]!r} was never produced") from None

    def kernel_label(self, step: Step) -> str:
        if step.domain == "":
            return "torch"
        return f"triton ({step.kernel})" if self.ctx.kernels == "triton" else f"torch reference ({step.kernel})"

    # ----------------------------------------------------------------- CUDA graphs
    def _signature(self, feeds: Mapping[str, torch.Tensor], outputs: tuple[str, ...]) -> tuple:
        return tuple((k, tuple(v.shape), v.dtype) for k, v in sorted(feeds.items())) + (outputs,)

    def _run_graph(self, feeds: Mapping[str, torch.Tensor], outputs: tuple[str, ...]) -> list[torch.Tensor]:
        key = self._signature(feeds, outputs)
        with self._graph_lock:
            if key in self._no_graph:
                return self._execute(feeds, outputs)
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(feeds, outputs, key)
                if entry is None:
                    return self._execute(feeds, outputs)
            else:
                self._graphs.move_to_end(key)
            for name, value in feeds.items():
                entry.static_inputs[name].copy_(value, non_blocking=True)
            entry.graph.replay()
            return [t.clone() for t in entry.static_outputs]

    def _capture(self, feeds, outputs, key) -> _Captured | None:
        static_inputs = {k: v.detach().clone() for k, v in feeds.items()}
        try:
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up: autotuning, lazy init, allocator
                    self._execute(static_inputs, outputs)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_outputs = self._execute(static_inputs, outputs)
        except TritonnxError:
            raise
        except Exception as exc:  # capture refused: run this signature eagerly from now on
            try:
                torch.cuda.synchronize(self.device)
            except Exception:
                pass
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self._no_graph[key] = reason
            warnings.warn(f"tritonnx: CUDA-graph capture failed for input shapes "
                          f"{[(k, list(s)) for k, s, _ in key[:-1]]}; running eagerly ({reason})",
                          RuntimeWarning, stacklevel=4)
            return None
        entry = _Captured(graph, static_inputs, list(static_outputs))
        self._graphs[key] = entry
        while len(self._graphs) > self.ctx.cuda_graphs_max_shapes:
            self._graphs.popitem(last=False)
        return entry

    @property
    def captured_signatures(self) -> list[tuple]:
        """The input signatures that currently hold a CUDA graph (oldest first)."""
        return list(self._graphs)
