"""Feeds for any ONNX file: shapes in trtexec's syntax, random values of the right dtype and range.

    shapes = parse_shapes("input:8x3x224x224,tokens:8x32")
    feeds, sources = random_feeds(model, shapes=shapes, batch=8, seed=0)

- Shapes: an input named in `shapes` takes that shape (it must agree with the file's fixed
  dimensions); any other input takes its declared shape, its symbolic dimensions from `dims`
  (by name), else from the inputs that `shapes` or real feeds fix (a dimension name shared by
  inputs, such as ``batch``, takes one value: ``--shapes tokens:8x32`` makes every ``batch``
  dimension 8), else its first dimension `batch`. A symbolic dimension nothing gives is an
  error naming the input and the ``--shapes`` text that would fix it.
- Values: floats from a standard normal; booleans fair coins; integers in ``[0, high)``, where
  `high` comes from the model when it tells: an embedding table (a Gather whose data is an
  initializer or a Constant, indexed by the input, through Cast/Reshape/Unsqueeze/... on the
  way), or a metadata entry whose key ends in ``vocab_size``; else ``[0, 10)``. Each input's
  source says which (``random N(0,1)``, ``random ids 0..9999 (embedding 'emb' rows)``...).
- `load_feeds` reads real ones from an ``.npz`` archive (``np.savez(path, input=x, ...)``).

Needs onnx and numpy only (the runtime's dtype table for exotic element types).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tritonnx.errors import InvalidArgument

#: Ops a token id passes through unchanged in value on its way to an embedding's Gather.
VALUE_PRESERVING = {"Cast", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose", "Expand"}
#: Integer range for inputs whose use the model does not tell.
DEFAULT_INT_HIGH = 10

_SHAPE_ITEM = re.compile(r"^(?P<name>.+):(?P<dims>\d+(?:x\d+)*)?$")


def parse_shapes(text: str | None, flag: str = "--shapes") -> dict[str, list[int]]:
    """trtexec's shape syntax: ``name:8x3x224x224,tokens:8x32`` -> ``{name: [8, 3, 224, 224], ...}``.

    A scalar input is ``name:`` (nothing after the colon). Names may contain ``:``; the last
    colon separates the dimensions.
    """
    shapes: dict[str, list[int]] = {}
    for item in (x.strip() for x in (text or "").split(",")):
        if not item:
            continue
        m = _SHAPE_ITEM.match(item)
        if not m:
            raise InvalidArgument(f"{flag} {item!r}: expected NAME:DxDx... (e.g. input:8x3x224x224)")
        dims = m.group("dims")
        shapes[m.group("name")] = [int(d) for d in dims.split("x")] if dims else []
    return shapes


@dataclass(frozen=True)
class InputSpec:
    """A graph input that is not an initializer: name, ONNX element type, declared dims."""

    name: str
    elem_type: int
    shape: tuple  # ints (fixed), strings (symbolic) or None (unknown)


def input_specs(model) -> list[InputSpec]:
    """The model's feedable inputs (graph inputs minus initializers), in order."""
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if not vi.type.HasField("tensor_type"):
            raise InvalidArgument(f"input {vi.name!r} is not a tensor ({vi.type.WhichOneof('value')}); "
                                  "give it with real feeds")
        dims = None
        if t.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim)
        specs.append(InputSpec(vi.name, t.elem_type, dims))
    return specs


def index_ranges(model) -> dict[str, tuple[int, str]]:
    """Integer inputs whose range the model tells: name -> (exclusive upper bound, why)."""
    import onnx

    graph = model.graph
    tables = {i.name: list(i.dims) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value":
                    tables[node.output[0]] = list(attr.t.dims)
    consumers: dict[str, list] = {}
    for node in graph.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    ranges: dict[str, tuple[int, str]] = {}
    for spec in input_specs(model):
        if not _is_int(spec.elem_type):
            continue
        best = None
        frontier, seen = [spec.name], set()
        while frontier:
            value = frontier.pop()
            if value in seen:
                continue
            seen.add(value)
            for node, pos in consumers.get(value, []):
                if node.op_type in VALUE_PRESERVING and pos == 0:
                    frontier.extend(node.output)
                elif node.op_type == "Gather" and pos == 1 and node.input[0] in tables:
                    axis = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)
                    dims = tables[node.input[0]]
                    if dims and -len(dims) <= axis < len(dims) and dims[axis] > 0:
                        high = dims[axis]
                        if best is None or high < best[0]:
                            best = (high, f"embedding {node.input[0]!r}: {high} rows")
        if best is not None:
            ranges[spec.name] = best
    vocab = [p for p in model.metadata_props if p.key.lower().endswith("vocab_size") and p.value.isdigit()]
    if vocab:
        high = int(vocab[0].value)
        for spec in input_specs(model):
            if _is_int(spec.elem_type) and spec.name not in ranges and high > 0:
                ranges[spec.name] = (high, f"metadata {vocab[0].key}={high}")
    return ranges


