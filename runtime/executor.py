"""The executor: a rewritten ONNX graph lowered to a list of handler calls.

Each node becomes a frozen `Step` (its handler, input/output names, attributes converted once,
and the values whose last use it is). Weights are converted and placed on the device once,
at construction; then each handler's `prepare` step (`tritonnx.runtime.registry`) runs once per
node on its constant inputs, and every run passes its result as ``prepared=`` (``None`` to a
node when that run's feeds override one of those constants). A run keeps a name -> tensor
environment of its own (so several threads may run one executor at once) and drops each
intermediate after its last use.

On a CUDA device with ``cuda_graphs`` on, the first run of each input signature (names,
shapes, dtypes of the feeds, and the requested outputs) warms up on a side stream, then
captures the whole run in a CUDA graph; later runs of that signature copy the feeds into the
static inputs and replay it. At most ``cuda_graphs_max_shapes`` graphs are kept (least
recently used dropped). A signature whose capture fails (a handler that syncs with the host,
data-dependent shapes) runs eagerly from then on, with one warning naming the reason.
"""
from __future__ import annotations

import dataclasses
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
from tritonnx.runtime.subgraph import (CaptureTransfers, SequenceValue, Subgraph, graph_attributes, host_to_device,
                                      node_outer_names)

#: Constants up to this many elements also get a host copy (they may feed shape arithmetic).
HOST_MAX_ELEMENTS = 64
_HOST = "\x00host"  # env key suffix of an initializer's host copy


def _numel(tensor: onnx.TensorProto) -> int:
    return int(np.prod(tensor.dims)) if tensor.dims else 1


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
    host: bool = False  # runs on the CPU (shape arithmetic); its ctx says device "cpu"
    to_device: tuple[int, ...] = ()  # argument positions holding host values to move first
    prepared: Any = None  # what `impl.prepare` returned (passed as ``prepared=``)
    prepared_from: frozenset[str] = frozenset()  # the constants (initializer names) it was given
    #: the handler's keyword arguments, built once: `attrs` plus ``ctx``, ``num_outputs`` and
    #: ``prepared`` where the handler takes them (`Executor._bind`)
    kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def kernel(self) -> str:
        fn = self.impl.fn
        return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _subgraphs_of(step: Step) -> list[Subgraph]:
    """The lowered subgraphs among a step's attributes (If/Loop/Scan bodies)."""
    found: list[Subgraph] = []
    for value in step.attrs.values():
        values = value if isinstance(value, list) else [value]
        found += [v for v in values if isinstance(v, Subgraph)]
    return found


@dataclass
class ProfileRow:
    node: str
    op_type: str
    domain: str
    kernel: str
    ms: float


