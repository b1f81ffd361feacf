"""FLOPs and minimal bytes of an ONNX model at concrete input shapes, for roofline fractions.

The graph's inputs are pinned to the shapes of the actual feeds, onnx shape inference (with
data propagation, so Shape->Reshape chains resolve) gives every value's shape, and each node
is counted from its shapes:

- Matrix products count 2 FLOPs per multiply-add: Conv ``2·N·Cout·Hout·Wout·(Cin/group)·kH·kW``,
  ConvTranspose ``2·N·Cin·Hin·Win·(Cout/group)·kH·kW``, Gemm/MatMul ``2·M·N·K`` (times the
  broadcast batch), LSTM/GRU/RNN ``2·T·D·B·G·H·(I + H)`` with G = 4 / 3 / 1 gates and D
  directions, plus one FLOP per gate element for the cell update.
- Pooling: output elements × window; LRN: elements × size; Softmax/LogSoftmax: 5 per element;
  normalisations: 5 per element; element-wise ops and activations: 1 per output element.
- Data movement (Reshape, Transpose, Concat, Gather, Shape, ...) counts 0 FLOPs.

Minimal bytes are what any implementation must move at least once: every graph input, every
graph output and every initializer, each at its own element size (intermediates that a fused
kernel keeps on chip are not counted). Nodes whose shapes cannot be inferred are listed in
`GraphCost.uncounted` (their FLOPs are missing from the total, which is then a lower bound).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import onnx
from onnx import helper, shape_inference

#: Element-wise and activation ops: 1 FLOP per output element.
ELEMENTWISE = frozenset(
    """Add Sub Mul Div Pow Sqrt Exp Log Abs Neg Reciprocal Relu LeakyRelu PRelu Sigmoid Tanh
    HardSigmoid HardSwish Elu Selu Celu Gelu Erf Softplus Softsign Clip Max Min Sum Mean Where
    Equal Less Greater LessOrEqual GreaterOrEqual And Or Not Xor Floor Ceil Round Sign Sin Cos
    Mish ThresholdedRelu Dropout Cast""".split()
)
#: Normalisations: ~5 FLOPs per element (mean, variance, subtract, scale, shift).
NORMALIZATION = frozenset("BatchNormalization LayerNormalization InstanceNormalization GroupNormalization".split())
SOFTMAX = frozenset("Softmax LogSoftmax".split())
POOL = frozenset("MaxPool AveragePool LpPool".split())
GLOBAL_POOL = frozenset("GlobalAveragePool GlobalMaxPool GlobalLpPool".split())
REDUCE = frozenset("ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL2 ReduceL1 ReduceSumSquare".split())
#: Ops that only move or describe data: 0 FLOPs.
ZERO_FLOP = frozenset(
    """Reshape Flatten Transpose Concat Split Slice Squeeze Unsqueeze Gather GatherElements Shape
    Constant ConstantOfShape Identity Expand Range Pad Size Tile NonZero ScatterND Scatter
    ScatterElements OneHot Resize Upsample DepthToSpace SpaceToDepth ArgMax ArgMin TopK CumSum""".split()
)
RECURRENT_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


@dataclass
class GraphCost:
    """FLOPs and minimal bytes of one model at one set of input shapes."""

    flops: float = 0.0
    bytes: float = 0.0
    by_op: dict[str, float] = field(default_factory=dict)
    uncounted: list[str] = field(default_factory=list)

    def add(self, op_type: str, flops: float) -> None:
        self.flops += flops
        self.by_op[op_type] = self.by_op.get(op_type, 0.0) + flops


def _prod(xs: Sequence[int]) -> int:
    return int(math.prod(xs)) if xs else 1


def _elem_size(elem_type: int) -> int:
    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).itemsize


def _shape_of(vi: onnx.ValueInfoProto) -> list[int] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    dims = []
    for d in t.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(int(d.dim_value))
    return dims


def _pin_inputs(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    init_names = {i.name for i in pinned.graph.initializer}
    for vi in pinned.graph.input:
        if vi.name in init_names or vi.name not in input_shapes:
            continue
        shape = vi.type.tensor_type.shape
        shape.ClearField("dim")
        for n in input_shapes[vi.name]:
            shape.dim.add().dim_value = int(n)
    # Outputs' symbolic dims would conflict with the pinned ones: let inference fill them.
    for vi in pinned.graph.output:
        vi.type.tensor_type.ClearField("shape")
    del pinned.graph.value_info[:]
    return pinned


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def node_flops(node: onnx.NodeProto, shapes: Mapping[str, list[int]]) -> float | None:
    """FLOPs of one node given value name -> shape, or None when a needed shape is unknown."""
    op = node.op_type
    a = _attrs(node)

    def shp(name):
        return shapes.get(name) if name else None

    ins = [shp(n) for n in node.input]
    outs = [shp(n) for n in node.output]
    out0 = outs[0] if outs else None
    if op in ZERO_FLOP:
        return 0.0
    if op == "Conv":
        w, y = ins[1], out0
        if w is None or y is None:
            return None
        macs = _prod(y) * _prod(w[1:])  # each output: Cin/group * kernel
        bias = _prod(y) if len(node.input) > 2 and node.input[2] else 0
        return 2.0 * macs + bias
    if op == "ConvTranspose":
        x, w = ins[0], ins[1]
        if x is None or w is None:
            return None
        macs = _prod(x) * _prod(w[1:])  # each input: Cout/group * kernel
        bias = _prod(out0) if out0 is not None and len(node.input) > 2 and node.input[2] else 0
        return 2.0 * macs + bias
    if op == "Gemm":
        x, w, y = ins[0], ins[1], out0
        if x is None or y is None:
            return None
        k = x[0] if a.get("transA", 0) else x[1]
        extra = _prod(y) if len(node.input) > 2 and node.input[2] else 0
        return 2.0 * _prod(y) * k + extra
    if op == "MatMul":
        x, y = ins[0], out0
        if x is None or y is None:
            return None
        return 2.0 * _prod(y) * x[-1]
    if op in RECURRENT_GATES:
        x, w = ins[0], ins[1]
        if x is None or w is None:
            return None
        dirs, gh, inp = w
        hidden = gh // RECURRENT_GATES[op]
        t, b = (x[1], x[0]) if a.get("layout", 0) else (x[0], x[1])
        step = 2.0 * b * gh * (inp + hidden) + b * gh * 2
        return float(t * dirs * step)
    if op in POOL:
        if out0 is None:
            return None
        return float(_prod(out0) * _prod(a.get("kernel_shape", [1])))
    if op in GLOBAL_POOL or op in REDUCE:
        x = ins[0]
        return None if x is None else float(_prod(x))
    if op == "LRN":
        return None if out0 is None else float(_prod(out0) * (a.get("size", 1) + 3))
    if op in SOFTMAX:
        return None if out0 is None else 5.0 * _prod(out0)
    if op in NORMALIZATION:
        return None if out0 is None else 5.0 * _prod(out0)
    if op in ELEMENTWISE:
        return None if out0 is None else float(_prod(out0))
    if out0 is None:
        return None
    return float(_prod(out0))  # unknown op: one FLOP per output element


def count(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]]) -> GraphCost:
    """FLOPs and minimal bytes of `model` run on inputs of `input_shapes` (name -> shape).

    Args:
        model: an ONNX model (standard domain ops; custom-domain nodes count one FLOP per output).
        input_shapes: the concrete shape of every graph input that is not an initializer.
    Returns:
        GraphCost with `flops`, `bytes`, `by_op` and the `uncounted` node names.
    """
    pinned = _pin_inputs(model, input_shapes)
    try:
        inferred = shape_inference.infer_shapes(pinned, data_prop=True)
    except Exception:  # onnx raises InferenceError and friends; counting must not fail the bench
        inferred = pinned
    g = inferred.graph
    shapes: dict[str, list[int]] = {}
    types: dict[str, int] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        s = _shape_of(vi)
        if s is not None:
            shapes[vi.name] = s
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in g.initializer:
        shapes[init.name] = list(init.dims)
        types[init.name] = init.data_type
    for node in g.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(attr.t.dims)

    cost = GraphCost()
    for node in g.node:
        f = node_flops(node, shapes)
        if f is None:
            cost.uncounted.append(node.name or f"{node.op_type}->{node.output[0]}")
        else:
            cost.add(node.op_type, f)

    init_names = {i.name for i in g.initializer}
    nbytes = 0
    for init in g.initializer:
        nbytes += _prod(list(init.dims)) * _elem_size(init.data_type)
    for vi in g.input:
        if vi.name in init_names:
            continue
        shape = list(input_shapes.get(vi.name, shapes.get(vi.name, [])))
        nbytes += _prod(shape) * _elem_size(vi.type.tensor_type.elem_type)
    for vi in g.output:
        s = shapes.get(vi.name)
        if s is None:
            cost.uncounted.append(f"output {vi.name} (shape unknown)")
            continue
        nbytes += _prod(s) * _elem_size(types.get(vi.name, vi.type.tensor_type.elem_type))
    cost.bytes = float(nbytes)
    return cost


def count_file(path, input_shapes: Mapping[str, Sequence[int]]) -> GraphCost:
    """`count` on a model file (external data is not needed: only initializer dims are read)."""
    model = onnx.load(str(path), load_external_data=False)
    return count(model, input_shapes)


def initializer_bytes(model: onnx.ModelProto) -> int:
    """Bytes of all initializers (a model's weights)."""
    return sum(_prod(list(i.dims)) * _elem_size(i.data_type) for i in model.graph.initializer)