def _is_int(elem_type: int) -> bool:
    from onnx import TensorProto

    return elem_type in (TensorProto.INT8, TensorProto.INT16, TensorProto.INT32, TensorProto.INT64,
                         TensorProto.UINT8, TensorProto.UINT16, TensorProto.UINT32, TensorProto.UINT64)


def resolve_shape(spec: InputSpec, *, shapes: dict[str, list[int]] | None = None,
                  dims: dict[str, int] | None = None, batch: int | None = None) -> list[int]:
    """The concrete shape of one input (see the module's rules); InvalidArgument naming what is missing."""
    shapes, dims = shapes or {}, dims or {}
    declared = spec.shape
    if spec.name in shapes:
        given = shapes[spec.name]
        if declared is not None:
            if len(given) != len(declared):
                raise InvalidArgument(f"--shapes {spec.name}: rank {len(given)} given, the model's input "
                                      f"has rank {len(declared)} ({_dims_text(declared)})")
            for i, (g, d) in enumerate(zip(given, declared)):
                if isinstance(d, int) and d > 0 and g != d:
                    raise InvalidArgument(f"--shapes {spec.name}: dimension {i} is fixed at {d} in the model, "
                                          f"got {g} ({_dims_text(declared)})")
        return list(given)
    if declared is None:
        raise InvalidArgument(f"input {spec.name!r} has no declared shape: give it with --shapes {spec.name}:DxD...")
    shape, missing = [], []
    for i, d in enumerate(declared):
        if isinstance(d, int) and d > 0:
            shape.append(d)
        elif isinstance(d, str) and d in dims:
            shape.append(dims[d])
        elif i == 0 and batch is not None:
            shape.append(batch)
        else:
            missing.append(d or f"dim {i}")
            shape.append(None)
    if missing:
        example = "x".join(str(s if s is not None else "N") for s in shape)
        raise InvalidArgument(f"input {spec.name!r} ({_dims_text(declared)}) has symbolic dimension(s) "
                              f"{', '.join(map(str, missing))}: give its shape, e.g. --shapes {spec.name}:{example}")
    return shape


def bound_dims(specs: list[InputSpec], shapes: dict[str, list[int]] | None = None, given: dict | None = None,
               dims: dict[str, int] | None = None) -> dict[str, int]:
    """Values of symbolic dimensions: `dims` as given, then the names that the inputs fixed by
    `shapes` (or by real feeds in `given`) take, first one wins."""
    bound = dict(dims or {})
    for spec in specs:
        if shapes and spec.name in shapes:
            fixed = shapes[spec.name]
        elif given and spec.name in given and getattr(given[spec.name], "shape", None) is not None:
            fixed = list(given[spec.name].shape)
        else:
            continue
        if spec.shape is None or len(spec.shape) != len(fixed):
            continue
        for d, value in zip(spec.shape, fixed):
            if isinstance(d, str) and d not in bound:
                bound[d] = int(value)
    return bound


def _dims_text(declared) -> str:
    return "x".join("?" if d is None else str(d) for d in declared)


def random_array(spec: InputSpec, shape: list[int], rng: np.random.Generator, high: int | None = None):
    """Random values for one input: a numpy array (or a torch tensor for types numpy lacks)."""
    from onnx import TensorProto, helper

    if spec.elem_type == TensorProto.BOOL:
        return rng.random(shape) < 0.5
    if _is_int(spec.elem_type):
        np_type = helper.tensor_dtype_to_np_dtype(spec.elem_type)
        top = min(high or DEFAULT_INT_HIGH, int(np.iinfo(np_type).max) + 1)
        return rng.integers(0, top, size=shape).astype(np_type)
    if spec.elem_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
        return rng.standard_normal(shape).astype(helper.tensor_dtype_to_np_dtype(spec.elem_type))
    from tritonnx.runtime import dtypes

    if spec.elem_type not in dtypes.ONNX_TO_TORCH:
        name = TensorProto.DataType.Name(spec.elem_type)
        raise InvalidArgument(f"input {spec.name!r}: no random values for type {name}; give real feeds (--feeds)")
    x = dtypes.from_numpy(rng.standard_normal(shape).astype(np.float32))
    return dtypes.to_numpy(x.to(dtypes.torch_dtype(spec.elem_type)))