class CudaGraphs:
    """How the executor warms up, captures and replays CUDA graphs (one per signature).

    A separate object so the cache logic around it can be exercised without a GPU (the tests
    swap in a stand-in that records the function and re-runs it on replay).
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def warmup(self, fn) -> None:
        with torch.cuda.device(self.device):
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(2):  # autotuning, lazy init, allocator, host->device copies
                    fn()
            torch.cuda.current_stream(self.device).wait_stream(side)

    def capture(self, fn) -> tuple[Any, list[torch.Tensor]]:
        """Capture `fn` on the session's device (torch.cuda.graph captures on the current device:
        work on another device would run eagerly and be missing from the graph).

        "thread_local": another thread's eager CUDA calls during the capture neither fail nor
        invalidate it. The caller's stream is restored even when the capture fails:
        torch.cuda.graph's __exit__ leaves the thread on its capture stream when capture_end
        raises, and the eager fallback would then race the caller's stream.
        """
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.device(self.device):
            stream = torch.cuda.current_stream(self.device)
            try:
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    outputs = fn()
            finally:
                torch.cuda.set_stream(stream)
        return graph, outputs

    def replay(self, graph) -> None:
        with torch.cuda.device(self.device):
            graph.replay()

    def recover(self) -> None:
        try:
            torch.cuda.synchronize(self.device)
        except Exception:
            pass


@dataclass
class _Captured:
    graph: Any
    static_inputs: dict[str, torch.Tensor]
    static_outputs: list[torch.Tensor]
    transfers: dict  # host values on the device, read by the graph (kept alive with it)


class Executor:
    """Runs one rewritten model (a ``ModelProto`` every node of which has a handler)."""

    def __init__(self, model: onnx.ModelProto, ops: OpRegistry, ctx: ExecContext,
                 weights: Mapping[str, np.ndarray] | None = None, *, host_feeds: frozenset[str] = frozenset(),
                 nested: bool = False) -> None:
        """Lower `model`; `weights` (name -> array), when given, replace its initializers' data
        (a `weightless_proto` plus `initializer_arrays` avoids serializing the weights).

        `host_feeds` and `nested` lower a subgraph (`tritonnx.runtime.subgraph`): the feeds
        named in `host_feeds` come as host tensors, and outputs produced on the host are returned
        as they are (the control-flow handler places them)."""
        self.ctx = ctx
        self._ops = ops
        self._opset_import = list(model.opset_import)
        self._host_feeds = host_feeds
        self.device = torch.device(ctx.device)
        graph = model.graph
        opsets = {canonical_domain(e.domain): int(e.version) for e in model.opset_import}
        self.output_names: tuple[str, ...] = tuple(o.name for o in graph.output)
        self.input_names: tuple[str, ...] = tuple(i.name for i in graph.input)

        arrays: dict[str, Any] = {}
        for init in graph.initializer:
            if weights is not None and init.name in weights:
                arrays[init.name] = np.asarray(weights[init.name])
            else:
                arrays[init.name] = onnx.numpy_helper.to_array(init)

        nodes = []
        for node in graph.node:
            domain = canonical_domain(node.domain)
            impl = ops.resolve(domain, node.op_type, opsets.get(domain, 1))
            if impl is None:  # the session checked this; keep a clear message anyway
                raise Fail(f"node {node.name!r}: no handler for {domain or 'ai.onnx'}::{node.op_type}")
            nodes.append((node, domain, impl))

        steps, device_inits, host_inits = self._place(nodes, arrays)
        self.weights: dict[str, Any] = {}
        for name in device_inits:
            self.weights[name] = array_to_tensor(arrays[name], self.device)
        for name in host_inits:
            same = self.device.type == "cpu" and name in self.weights
            self.weights[name + _HOST] = self.weights[name] if same else array_to_tensor(arrays[name], "cpu")
        self._host_ctx = dataclasses.replace(ctx, device=torch.device("cpu"))
        #: storage addresses of the weights (a result aliasing one is cloned before it is returned)
        self.weight_storages = frozenset(w.untyped_storage().data_ptr() for w in self.weights.values()
                                         if isinstance(w, torch.Tensor))
        self.steps = tuple(self._bind(self._prepare(s)) for s in self._with_releases(steps))
        #: initializers some prepared value was computed from (a feed overriding one disables it)
        self._prepared_from = frozenset().union(*(s.prepared_from for s in self.steps))
        self.host_outputs = frozenset() if nested else \
            frozenset(o for o in self.output_names if o in self._host_values)
        self.has_custom_nodes = any(s.domain not in ("",) for s in self.steps) or any(
            sub.executor.has_custom_nodes for s in self.steps for sub in _subgraphs_of(s))
        self._graphs: OrderedDict[tuple, _Captured] = OrderedDict()
        self._no_graph: dict[tuple, str] = {}
        self._graph_lock = threading.Lock()
        #: the CUDA-graph backend, or None (CPU, or ``cuda_graphs`` off): eager runs only
        self.graph_backend = CudaGraphs(self.device) if self.device.type == "cuda" and ctx.cuda_graphs else None
        #: every graph input and output is a tensor (sequence and optional values run eagerly)
        self.tensor_io = all(v.type.WhichOneof("value") in ("tensor_type", None)
                             for v in (*graph.input, *graph.output))

    # ----------------------------------------------------------------- construction helpers
    def _place(self, nodes, arrays: Mapping[str, Any]):
        """Decide, per node, host or device; per initializer, which copies are needed.

        Shape/Size, small Constants, and shape-arithmetic nodes (handlers registered with
        ``host_chain=True``) whose inputs are all host-side run on the host. A device node reads a
        host value as is at one of its handler's ``host_inputs`` positions, else it is moved to
        the device first (`tritonnx.runtime.registry`, "Placement facts").
        """
        graph_inputs = set(self.input_names)  # an initializer listed as an input may be fed: no host copy
        small = {n for n, a in arrays.items() if n not in graph_inputs
                 and isinstance(a, np.ndarray) and a.dtype.kind in "iufb" and a.size <= HOST_MAX_ELEMENTS}
        self.host_feed_inputs = self._control_feeds(nodes, graph_inputs - set(arrays))
        host_values: set[str] = set(small) | self._host_feeds | self.host_feed_inputs
        produced_on_host: set[str] = set(self._host_feeds) | self.host_feed_inputs
        device_inits: set[str] = set(o for o in self.output_names if o in arrays)
        host_inits: set[str] = set()
        steps: list[Step] = []
        for index, (node, domain, impl) in enumerate(nodes):
            inputs = [n for n in node.input if n]
            host = False
            if domain == "" and node.op_type in ("Shape", "Size"):
                host = True
            elif domain == "" and node.op_type == "Constant":
                host = all(not (a.type == onnx.AttributeProto.TENSOR and _numel(a.t) > HOST_MAX_ELEMENTS)
                           and a.type not in (onnx.AttributeProto.SPARSE_TENSOR, onnx.AttributeProto.STRINGS,
                                              onnx.AttributeProto.STRING)
                           for a in node.attribute)
            elif impl.host_chain and inputs:
                host = all(n in host_values for n in inputs)
            names = list(node.input)
            to_device = []
            readable = impl.host_inputs
            subgraphs = graph_attributes(node)
            if subgraphs:  # control flow: outer values appended, passed where they are
                outer = node_outer_names(node)
                # the enclosing graph's constants become the subgraph's own (placed and prepared once)
                constants = {n: arrays[n] for n in outer if n in arrays and n not in graph_inputs}
                outer = [n for n in outer if n not in constants]
                names += outer
                readable = frozenset(range(len(names)))
            for pos, name in enumerate(names):
                if not name:
                    continue
                if host and node.op_type in ("Shape", "Size") and pos == 0:
                    if name in arrays:
                        device_inits.add(name)
                    continue
                if name in arrays:
                    if host or (pos in readable and name in small):
                        host_inits.add(name)
                        names[pos] = name + _HOST
                    else:
                        device_inits.add(name)
                elif name in produced_on_host and not host and pos not in readable:
                    to_device.append(pos)
            if host:
                host_values.update(o for o in node.output if o)
                produced_on_host.update(o for o in node.output if o)
            if subgraphs:
                host_outer = {n for n in outer if n in produced_on_host or n in small}
                attrs = {a.name: self._subgraphs(node, a, host_outer, constants) if a.type in (
                    onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) else attribute_value(a, self.device)
                    for a in node.attribute}
                attrs.update(num_inputs=len(node.input), outer=tuple(outer))
            else:
                attrs = {a.name: attribute_value(a, "cpu" if host else self.device) for a in node.attribute}
            steps.append(Step(index, node.name, node.op_type, domain, impl, tuple(names), tuple(node.output),
                              MappingProxyType(attrs), host=host, to_device=tuple(to_device)))
        self._host_values = produced_on_host
        return steps, device_inits, host_inits

    @staticmethod
    def _control_feeds(nodes, feeds: set[str]) -> frozenset[str]:
        """The graph inputs read only where a control-flow node decides on the host (If's
        ``cond``, Loop's ``M`` and ``cond``): the session keeps them on the host, so that
        decision needs no device sync (and a CUDA graph is captured per value)."""
        uses: dict[str, bool] = {}
        for node, domain, impl in nodes:
            decides = bool(graph_attributes(node)) and bool(impl.host_inputs)
            for pos, name in enumerate(node.input):
                if name in feeds:
                    uses[name] = uses.get(name, True) and decides and pos in impl.host_inputs
            for name in node_outer_names(node) if graph_attributes(node) else ():
                if name in feeds:
                    uses[name] = False
        return frozenset(name for name, only in uses.items() if only)

    def _subgraphs(self, node: onnx.NodeProto, attr: onnx.AttributeProto, host_outer: set[str],
                   constants: Mapping[str, Any]):
        """A GRAPH attribute as a `Subgraph` (GRAPHS: a list of them), lowered once, with the
        enclosing graph's `constants` it reads. A Loop body's iteration number and condition
        come from the host (the handler keeps them there)."""
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        loop = node.op_type == "Loop" and canonical_domain(node.domain) == ""
        lowered = [Subgraph(g, self._opset_import, self._ops, self.ctx, host_outer,
                            [i.name for i in g.input[:2]] if loop else (), constants) for g in graphs]
        return lowered[0] if attr.type == onnx.AttributeProto.GRAPH else lowered

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
        return [dataclasses.replace(s, release=tuple(release.get(s.index, ()))) for s in steps]

    def _prepare(self, step: Step) -> Step:
        """Call the handler's `prepare` step once on the node's constant inputs (initializers
        that are not graph inputs; ``None`` for the others), its attributes and ctx."""
        impl = step.impl
        if impl.prepare is None:
            return step
        args, dynamic, used = [], [], set()
        graph_inputs = set(self.input_names)
        for pos, name in enumerate(step.inputs):
            base = name[:-len(_HOST)] if name.endswith(_HOST) else name
            if name in self.weights and base not in graph_inputs:
                args.append(self.weights[name])
                used.add(base)
            else:
                args.append(None)
                if name:
                    dynamic.append(pos)
        while args and args[-1] is None:
            args.pop()
        kwargs = dict(step.attrs)
        if impl.prepare_wants_ctx:
            kwargs["ctx"] = self._host_ctx if step.host else self.ctx
        if impl.prepare_wants_dynamic:
            kwargs["dynamic_inputs"] = tuple(dynamic)
        try:
            prepared = impl.prepare(*args, **kwargs)
        except TritonnxError as exc:
            raise type(exc)(f"node {step.name!r} ({step.op_type}): preparing: {exc}") from exc
        except Exception as exc:
            raise Fail(f"node {step.name!r} ({step.op_type}): preparing failed: {type(exc).__name__}: {exc}") from exc
        return dataclasses.replace(step, prepared=prepared, prepared_from=frozenset(used))

    def _bind(self, step: Step) -> Step:
        """Build the step's keyword arguments once (a run only swaps in ``prepared=None`` when
        its feeds override a constant the prepared value came from)."""
        impl = step.impl
        kwargs = dict(step.attrs)
        if impl.wants_ctx:
            kwargs["ctx"] = self._host_ctx if step.host else self.ctx
        if impl.wants_num_outputs:
            kwargs["num_outputs"] = len(step.outputs)
        if impl.wants_prepared:
            kwargs["prepared"] = step.prepared
        return dataclasses.replace(step, kwargs=MappingProxyType(kwargs))

    # ----------------------------------------------------------------- running
    def run(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str], *,
            profile: list[ProfileRow] | None = None) -> list[torch.Tensor]:
        """Run the graph on `feeds` (torch tensors on the device, already validated).

        Returns the requested outputs (fresh tensors, or the handlers' own results).
        """
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(self.ctx.tf32)
            torch.backends.cudnn.allow_tf32 = bool(self.ctx.tf32)
        if self.host_feed_inputs and self.device.type != "cpu":
            feeds = {k: v.cpu() if k in self.host_feed_inputs and isinstance(v, torch.Tensor) else v
                     for k, v in feeds.items()}
        if self.graph_backend is not None and profile is None and self.tensor_io:
            return self._run_graph(feeds, tuple(output_names))
        return self._execute(feeds, output_names, profile=profile)

    def _execute(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str], *,
                 profile: list[ProfileRow] | None = None, transfers: dict | None = None) -> list[torch.Tensor]:
        """One eager pass. `transfers` (CUDA-graph capture): host values moved to the device are
        kept there by (step, position) and reused, so the captured graph copies nothing from
        the host (host values depend only on the input shapes, fixed per captured signature)."""
        env: dict[str, Any] = dict(self.weights)
        env.update(feeds)
        env[""] = None  # an absent optional input
        stale = self._prepared_from.intersection(feeds) if self._prepared_from else None
        timing = profile is not None
        cuda = self.device.type == "cuda"
        events = []
        for step in self.steps:
            try:
                args = [env[name] for name in step.inputs]
            except KeyError as exc:
                raise Fail(f"node {step.name!r} ({step.op_type}): input {exc.args[0]!r} was never produced "
                           "(an earlier node returned fewer outputs than it declares)") from None
            while args and args[-1] is None:
                args.pop()
            if step.host and step.op_type in ("Shape", "Size") and isinstance(args[0], torch.Tensor):
                data = args[0]  # a storage-free CPU stand-in: the shape is all these read
                args[0] = torch.empty((), dtype=data.dtype).expand(data.shape)
            for pos in step.to_device:
                if isinstance(args[pos], torch.Tensor):
                    args[pos] = self._to_device(args[pos], (step.index, pos), transfers)
            kwargs = step.kwargs
            if stale and not stale.isdisjoint(step.prepared_from):
                kwargs = {**kwargs, "prepared": None}
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
            outs = result if isinstance(result, (tuple, list)) and not isinstance(result, SequenceValue) else (result,)
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
            outs = [env[name] for name in output_names]
        except KeyError as exc:
            raise Fail(f"graph output {exc.args[0]!r} was never produced") from None
        return [self._to_device(t, ("output", name), transfers)
                if name in self.host_outputs and isinstance(t, torch.Tensor) else t
                for name, t in zip(output_names, outs)]

    def _to_device(self, t: torch.Tensor, key, transfers: dict | None) -> torch.Tensor:
        if transfers is None:  # inside a subgraph during a capture: the capture's copies
            return host_to_device(t, self.device)
        if key not in transfers:
            transfers[key] = t.to(self.device)
        return transfers[key]

    def kernel_label(self, step: Step) -> str:
        if step.domain == "":
            return "torch (host)" if step.host and self.device.type != "cpu" else "torch"
        return f"triton ({step.kernel})" if self.ctx.kernels == "triton" else f"torch reference ({step.kernel})"

    # ----------------------------------------------------------------- CUDA graphs
    def _signature(self, feeds: Mapping[str, torch.Tensor], outputs: tuple[str, ...]) -> tuple:
        return tuple((k, tuple(v.shape), v.dtype) + ((tuple(v.reshape(-1).tolist()),) if k in self.host_feed_inputs else ())
                     for k, v in sorted(feeds.items())) + (outputs,)

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
            self.graph_backend.replay(entry.graph)
            return [t.clone() for t in entry.static_outputs]

    def _capture(self, feeds, outputs, key) -> _Captured | None:
        static_inputs = {k: v.detach().clone() for k, v in feeds.items()}
        transfers: dict = {}
        inner = CaptureTransfers()  # the host -> device copies made inside control flow
        transfers[("control flow",)] = inner
        backend = self.graph_backend

        def run():
            with inner.active():
                return self._execute(static_inputs, outputs, transfers=transfers)

        backend.warmup(run)  # eager: its errors are real errors, raised
        try:
            graph, static_outputs = backend.capture(run)
        except Exception as exc:  # capture refused (a host sync, ...): run this signature eagerly
            backend.recover()
            cause = exc.__cause__ or exc
            reason = f"{type(cause).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            self._no_graph[key] = reason
            warnings.warn(f"tritonnx: CUDA-graph capture failed for input shapes "
                          f"{[(k, list(s)) for k, s, *_ in key[:-1]]}; running eagerly ({reason})",
                          RuntimeWarning, stacklevel=4)
            return None
        entry = _Captured(graph, static_inputs, list(static_outputs), transfers)
        self._graphs[key] = entry
        while len(self._graphs) > self.ctx.cuda_graphs_max_shapes:
            self._graphs.popitem(last=False)
        return entry

    @property
    def captured_signatures(self) -> list[tuple]:
        """The input signatures that currently hold a CUDA graph (oldest first)."""
        return list(self._graphs)

    @property
    def graph_fallbacks(self) -> dict[tuple, str]:
        """The input signatures whose capture failed (they run eagerly), each with the reason."""
        return dict(self._no_graph)
