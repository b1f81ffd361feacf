"""Loading and checking a model before anything runs.

`load_model` accepts a path, bytes or an ``onnx.ModelProto`` and returns a checked
``ModelProto`` with its external data read (only from inside the model's directory) and its
model-local functions inlined. `unsupported_nodes` / `check_supported` collect every node no
handler implements (op type, domain, opset, node names) and raise once. `convert_opset`
brings an old model up to `PREFERRED_OPSET` with onnx's version converter when its own opset
has no handler for some node.

Loading follows onnxruntime's rules, not onnx.checker's alone (tests/runtime/test_load_rules.py
builds each case and checks it against onnxruntime side by side):
- accepted as onnxruntime accepts them, with one warning where the checker finds fault: graph
  inputs/outputs without a shape (or an output without a type: inferred), IR < 4 initializers
  not listed as graph inputs, IR versions 0-2 with an opset_import, an empty graph name, nodes
  not topologically sorted (sorted), duplicate initializers (the last one wins, as in
  onnxruntime), the ``ai.onnx`` domain spelled out, ``com.microsoft`` nodes without an
  opset_import for it, sparse initializers (made dense);
- refused as onnxruntime refuses them: an IR version or an opset newer than the ones onnx
  (and so onnxruntime) knows, two nodes with the same name in one graph, a declared type that
  contradicts the inferred one.
"""
from __future__ import annotations

import functools
import os
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.inliner
import onnx.version_converter
import numpy as np
from google.protobuf.message import DecodeError

from tritonnx.errors import InvalidGraph, InvalidProtobuf, NoSuchFile, NotImplemented
from tritonnx.runtime.registry import MS_DOMAIN, OpRegistry, canonical_domain

#: The opset old models are converted to when their own opset lacks a handler.
PREFERRED_OPSET = 18
#: The oldest default-domain opset accepted (old forms resolve to handlers or get converted).
MIN_OPSET = 1
#: onnxruntime's own (contrib) domains and the newest opset it registers for each (onnxruntime
#: 1.32 refuses ``com.microsoft`` 2 as "under development"). A node in one of them needs no
#: opset_import: onnxruntime adds it, so the loader does too.
ORT_CONTRIB_DOMAINS = {MS_DOMAIN: 1, f"{MS_DOMAIN}.nchwc": 1, f"{MS_DOMAIN}.experimental": 1}


@functools.lru_cache(maxsize=1)
def supported_opsets() -> dict[str, int]:
    """The newest opset per known domain: onnx's schema registry (what onnxruntime checks a
    model against, "" is ai.onnx) plus onnxruntime's contrib domains. Other domains (custom
    ops, ``tritonnx``) have no limit here; their ops are checked by the handler registry."""
    limits = {"": onnx.defs.onnx_opset_version()}
    version_map = getattr(onnx.defs, "C", None)
    if version_map is not None and hasattr(version_map, "schema_version_map"):
        limits.update({canonical_domain(d): int(v[1]) for d, v in version_map.schema_version_map().items()})
    limits.update(ORT_CONTRIB_DOMAINS)
    return limits


def _check_versions(model: onnx.ModelProto, what: str) -> None:
    """Refuse, as onnxruntime does, an IR version or a known domain's opset newer than onnx's."""
    if model.ir_version > onnx.IR_VERSION:
        raise NotImplemented(f"{what}: IR version {model.ir_version}; tritonnx (with onnx {onnx.__version__}, "
                             f"like onnxruntime) reads IR versions up to {onnx.IR_VERSION}")
    limits = supported_opsets()
    for entry in model.opset_import:
        domain = canonical_domain(entry.domain)
        if domain in limits and entry.version > limits[domain]:
            raise NotImplemented(f"{what}: opset {entry.version} of domain {domain or 'ai.onnx'!r} is newer than "
                                 f"the released ones; tritonnx (with onnx {onnx.__version__}, like onnxruntime) "
                                 f"supports {domain or 'ai.onnx'} opsets up to {limits[domain]}")


def _read_bytes(source) -> tuple[bytes, Path | None]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None
    path = Path(os.fspath(source))
    if not path.is_file():
        raise NoSuchFile(f"model file {str(path)!r} does not exist" if not path.exists()
                         else f"model path {str(path)!r} is not a file")
    return path.read_bytes(), path.resolve().parent


