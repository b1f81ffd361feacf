"""Subgraphs (the bodies of If, Loop, Scan, SequenceMap) lowered once, at session creation.

A node with GRAPH attributes is lowered by the `Executor` like any other, except that:
- each of its subgraphs becomes a `Subgraph`: a nested `Executor` over that graph (its own
  initializers placed on the device once, its handlers resolved from the session's registry,
  the same host/device placement), built with the enclosing model's opsets;
- the names the subgraphs read from the enclosing scopes (`outer_names`: values of the
  enclosing graph, or of a graph further out for a nested subgraph) are appended to the
  node's inputs, so the executor passes them (and keeps them alive until that node ran);
- the handler receives, besides its ONNX attributes (each subgraph as a `Subgraph`), the
  keyword arguments ``num_inputs`` (the node's own input count: the arguments past it are the
  outer values) and ``outer`` (their names, in order).

Values are tensors, sequences (Python lists of tensors) and optionals (``None`` when empty).
Outer values produced on the host (shape arithmetic) stay there inside the subgraph, so a
condition that depends only on shapes is decided without a device sync.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any, Iterable, Mapping, Sequence

import onnx
import torch

class SequenceValue(list):
    """An ONNX sequence value: a list of tensors. Its own type, so that a handler returning
    one (a single output) is told apart from a handler returning a list of outputs."""

    __slots__ = ()


#: The keyword arguments the executor adds to the handler of a node that has subgraphs.
SUBGRAPH_KWARGS = ("num_inputs", "outer")


def graph_attributes(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    """The subgraphs of `node` (GRAPH and GRAPHS attributes), in attribute order."""
    graphs: list[onnx.GraphProto] = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            graphs.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            graphs.extend(attr.graphs)
    return graphs


def outer_names(graph: onnx.GraphProto) -> list[str]:
    """The names `graph` (its nodes, its nested subgraphs, its outputs) reads but does not define:
    the values it takes from the enclosing scopes, in first-use order."""
    defined = {i.name for i in graph.input} | {t.name for t in graph.initializer}
    defined |= {t.values.name for t in graph.sparse_initializer}
    seen: dict[str, None] = {}

    def use(names: Iterable[str]) -> None:
        for name in names:
            if name and name not in defined and name not in seen:
                seen[name] = None

    for node in graph.node:
        use(node.input)
        for sub in graph_attributes(node):
            use(outer_names(sub))
        defined.update(o for o in node.output if o)
    use(o.name for o in graph.output)
    return list(seen)


def node_outer_names(node: onnx.NodeProto) -> list[str]:
    """What the subgraphs of `node` read from the enclosing scopes (none of the node's own
    inputs' duplicates removed: a name may be both)."""
    seen: dict[str, None] = {}
    for sub in graph_attributes(node):
        for name in outer_names(sub):
            seen.setdefault(name, None)
    return list(seen)


class Subgraph:
    """A subgraph lowered to a nested `Executor`; the control-flow handlers call `run`.

    Attributes:
        name: the subgraph's name (``graph.name``).
        input_names: its formal inputs, in order.
        output_names: its outputs, in order.
        outer: the names it reads from the enclosing scopes.
    """

    def __init__(self, graph: onnx.GraphProto, opset_import: Sequence[onnx.OperatorSetIdProto], ops, ctx,
                 host_outer: Iterable[str] = (), host_inputs: Iterable[str] = (),
                 constants: Mapping[str, Any] | None = None) -> None:
        """Lower `graph`; `host_outer` / `host_inputs` are the outer values and formal inputs
        that come as host (CPU) tensors (the rest come on the device); `constants` (name ->
        array) are the enclosing scopes' initializers it reads, lowered as its own (on the
        device once, with host copies of the small ones, and seen by the handlers' `prepare`)."""
        from tritonnx.runtime.executor import Executor

        self.name = graph.name
        self.input_names: tuple[str, ...] = tuple(i.name for i in graph.input)
        self.output_names: tuple[str, ...] = tuple(o.name for o in graph.output)
        constants = {n: a for n, a in (constants or {}).items() if n in set(outer_names(graph))}
        self.outer: tuple[str, ...] = tuple(n for n in outer_names(graph) if n not in constants)
        #: the declared type of each output (``None`` where the graph declares none)
        self.output_types: tuple[onnx.TypeProto | None, ...] = tuple(
            o.type if o.HasField("type") else None for o in graph.output)
        self.device = torch.device(ctx.device)
        wrapped = onnx.GraphProto()
        wrapped.CopyFrom(graph)
        formal = set(self.input_names)
        wrapped.input.extend(onnx.ValueInfoProto(name=n) for n in self.outer if n not in formal)
        wrapped.initializer.extend(onnx.TensorProto(name=n) for n in constants)  # data: `constants`
        model = onnx.ModelProto(ir_version=onnx.IR_VERSION, graph=wrapped)
        model.opset_import.extend(opset_import)
        host = set(host_outer) & set(self.outer) | set(host_inputs)
        self.executor = Executor(model, ops, dataclasses.replace(ctx, cuda_graphs=False), constants,
                                 host_feeds=frozenset(host), nested=True)

    def run(self, inputs: Sequence[Any], scope: Mapping[str, Any]) -> list[Any]:
        """Run once: `inputs` bind the formal inputs in order, `scope` the outer names.

        Returns the outputs in order (host values may come back as CPU tensors: see
        `to_device`)."""
        feeds = {name: scope.get(name) for name in self.outer}
        feeds.update(zip(self.input_names, inputs))
        return self.executor.execute_eager(feeds, self.output_names)


class CaptureTransfers:
    """Host -> device copies made inside control flow while a CUDA graph is warmed up and
    captured, kept by their order in the run (the n-th copy of every run is the same value: host
    values depend only on the signature), so the captured graph reads device buffers and copies
    nothing from the host. `Executor._capture` installs one around its runs (`active`)."""

    def __init__(self) -> None:
        self.cache: dict[int, torch.Tensor] = {}
        self.count = 0

    @contextlib.contextmanager
    def active(self):
        """Install this object for one run (its copy counter restarts at 0)."""
        self.count = 0
        token = _TRANSFERS.set(self)
        try:
            yield self
        finally:
            _TRANSFERS.reset(token)

    def copy(self, t: torch.Tensor, device: torch.device) -> torch.Tensor:
        key, self.count = self.count, self.count + 1
        if key not in self.cache:
            self.cache[key] = t.to(device)
        return self.cache[key]


_TRANSFERS: contextvars.ContextVar[CaptureTransfers | None] = contextvars.ContextVar("tritonnx_cf_transfers",
                                                                                      default=None)


def host_to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`t.to(device)`, through the active `CaptureTransfers` when a CUDA graph is being captured."""
    transfers = _TRANSFERS.get()
    if transfers is None or t.device.type != "cpu" or torch.device(device).type == "cpu":
        return t.to(device)
    return transfers.copy(t, device)


def to_device(value: Any, device: torch.device) -> Any:
    """`value` (tensor, sequence of tensors or None) on `device` (a no-op on the CPU)."""
    if isinstance(value, torch.Tensor):
        return value if value.device == device else host_to_device(value, device)
    if isinstance(value, list):
        return SequenceValue(to_device(v, device) for v in value)
    return value


def scope_of(values: Sequence[Any], num_inputs: int, outer: Sequence[str]) -> tuple[list[Any], dict[str, Any]]:
    """Split a handler's positional arguments into the node's own inputs (padded with ``None``
    to `num_inputs`: the executor drops trailing absent ones) and the outer scope by name."""
    values = list(values) + [None] * max(0, num_inputs + len(outer) - len(values))
    return values[:num_inputs], dict(zip(outer, values[num_inputs:]))