def random_feeds(model, *, shapes: dict[str, list[int]] | None = None, dims: dict[str, int] | None = None,
                 batch: int | None = None, seed: int = 0, given: dict | None = None):
    """Feeds for every input of `model` (an ``onnx.ModelProto``, external data not needed).

    Args:
        shapes: explicit shapes by input name (`parse_shapes`).
        dims: values of symbolic dimensions by name.
        batch: the first dimension of inputs whose first dimension is symbolic.
        seed: seed of the random values.
        given: real values by input name (kept as they are).

    Returns:
        (feeds, sources): ``{name: array}`` in the model's input order, and ``{name: text}``
        saying where each came from.
    """
    specs = input_specs(model)
    names = {s.name for s in specs}
    for name in shapes or {}:
        if name not in names:
            raise InvalidArgument(f"--shapes {name}: the model has no input {name!r}; its inputs: "
                                  f"{', '.join(sorted(names)) or 'none'}")
    dims = bound_dims(specs, shapes, given, dims)
    ranges = index_ranges(model)
    rng = np.random.default_rng(seed)
    feeds, sources = {}, {}
    for spec in specs:
        if given and spec.name in given:
            feeds[spec.name], sources[spec.name] = given[spec.name], "file"
            continue
        shape = resolve_shape(spec, shapes=shapes, dims=dims, batch=batch)
        high, why = ranges.get(spec.name, (None, None))
        feeds[spec.name] = random_array(spec, shape, rng, high)
        if _is_int(spec.elem_type):
            top = high or DEFAULT_INT_HIGH
            sources[spec.name] = f"random ids 0..{top - 1} ({why})" if why else f"random ints 0..{top - 1}"
        elif spec.elem_type == 9:
            sources[spec.name] = "random bools"
        else:
            sources[spec.name] = "random N(0,1)"
    return feeds, sources


def load_npy(path: str | Path, what: str) -> np.ndarray:
    """One array from a ``.npy`` file; InvalidArgument (one line) for anything else."""
    p = Path(path)
    head = _head(p, what, "a .npy array")
    if head.startswith(b"PK"):
        with np.load(p) as archive:
            keys = list(archive.keys())
        raise InvalidArgument(f"{what}: a .npz archive (arrays {keys}); give one .npy file per input "
                              "(np.save), or the archive with --feeds")
    if not head.startswith(b"\x93NUMPY"):
        raise InvalidArgument(f"{what}: not a .npy file (no NumPy header; write it with np.save)")
    try:
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{what}: cannot read a .npy array: {exc}") from None


def load_feeds(path: str | Path, flag: str = "--feeds") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive (``np.savez``) by name; InvalidArgument for anything else."""
    p = Path(path)
    head = _head(p, f"{flag} {p}", "an .npz archive")
    if not head.startswith(b"PK"):
        what = "a .npy file (one array): give NAME=FILE with --input" if head.startswith(b"\x93NUMPY") else \
            "not a .npz archive (write it with np.savez(path, name=array, ...))"
        raise InvalidArgument(f"{flag} {p}: {what}")
    try:
        with np.load(p, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.keys()}
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{flag} {p}: cannot read the archive: {exc}") from None


def _head(p: Path, what: str, kind: str) -> bytes:
    try:
        with open(p, "rb") as f:
            return f.read(8)
    except FileNotFoundError:
        from tritonnx.errors import NoSuchFile

        raise NoSuchFile(f"{what}: cannot read {kind}: no such file") from None
    except OSError as exc:
        raise InvalidArgument(f"{what}: cannot read: {exc.strerror or exc}") from None


def model_dtype(model) -> str:
    """A file's float dtype for its rows: its first float input's, else its first float weight's
    (fp32, fp16, bf16 or fp64); fp32 when it has neither."""
    from onnx import TensorProto

    names = {TensorProto.FLOAT: "fp32", TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16",
             TensorProto.DOUBLE: "fp64"}
    for spec in input_specs(model):
        if spec.elem_type in names:
            return names[spec.elem_type]
    for init in model.graph.initializer:
        if init.data_type in names:
            return names[init.data_type]
    return "fp32"


def fixed_batch(model, shapes: dict[str, list[int]], given: dict | None = None) -> int | None:
    """The batch a file's rows have whatever ``--batch`` says: the first dimension of its first
    input, when no input's first dimension is left symbolic (fixed in the file, by `shapes`, by
    real feeds in `given`, or by a dimension name those fix); None when ``--batch`` sets it."""
    specs = input_specs(model)
    bound = bound_dims(specs, shapes, given)
    first = None
    for spec in specs:
        if given and spec.name in given and getattr(given[spec.name], "shape", None) is not None:
            dims = list(given[spec.name].shape)
        else:
            dims = shapes.get(spec.name, spec.shape)
        if not dims:
            continue
        d0 = bound.get(dims[0], dims[0]) if isinstance(dims[0], str) else dims[0]
        if not (isinstance(d0, int) and d0 > 0):
            return None
        if first is None:
            first = d0
    return first if first is not None else 1