def _parse(data: bytes, what: str) -> onnx.ModelProto:
    if not data:
        raise InvalidProtobuf(f"{what}: empty input, not an ONNX model")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise InvalidProtobuf(f"{what}: not a valid ONNX protobuf (truncated or corrupt file?): {exc}") from None
    if not model.HasField("graph") or not model.opset_import:
        raise InvalidProtobuf(f"{what}: parsed, but holds no ONNX graph and no opset_import "
                              "(not an ONNX model, or a truncated one)")
    return model


def _external_tensors(model: onnx.ModelProto):
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            yield tensor


def _load_external(model: onnx.ModelProto, base_dir: Path | None, what: str) -> int:
    """Read every tensor's external data into the model; return how many there were."""
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_tensor

    tensors = list(_external_tensors(model))
    if not tensors:
        return 0
    if base_dir is None:
        raise InvalidGraph(f"{what}: the model keeps {len(tensors)} tensor(s) in external data files; "
                           "load it from its file path (not bytes) so they can be found beside it")
    root = base_dir.resolve()
    for tensor in tensors:
        info = ExternalDataInfo(tensor)
        location = info.location or ""
        target = (root / location).resolve()
        if os.path.isabs(location) or not target.is_relative_to(root):
            raise InvalidGraph(f"{what}: tensor {tensor.name!r} points to external data {location!r}, "
                               f"outside the model's directory {str(root)!r}; refusing to read it")
        if not target.is_file():
            raise InvalidGraph(f"{what}: tensor {tensor.name!r}: external data file {location!r} "
                               f"not found in {str(root)!r}")
        try:
            load_external_data_for_tensor(tensor, str(root))
        except Exception as exc:
            raise InvalidGraph(f"{what}: tensor {tensor.name!r}: cannot read external data "
                               f"{location!r}: {exc}") from None
        tensor.data_location = onnx.TensorProto.DEFAULT
        del tensor.external_data[:]
    return len(tensors)


