"""Loading and checking a model before anything runs.

`load_model` accepts a path, bytes or an ``onnx.ModelProto`` and returns a checked
``ModelProto`` with its external data read (only from inside the model's directory) and its
model-local functions inlined. `unsupported_nodes` / `check_supported` collect every node no
handler implements (op type, domain, opset, node names) and raise once. `convert_opset`
brings an old model up to `PREFERRED_OPSET` with onnx's version converter when its own opset
has no handler for some node.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx.inliner
import onnx.version_converter
from google.protobuf.message import DecodeError

from tritonnx.errors import InvalidGraph, InvalidProtobuf, NoSuchFile, NotImplemented
from tritonnx.runtime.registry import OpRegistry, canonical_domain

#: The opset old models are converted to when their own opset lacks a handler.
PREFERRED_OPSET = 18
#: The oldest default-domain opset accepted (old forms resolve to handlers or get converted).
MIN_OPSET = 1


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
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise NotImplemented(f"{what}: default-domain opset {opset}; tritonnx supports opsets "
                             f"{MIN_OPSET}..{onnx.defs.onnx_opset_version()}")
    if check:
        try:
            # The checker takes serialized bytes: those just read when they are the whole model
            # (serializing it again costs seconds for a large one, e.g. 3 s of VGG-16's 4.5 s).
            onnx.checker.check_model(data if data is not None and not external else model)
        except onnx.checker.ValidationError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InvalidGraph(f"{what}: invalid ONNX model: {first}") from None
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    name_nodes(model)
    return model


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
