"""The executor: a rewritten ONNX graph lowered to a list of handler calls.

Each node becomes a frozen `Step` (its handler, input/output names, attributes converted once,
and the values whose last use it is). Weights are converted and placed on the device once,
at construction; then each handler's `prepare` step (`tritonnx.runtime.registry`) runs once per
node on its constant inputs, and every run passes its result as ``prepared=`` (``None`` to a
node when that run's feeds override one of those constants). A run keeps a name -> tensor
environment of its own (so several threads may run one executor at once) and drops each
intermediate after its last use.

Run plans: the first run of each input signature (names, shapes, dtypes of the feeds, and the
requested outputs) walks every step with that environment and makes the signature's `RunPlan`
on the way: its host-side shape arithmetic (Shape -> Gather -> Unsqueeze -> Concat -> ...)
depends only on the input shapes, so its results become constants of the plan; what is left is
device work with its arguments and keyword arguments bound ahead, over slot indices into a list
environment, each intermediate released after its last use. Later runs of the signature walk
that flat list. Shapes that depend on data (`DATA_DEPENDENT_SHAPES`, a shape read from a feed or
from device data) are not folded: the steps computed from them run on every run, and a guard on
each intermediate whose shape a folded step read sends a run whose shape differs back to the
full walk. Plans share the CUDA graphs' bound (``cuda_graphs_max_shapes``, least recently used
dropped).

On a CUDA device with ``cuda_graphs`` on, the first run of each input signature (names,
shapes, dtypes of the feeds, and the requested outputs) warms up on a side stream, then
captures the whole run (on its plan) in a CUDA graph; later runs of that signature copy the feeds into the
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
    host_reads: frozenset[int] = frozenset()  # input positions its handler reads on the host
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


class _PlanMiss(Exception):
    """A guarded intermediate came with another shape than the one its plan folded."""


_UNSEEN = object()  # a signature without a plan entry yet
_DEVICE = "\x00device"  # slot-name suffix of a folded host value's device copy
_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})
#: the kernel column of a folded step in a profile
FOLDED_LABEL = "folded (host, once per input shape)"

#: Standard ops whose output shapes depend on their input data: a run plan folds no shape
#: arithmetic computed from their results (the plan's guards catch any op missing here).
DATA_DEPENDENT_SHAPES = frozenset({
    "NonZero", "Unique", "Compress", "NonMaxSuppression", "Range", "Loop", "If", "Scan",
    "StringSplit", "StringNormalizer", "TfIdfVectorizer", "SequenceAt", "SplitToSequence",
    "ConcatFromSequence", "OptionalGetElement",
})


@dataclass(frozen=True)
class RunPlan:
    """One input signature's run, made once (`Executor._make_plan`).

    `template` is the slot environment a run starts from (weights and folded constants in
    their slots); `feeds` are (name, slot); each op is (step, fn, input slots, kwargs, output
    slot or slots, slots released after it); `outputs` the requested outputs' slots, `clone`
    the positions holding a plan constant (copied per run), `moves` those computed on the host
    at run time (moved to the device), `const_ptrs` the storages of the plan's constants (an
    output aliasing one is copied), `folded` the steps evaluated once, when the plan was made.
    """

    template: list
    feeds: tuple[tuple[str, int], ...]
    ops: tuple[tuple, ...]
    outputs: tuple[int, ...]
    clone: tuple[int, ...]
    moves: tuple[int, ...]
    const_ptrs: frozenset[int]
    folded: tuple[Step, ...]

    @property
    def steps(self) -> int:
        """Handler calls per run (the guards not counted)."""
        return sum(op[0] is not None for op in self.ops)


class Profile(list):
    """The `ProfileRow`s of one profiled run, with the run's wall time.

    ``host_ms`` = ``wall_ms`` minus the rows' sum: the time a run spends outside its handlers'
    calls (on the CPU the rows are the handlers' wall times; on a GPU their kernels' device
    times, so it also counts any wait for the device). ``steps``: handler calls in the run.
    """

    wall_ms: float = 0.0
    steps: int = 0
    planned: bool = False

    def finish(self, *, wall_ms: float, steps: int, planned: bool) -> None:
        self.wall_ms, self.steps, self.planned = wall_ms, steps, planned

    @property
    def ops_ms(self) -> float:
        return sum(r.ms for r in self)

    @property
    def host_ms(self) -> float:
        return max(self.wall_ms - self.ops_ms, 0.0)

    @property
    def host_us_per_step(self) -> float:
        return self.host_ms * 1e3 / self.steps if self.steps else 0.0


def _meta(value) -> tuple | None:
    """(dtype, shape) of a tensor, else None (what `plan_fast` specializes on)."""
    return (value.dtype, tuple(value.shape)) if isinstance(value, torch.Tensor) else None


def _on_stand_in(fn):
    """Shape/Size on a storage-free CPU stand-in of its (device) input."""
    def shape_of(data, *rest, **kwargs):
        if isinstance(data, torch.Tensor):
            data = torch.empty((), dtype=data.dtype).expand(data.shape)
        return fn(data, *rest, **kwargs)
    return shape_of


def _moving(fn, positions: tuple[int, ...], device):
    """`fn` with the host values at `positions` moved to `device` first."""
    def moved(*args, **kwargs):
        args = list(args)
        for pos in positions:
            if isinstance(args[pos], torch.Tensor):
                args[pos] = host_to_device(args[pos], device)
        return fn(*args, **kwargs)
    return moved


def _storing(fn, device):
    """`fn` returning a tuple of outputs, scalars as tensors (the walk's rules)."""
    def stored(*args, **kwargs):
        result = fn(*args, **kwargs)
        outs = result if isinstance(result, (tuple, list)) and not isinstance(result, SequenceValue) else (result,)
        return tuple(v if isinstance(v, torch.Tensor) or not np.isscalar(v) else torch.as_tensor(v, device=device)
                     for v in outs)
    return stored


def _guard(name: str, shape: tuple):
    def guard(value):
        if value.shape != shape:
            raise _PlanMiss(f"{name!r} came with shape {list(value.shape)} where the run plan folded "
                            f"{list(shape)} (a data-dependent shape)")
    return guard


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
        #: signature -> its `RunPlan` (None: it walks), least recently used first
        self._plans: OrderedDict[tuple, RunPlan | None] = OrderedDict()
        self._plan_lock = threading.Lock()
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
                              MappingProxyType(attrs), host=host, to_device=tuple(to_device),
                              host_reads=frozenset(readable)))
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

        `profile`, when given, receives one `ProfileRow` per node of a run on the signature's
        plan (made first, by an unprofiled run, when the signature is new); a `Profile` also gets
        the run's wall time. Returns the requested outputs (fresh tensors, or the handlers' own
        results).
        """
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(self.ctx.tf32)
            torch.backends.cudnn.allow_tf32 = bool(self.ctx.tf32)
        if self.host_feed_inputs and self.device.type != "cpu":
            feeds = {k: v.cpu() if k in self.host_feed_inputs and isinstance(v, torch.Tensor) else v
                     for k, v in feeds.items()}
        if self.graph_backend is not None and profile is None and self.tensor_io:
            return self._run_graph(feeds, tuple(output_names))
        return self.execute_eager(feeds, output_names, profile=profile)

    def execute_eager(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str], *,
                 profile: list[ProfileRow] | None = None, transfers: dict | None = None) -> list[torch.Tensor]:
        """One eager run (no CUDA graph; also what a subgraph's nested executor runs): on the signature's `RunPlan` when there is one, else a walk of every
        step (`_walk`) that makes the plan on the way. A signature whose plan missed a guard
        (a data-dependent shape the plan had folded) walks from then on.

        `transfers` (CUDA-graph capture): host values moved to the device are kept there and
        reused, so the captured graph copies nothing from the host (the plan's constants are on
        the device already)."""
        key = self._signature(feeds, output_names)
        if key is None:  # a sequence or optional feed: no plan
            return self._walk(feeds, output_names, profile=profile, transfers=transfers)
        plans = self._plans
        plan = plans.get(key, _UNSEEN)  # one dict read (atomic): no lock unless the LRU order moves
        if plan is not _UNSEEN and len(plans) > 1:
            with self._plan_lock:
                if key in plans:
                    plans.move_to_end(key)
        if plan is _UNSEEN:
            record: dict = {}
            outs = self._walk(feeds, output_names, transfers=transfers, record=record)
            plan = self._make_plan(feeds, tuple(output_names), record)
            self._keep_plan(key, plan)
            if profile is None:
                return outs
        if plan is not None:
            try:
                return self._run_plan(plan, feeds, profile, transfers)
            except _PlanMiss as miss:
                warnings.warn(f"tritonnx: {miss}; this input signature runs without a plan from now on",
                              RuntimeWarning, stacklevel=4)
                self._keep_plan(key, None)
                if profile is not None:
                    profile.clear()
        return self._walk(feeds, output_names, profile=profile, transfers=transfers)

    def _keep_plan(self, key: tuple, plan: "RunPlan | None") -> None:
        with self._plan_lock:
            self._plans[key] = plan
            self._plans.move_to_end(key)
            while len(self._plans) > self.ctx.cuda_graphs_max_shapes:
                self._plans.popitem(last=False)

    def _walk(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str], *,
              profile: list[ProfileRow] | None = None, transfers: dict | None = None,
              record: dict | None = None) -> list[torch.Tensor]:
        """Every step in order, names looked up in a dict environment (the dynamic path).
        `record`, when given, collects what `_make_plan` needs: each step's results (host ones
        and Constants by name, ``(index, "tensor")`` flags for the others) and the shapes that
        Shape/Size steps read."""
        env: dict[str, Any] = dict(self.weights)
        env.update(feeds)
        env[""] = None  # an absent optional input
        stale = self._prepared_from.intersection(feeds) if self._prepared_from else None
        timing = profile is not None
        cuda = self.device.type == "cuda"
        events = []
        wall = time.perf_counter()
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
                if record is not None:
                    record[(step.index, "shape")] = tuple(data.shape)
                args[0] = torch.empty((), dtype=data.dtype).expand(data.shape)
            for pos in step.to_device:
                if isinstance(args[pos], torch.Tensor):
                    args[pos] = self._to_device(args[pos], (step.index, pos), transfers)
            if record is not None:
                record[(step.index, "in")] = tuple(_meta(a) for a in args)
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
            if record is not None:
                record[(step.index, "tensor")] = isinstance(result, torch.Tensor) and len(step.outputs) == 1
                record[(step.index, "out")] = tuple(_meta(v) for v in outs)
            for name, value in zip(step.outputs, outs):
                if name:
                    value = value if isinstance(value, torch.Tensor) or not np.isscalar(value) \
                        else torch.as_tensor(value, device=self.device)
                    env[name] = value
                    if record is not None and (step.host or step.op_type == "Constant"):
                        record[name] = value
            for name in step.release:
                env.pop(name, None)
        try:
            outs = [env[name] for name in output_names]
        except KeyError as exc:
            raise Fail(f"graph output {exc.args[0]!r} was never produced") from None
        results = [self._to_device(t, ("output", name), transfers)
                   if name in self.host_outputs and isinstance(t, torch.Tensor) else t
                   for name, t in zip(output_names, outs)]
        if record:  # a recorded value becomes a plan constant: the caller gets its own copy
            results = [t.clone() if isinstance(t, torch.Tensor) and record.get(name) is t else t
                       for name, t in zip(output_names, results)]
        if events:
            torch.cuda.synchronize(self.device)
            for step, start, end in events:
                profile.append(ProfileRow(step.name, step.op_type, step.domain, self.kernel_label(step),
                                          start.elapsed_time(end)))
        if isinstance(profile, Profile):
            profile.finish(wall_ms=(time.perf_counter() - wall) * 1e3, steps=len(self.steps), planned=False)
        return results

    # ----------------------------------------------------------------- run plans
    def _make_plan(self, feeds: Mapping[str, torch.Tensor], outputs: tuple[str, ...], record: dict) -> "RunPlan":
        """The `RunPlan` of one signature, from the walk that `record`ed it.

        A value *varies* (for a fixed signature) when its shape (device values) or its value
        (host values) may change from run to run: the outputs of `DATA_DEPENDENT_SHAPES` ops,
        of a device node that reads a non-constant value on the host (Reshape's shape from a
        feed or device data), and everything computed from a varying value. Host steps and
        Constants whose outputs do not vary are folded: their recorded results become constants
        of the plan (moved to the device once where a device node wants them there). The shape
        of every intermediate that a folded Shape/Size read is checked when it is made (a
        guard: a miss means an unforeseen data-dependent shape, and the run walks instead).
        Steps no requested output needs are dropped; each value is released after its last use.
        """
        from tritonnx.runtime import plan_fast

        fed = frozenset(feeds)
        constant = {n for n in self.weights if (n[:-len(_HOST)] if n.endswith(_HOST) else n) not in fed}
        varying: set[str] = set(self._host_feeds & fed)  # values on the host (a Loop's counter)
        folded: dict[int, Step] = {}
        for step in self.steps:
            ins = [n for n in step.inputs if n]
            vary = any(n in varying for n in ins)
            if step.host or (step.domain == "" and step.op_type == "Constant"):
                if not vary:
                    folded[step.index] = step
                    constant.update(o for o in step.outputs if o)
                    continue
            elif not vary:
                vary = (step.domain == "" and step.op_type in DATA_DEPENDENT_SHAPES) or any(
                    n and pos in step.host_reads and n not in constant for pos, n in enumerate(step.inputs))
            if vary:
                varying.update(o for o in step.outputs if o)
        needed = set(outputs)
        kept: list[Step] = []
        for step in reversed(self.steps):
            if needed.isdisjoint(step.outputs):
                continue
            needed.update(n for n in step.inputs if n)
            kept.append(step)
        kept.reverse()
        guards: dict[str, tuple] = {}  # intermediate -> the shape a folded Shape/Size read
        for step in kept:
            if step.index in folded and step.op_type in ("Shape", "Size"):
                data = step.inputs[0]
                if data not in fed and data not in constant:
                    guards[data] = record[(step.index, "shape")]

        slots: dict[str, int] = {"": 0}
        template: list[Any] = [None, None]  # slot 0: an absent input; slot 1: an unnamed output
        const_ptrs: set[int] = set()

        def slot(name: str) -> int:
            if name not in slots:
                slots[name] = len(template)
                template.append(None)
            return slots[name]

        def value_slot(name: str, on_device: bool) -> int:
            """The slot of an input: a feed, a weight, a folded constant (its device copy when
            `on_device`) or a value of an earlier step."""
            if name in fed or not name:
                return slot(name)
            if name in self.weights:
                index = slot(name)
                template[index] = self.weights[name]
                return index
            if name in record and name not in varying:
                value = record[name]
                if on_device and isinstance(value, torch.Tensor) and value.device != self.device:
                    key = name + _DEVICE
                    if key not in slots:
                        template[slot(key)] = value.to(self.device)
                    name, value = key, template[slots[key]]
                index = slot(name)
                template[index] = value
                if isinstance(value, torch.Tensor):
                    const_ptrs.add(value.untyped_storage().data_ptr())
                return index
            return slot(name)

        stale = self._prepared_from & fed
        ops: list[list] = []
        for step in kept:
            if step.index in folded:
                continue
            args = list(step.inputs)
            while args and not args[-1]:
                args.pop()
            dynamic_moves = tuple(pos for pos in step.to_device if args[pos] in varying)
            ins = tuple(value_slot(n, pos in step.to_device) for pos, n in enumerate(args))
            kwargs = step.kwargs
            if stale and not stale.isdisjoint(step.prepared_from):
                kwargs = MappingProxyType({**kwargs, "prepared": None})
            fn = step.impl.fn
            if step.host and step.op_type in ("Shape", "Size"):
                fn = _on_stand_in(fn)
            if dynamic_moves:
                fn = _moving(fn, dynamic_moves, self.device)
            fast = None
            if not step.host and not dynamic_moves and varying.isdisjoint(args) and varying.isdisjoint(step.outputs) \
                    and (step.index, "in") in record:
                fast = plan_fast.specialize(step, record[(step.index, "in")], record[(step.index, "out")], kwargs,
                                            [template[i] for i in ins])
                if fast is not None:
                    fn, kwargs = fast, _NO_KWARGS
            if record.get((step.index, "tensor")) and step.outputs[0]:
                out: Any = slot(step.outputs[0])
            else:
                if fast is None or step.op_type not in plan_fast.RETURNS_TUPLE:
                    fn = _storing(fn, self.device)
                out = tuple(slot(o) if o else 1 for o in step.outputs)
            ops.append([step, fn, ins, kwargs, out, []])
            for o in step.outputs:
                if o in guards:
                    ops.append([None, _guard(o, guards[o]), (slots[o],), _NO_KWARGS, 1, []])
        out_slots = tuple(value_slot(n, True) if n in self.host_outputs else value_slot(n, False)
                          for n in outputs)
        templated = {i for i, v in enumerate(template) if v is not None}
        last: dict[int, list] = {}
        for op in ops:
            for i in op[2]:
                last[i] = op
            for i in (op[4],) if isinstance(op[4], int) else op[4]:
                last.setdefault(i, op)
        keep = set(out_slots) | templated | {0, 1}
        for index, op in last.items():
            if index not in keep:
                op[5].append(index)
        clone = tuple(pos for pos, i in enumerate(out_slots) if i in templated and template[i] is not None
                      and not any(template[i] is w for w in self.weights.values()))
        moves = tuple(pos for pos, n in enumerate(outputs) if n in self.host_outputs and n in varying)
        return RunPlan(
            template=template,
            feeds=tuple((n, slots[n]) for n in fed if n in slots),
            ops=tuple((op[0], op[1], op[2], op[3], op[4], tuple(op[5])) for op in ops),
            outputs=out_slots, clone=clone, moves=moves, const_ptrs=frozenset(const_ptrs),
            folded=tuple(folded[s.index] for s in kept if s.index in folded),
        )

    def _run_plan(self, plan: "RunPlan", feeds: Mapping[str, torch.Tensor],
                  profile: list[ProfileRow] | None, transfers: dict | None) -> list[torch.Tensor]:
        """A run on `plan`: a flat walk over slot-indexed arguments."""
        env = plan.template.copy()
        for name, index in plan.feeds:
            env[index] = feeds[name]
        if profile is not None:
            self._profile_plan(plan, env, profile)
        else:
            op = None
            try:
                for op in plan.ops:
                    _, fn, ins, kwargs, out, release = op
                    result = fn(*[env[i] for i in ins], **kwargs)
                    if out.__class__ is int:
                        env[out] = result
                    else:
                        for i, value in zip(out, result):
                            env[i] = value
                    for i in release:
                        env[i] = None
            except _PlanMiss:
                raise
            except Exception as exc:
                raise self._step_error(op[0], exc) from exc
        outs = [env[i] for i in plan.outputs]
        for pos in plan.clone:
            outs[pos] = outs[pos].clone()
        for pos in plan.moves:
            if isinstance(outs[pos], torch.Tensor):
                outs[pos] = self._to_device(outs[pos], ("output", pos), transfers)
        if plan.const_ptrs:
            outs = [t.clone() if isinstance(t, torch.Tensor) and pos not in plan.clone
                    and t.untyped_storage().data_ptr() in plan.const_ptrs else t for pos, t in enumerate(outs)]
        return outs

    def _profile_plan(self, plan: "RunPlan", env: list, profile: list[ProfileRow]) -> None:
        """`_run_plan`'s walk, timing each handler call (CUDA events on a GPU, else wall time)."""
        cuda = self.device.type == "cuda"
        clock = time.perf_counter
        times = []
        wall = clock()
        op = None
        try:
            for op in plan.ops:
                step, fn, ins, kwargs, out, release = op
                args = [env[i] for i in ins]
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    result = fn(*args, **kwargs)
                    end.record()
                    times.append((step, start, end))
                else:
                    t0 = clock()
                    result = fn(*args, **kwargs)
                    times.append((step, clock() - t0, None))
                if out.__class__ is int:
                    env[out] = result
                else:
                    for i, value in zip(out, result):
                        env[i] = value
                for i in release:
                    env[i] = None
            if cuda:
                torch.cuda.synchronize(self.device)
        except _PlanMiss:
            raise
        except Exception as exc:
            raise self._step_error(op[0], exc) from exc
        wall_ms = (clock() - wall) * 1e3
        ms = {}
        for step, start, end in times:
            if step is not None:
                ms[step.index] = start.elapsed_time(end) if cuda else start * 1e3
        folded = {s.index for s in plan.folded}
        for step in self.steps:
            if step.index in ms:
                profile.append(ProfileRow(step.name, step.op_type, step.domain, self.kernel_label(step),
                                          ms[step.index]))
            elif step.index in folded:
                profile.append(ProfileRow(step.name, step.op_type, step.domain, FOLDED_LABEL, 0.0))
        if isinstance(profile, Profile):
            profile.finish(wall_ms=wall_ms, steps=len(plan.ops), planned=True)

    @staticmethod
    def _step_error(step: Step | None, exc: Exception) -> Exception:
        if step is None:
            return exc
        if isinstance(exc, TritonnxError):
            return type(exc)(f"node {step.name!r} ({step.op_type}): {exc}")
        return Fail(f"node {step.name!r} ({step.op_type}) failed: {type(exc).__name__}: {exc}")

    def plan_for(self, feeds: Mapping[str, torch.Tensor], output_names: Sequence[str]) -> "RunPlan | None":
        """The cached plan of this signature (None: not made yet, or it walks)."""
        with self._plan_lock:
            plan = self._plans.get(self._signature(feeds, output_names))
        return plan if isinstance(plan, RunPlan) else None

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
    def _signature(self, feeds: Mapping[str, torch.Tensor], outputs: tuple[str, ...]) -> tuple | None:
        """(name, shape, dtype) of each feed (and the value of those kept on the host to decide
        control flow) and the requested outputs; None when a feed is not a tensor (a sequence or
        optional value)."""
        try:
            return tuple((k, tuple(v.shape), v.dtype) + ((tuple(v.reshape(-1).tolist()),) if k in self.host_feed_inputs
                                                         else ())
                         for k, v in sorted(feeds.items())) + (tuple(outputs),)
        except AttributeError:
            return None

    def _run_graph(self, feeds: Mapping[str, torch.Tensor], outputs: tuple[str, ...]) -> list[torch.Tensor]:
        key = self._signature(feeds, outputs)
        with self._graph_lock:
            if key in self._no_graph:
                return self.execute_eager(feeds, outputs)
            entry = self._graphs.get(key)
            if entry is None:
                entry = self._capture(feeds, outputs, key)
                if entry is None:
                    return self.execute_eager(feeds, outputs)
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
                return self.execute_eager(static_inputs, outputs, transfers=transfers)

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