def load_model(source, *, check: bool = True) -> onnx.ModelProto:
    """Read and check a model.

    Args:
        source: a path (str / PathLike), the serialized bytes, or an ``onnx.ModelProto``
            (copied, never modified).
        check: run ``onnx.checker`` (errors become `InvalidGraph`).
    Returns:
        A self-contained ``ModelProto`` (external data read, local functions inlined).
    """
    base_dir = data = None
    if isinstance(source, onnx.ModelProto):
        model = onnx.ModelProto()
        model.CopyFrom(source)
        what = f"model {model.graph.name or '<unnamed>'}"
        base_dir = Path.cwd()
    elif isinstance(source, (str, os.PathLike, bytes, bytearray, memoryview)):
        data, base_dir = _read_bytes(source)
        what = f"model {os.fspath(source)!r}" if base_dir is not None else "model bytes"
        model = _parse(data, what)
    else:
        raise InvalidGraph(f"expected a model path, bytes or onnx.ModelProto, got {type(source).__name__}")

    external = _load_external(model, base_dir, what)
    _check_versions(model, what)
    changed, notes = tolerate(model)
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise NotImplemented(f"{what}: default-domain opset {opset}; tritonnx supports opsets "
                             f"{MIN_OPSET}..{onnx.defs.onnx_opset_version()}")
    if check:
        try:
            # The checker takes serialized bytes: those just read when they are the whole model
            # (serializing it again costs seconds for a large one, e.g. 3 s of VGG-16's 4.5 s).
            onnx.checker.check_model(data if data is not None and not external and not changed else model)
        except onnx.checker.ValidationError as exc:
            first = _first_line(exc)
            try:
                check_like_onnxruntime(model)
            except onnx.checker.ValidationError as again:
                raise InvalidGraph(f"{what}: invalid ONNX model: {_first_line(again)}") from None
            notes.append(f"onnx.checker finds fault with it ({first})")
        _check_node_names(model, what)
        _check_initializer_inputs(model, what)
        _check_types(model, what)
    if notes:
        warnings.warn(f"{what}: loaded as onnxruntime loads it: " + "; ".join(notes), RuntimeWarning, stacklevel=3)
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    name_nodes(model)
    return model


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _checker_view(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model`, or a copy with the faults onnxruntime tolerates (and the checker does not) made
    good for the checker only: an empty graph name, graph inputs/outputs without a shape."""
    shapeless = [v for v in (*model.graph.input, *model.graph.output)
                 if v.type.HasField("tensor_type") and not v.type.tensor_type.HasField("shape")]
    if model.graph.name and not shapeless:
        return model
    view = onnx.ModelProto()
    view.CopyFrom(model)
    view.graph.name = view.graph.name or "graph"
    for value in (*view.graph.input, *view.graph.output):
        if value.type.HasField("tensor_type") and not value.type.tensor_type.HasField("shape"):
            value.type.tensor_type.shape.SetInParent()  # rank unknown; the checker wants the field
    return view


def check_like_onnxruntime(model: onnx.ModelProto) -> None:
    """``onnx.checker.check_model`` minus the faults onnxruntime accepts (`_checker_view`);
    raises ``onnx.checker.ValidationError``. The passes' final check uses it too."""
    onnx.checker.check_model(_checker_view(model))


def _topological(graph: onnx.GraphProto) -> bool:
    """Sort `graph`'s nodes (and its subgraphs') topologically, as onnxruntime does; True if
    they were not. A cycle or an undefined input is left for the checker to report."""
    changed = False
    for node in graph.node:
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else
                        attr.graphs if attr.type == onnx.AttributeProto.GRAPHS else ()):
                changed |= _topological(sub)
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}

    def needs(node) -> set[int]:
        names = set(node.input)
        for sub_node in iter_nodes_of(node):
            names.update(sub_node.input)
        return {producer[n] for n in names if n in producer}

    deps = [needs(node) for node in graph.node]
    if all(d < i for i, ds in enumerate(deps) for d in ds):
        return changed
    order: list[int] = []
    state = [0] * len(deps)  # 0 new, 1 on the stack, 2 placed
    for start in range(len(deps)):
        stack = [(start, iter(sorted(deps[start])))]
        if state[start]:
            continue
        state[start] = 1
        while stack:
            i, pending = stack[-1]
            nxt = next(pending, None)
            if nxt is None:
                stack.pop()
                state[i] = 2
                order.append(i)
            elif state[nxt] == 1:
                return changed  # a cycle: the checker names it
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(deps[nxt]))))
    nodes = [onnx.NodeProto() for _ in order]
    for new, i in zip(nodes, order):
        new.CopyFrom(graph.node[i])
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def iter_nodes_of(node: onnx.NodeProto):
    """Every node inside `node`'s subgraphs (none for a node without one)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield from iter_nodes(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            for g in attr.graphs:
                yield from iter_nodes(g)


def _dense(sparse: onnx.SparseTensorProto) -> onnx.TensorProto:
    from onnx import numpy_helper

    values = numpy_helper.to_array(sparse.values)
    indices = numpy_helper.to_array(sparse.indices).astype(np.int64)
    dims = tuple(int(d) for d in sparse.dims)
    flat = np.zeros(int(np.prod(dims)) if dims else 1, dtype=values.dtype)
    if indices.ndim == 2:
        indices = np.ravel_multi_index(tuple(indices.T), dims)
    flat[indices.reshape(-1)] = values.reshape(-1)
    return numpy_helper.from_array(flat.reshape(dims), sparse.values.name)


def tolerate(model: onnx.ModelProto) -> tuple[bool, list[str]]:
    """Make good, in place, what onnxruntime accepts in a model and the rest of the pipeline
    (onnx's checker, onnx-ir) does not. Returns whether anything changed, and a note for each
    thing done that onnxruntime warns about (empty when nothing was needed)."""
    notes: list[str] = []
    graph = model.graph
    changed = False
    # "ai.onnx" spelled out: the default domain.
    for item in (*model.opset_import, *iter_nodes(graph)):
        if item.domain == "ai.onnx":
            item.domain = ""
            changed = True
    # Trailing outputs named "" are outputs left out (onnx-ir's constant folding would make an
    # unnamed initializer of one, e.g. Dropout's mask: "Initializer must have a name").
    for node in iter_nodes(graph):
        if node.output and not node.output[-1]:
            kept = list(node.output)
            while kept and not kept[-1]:
                kept.pop()
            del node.output[:]
            node.output.extend(kept)
            changed = True
    imported = {canonical_domain(e.domain) for e in model.opset_import}
    used = {canonical_domain(n.domain) for n in iter_nodes(graph)}
    for domain in sorted(used & set(ORT_CONTRIB_DOMAINS) - imported):
        model.opset_import.append(onnx.helper.make_opsetid(domain, ORT_CONTRIB_DOMAINS[domain]))
        changed = True
    if graph.sparse_initializer:
        changed = True
        graph.initializer.extend(_dense(s) for s in graph.sparse_initializer)
        del graph.sparse_initializer[:]
    seen: dict[str, int] = {}
    for i, init in enumerate(graph.initializer):
        seen[init.name] = i
    if len(seen) < len(graph.initializer):
        dups = sorted({t.name for i, t in enumerate(graph.initializer) if seen[t.name] != i})
        kept = [onnx.TensorProto() for _ in seen]
        for new, i in zip(kept, sorted(seen.values())):
            new.CopyFrom(graph.initializer[i])
        del graph.initializer[:]
        graph.initializer.extend(kept)
        notes.append(f"duplicate initializer(s) {dups}: the last one of each is used")
    input_names = {v.name for v in graph.input}
    ir_version = model.ir_version
    if model.ir_version < 4 and any(t.name not in input_names for t in graph.initializer):
        model.ir_version = 4  # IR 4 lets initializers be constants that are not inputs
    elif model.ir_version < 3:
        model.ir_version = 3  # an opset_import needs IR 3
    if model.ir_version != ir_version:
        notes.append(f"IR version {ir_version} read as {model.ir_version}")
    if _topological(graph):
        notes.append("nodes not topologically sorted (sorted)")
    untyped = [v for v in graph.output if v.type.WhichOneof("value") is None]
    if untyped:
        inferred = _inferred_outputs(model, strict=False)
        for value in untyped:
            if value.name in inferred:
                value.type.CopyFrom(inferred[value.name].type)
        notes.append(f"graph output(s) {[v.name for v in untyped]} without a type (inferred)")
    return changed or bool(notes), notes


def _light_copy(model: onnx.ModelProto, keep_elements: int = 4096) -> onnx.ModelProto:
    """`model` without its large initializers' data (they become graph inputs of the same type
    and shape), for shape inference: small ones (shapes, axes) keep their values."""
    light = onnx.ModelProto()
    for name in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        setattr(light, name, getattr(model, name))
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = model.graph
    lg = light.graph
    lg.name = g.name or "graph"
    lg.node.extend(g.node)
    lg.input.extend(g.input)
    lg.output.extend(g.output)
    lg.value_info.extend(g.value_info)
    inputs = {v.name for v in g.input}
    for init in g.initializer:
        if int(np.prod(init.dims)) <= keep_elements:
            lg.initializer.append(init)
        elif init.name not in inputs:
            lg.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    if light.ir_version < 4:
        light.ir_version = 4
    return light


def _inferred_outputs(model: onnx.ModelProto, strict: bool) -> dict[str, onnx.ValueInfoProto]:
    inferred = onnx.shape_inference.infer_shapes(_light_copy(model), check_type=strict, strict_mode=strict)
    return {v.name: v for v in inferred.graph.output if v.type.WhichOneof("value") is not None}


#: Strict shape inference messages that mean a type contradiction (onnxruntime refuses these;
#: a contradicting *shape* it merges leniently with a warning, so those pass).
_TYPE_ERRORS = ("Inferred elem type differs", "has inconsistent type", "bound to different types",
                "type mismatch", "Type mismatch")


def _check_types(model: onnx.ModelProto, what: str) -> None:
    """Refuse a declared type that contradicts the inferred one (as onnxruntime does at load)."""
    try:
        onnx.shape_inference.infer_shapes(_light_copy(model), check_type=True, strict_mode=True)
    except Exception as exc:  # onnx raises InferenceError (a RuntimeError) or ValidationError
        text = str(exc)
        if any(marker in text for marker in _TYPE_ERRORS):
            lines = [ln.strip() for ln in text.splitlines() if any(m in ln for m in _TYPE_ERRORS)]
            detail = (lines[0] if lines else _first_line(exc)).replace("[ShapeInferenceError] Inference error(s): ", "")
            raise InvalidGraph(f"{what}: type error: {detail}") from None


def _check_initializer_inputs(model: onnx.ModelProto, what: str) -> None:
    """Refuse a graph input whose declared shape contradicts its initializer's (its default
    value): another rank, or a fixed dim that differs, as onnxruntime refuses it at load."""
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    for value in model.graph.input:
        tt = value.type.tensor_type
        if value.name not in inits or not value.type.HasField("tensor_type") or not tt.HasField("shape"):
            continue
        declared = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        dims = inits[value.name]
        if len(declared) != len(dims) or any(d is not None and d != n for d, n in zip(declared, dims)):
            shown = ["?" if d is None else d for d in declared]
            raise InvalidGraph(f"{what}: type error: the shape of initializer {value.name!r} {dims} does not match "
                               f"its graph input's declared shape {shown}")


def _check_node_names(model: onnx.ModelProto, what: str) -> None:
    """Refuse two nodes of one graph with the same (non-empty) name, as onnxruntime does."""
    def walk(graph: onnx.GraphProto) -> None:
        seen: set[str] = set()
        for node in graph.node:
            if node.name and node.name in seen:
                raise InvalidGraph(f"{what}: two nodes named {node.name!r} in graph {graph.name!r} "
                                   "(onnxruntime refuses this too); give them unique names")
            seen.add(node.name)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        walk(g)

    walk(model.graph)


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name ("<OpType>_<n>") so errors and reports can name it."""
    taken = {n.name for n in iter_nodes(model.graph) if n.name}
    counter = 0
    for node in iter_nodes(model.graph):
        if node.name:
            continue
        while True:
            candidate = f"{node.op_type}_{counter}"
            counter += 1
            if candidate not in taken:
                break
        node.name = candidate
        taken.add(candidate)


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if canonical_domain(entry.domain) == "":
            return int(entry.version)
    return 1


def _opsets(model: onnx.ModelProto) -> dict[str, int]:
    return {canonical_domain(e.domain): int(e.version) for e in model.opset_import}


def iter_nodes(graph: onnx.GraphProto):
    """Every node of `graph` and of its subgraphs (If/Loop/Scan bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from iter_nodes(g)


@dataclass(frozen=True)
class Unsupported:
    op_type: str
    domain: str
    opset: int
    nodes: tuple[str, ...]

    def __str__(self) -> str:
        dom = self.domain or "ai.onnx"
        names = ", ".join(self.nodes[:5]) + (f", ... ({len(self.nodes)} nodes)" if len(self.nodes) > 5 else "")
        return f"{dom}::{self.op_type} (opset {self.opset}) at nodes [{names}]"


def unsupported_nodes(model: onnx.ModelProto, ops: OpRegistry) -> list[Unsupported]:
    """Every (op type, domain) with no handler at the model's opset, with its node names."""
    opsets = _opsets(model)
    missing: dict[tuple[str, str, int], list[str]] = defaultdict(list)
    for i, node in enumerate(iter_nodes(model.graph)):
        domain = canonical_domain(node.domain)
        version = opsets.get(domain, 1)
        if ops.resolve(domain, node.op_type, version) is None:
            missing[(node.op_type, domain, version)].append(node.name or f"#{i}")
    return [Unsupported(op, dom, ver, tuple(names)) for (op, dom, ver), names in sorted(missing.items())]


def check_supported(model: onnx.ModelProto, ops: OpRegistry, what: str = "model") -> None:
    """Raise one `NotImplemented` naming every unsupported op, or return."""
    missing = unsupported_nodes(model, ops)
    if missing:
        raise NotImplemented(
            f"{what} uses {len(missing)} unsupported op(s): " + "; ".join(str(m) for m in missing)
        )


def convert_opset(model: onnx.ModelProto, ops: OpRegistry, what: str = "model") -> onnx.ModelProto:
    """`model` unchanged when every node has a handler at its opset; else converted to
    `PREFERRED_OPSET` (or newer, never older) with onnx's version converter, if that makes every
    standard node supported. Raises `NotImplemented` listing what stays unsupported."""
    missing = unsupported_nodes(model, ops)
    if not missing:
        return model
    original = missing
    opset = default_opset(model)
    standard_missing = [m for m in missing if m.domain == ""]
    if standard_missing and opset < PREFERRED_OPSET:
        try:
            converted = onnx.version_converter.convert_version(model, PREFERRED_OPSET)
        except Exception as exc:  # the converter raises RuntimeError / ConvertError
            converted = None
            note = f" (onnx's version converter could not bring it to opset {PREFERRED_OPSET}: " \
                   f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__})"
        else:
            if not unsupported_nodes(converted, ops):
                return converted
            note = f" (also after conversion to opset {PREFERRED_OPSET})"
        missing = original
    else:
        note = ""
    raise NotImplemented(
        f"{what} uses {len(missing)} unsupported op(s){note}: " + "; ".join(str(m) for m in missing)
    )
