"""The ordered list of graph passes a session runs (see the package docstring).

Each pass is ``fn(model: onnx_ir.Model, state: PassState) -> None`` working in place. The
list is explicit (`PASSES`); `run_passes` runs it and returns the rewritten ``ModelProto``
plus the `FusionReport`.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import onnx
import onnx_ir as ir
import onnx_ir.passes.common as ir_common

from tritonnx.errors import InvalidGraph
from tritonnx.runtime.passes.framework import APPLY_LOCK, FusionReport, RuleRegistry, apply_fusion, recording
from tritonnx.runtime.registry import is_standard_domain


@dataclass
class PassState:
    """What the passes share: the rules, switches, the context, and what they found."""

    rules: RuleRegistry
    ctx: object = None
    optimize: bool = True  # False: graph_optimization_level=ORT_DISABLE_ALL
    fusion: bool = True
    report: FusionReport | None = None
    log: list[str] = field(default_factory=list)
    #: the result as `weightless_proto` gave it to the ``check`` pass (what the executor lowers)
    checked: onnx.ModelProto | None = None
    #: graph input/output name -> its type, for the types onnx-ir cannot hold (maps); put back
    #: into the checked proto
    map_types: dict = field(default_factory=dict)


def _infer_shapes(model: ir.Model, state: PassState) -> None:
    """onnx shape inference on the whole model (values gain types and shapes). A model with
    map values (ai.onnx.ml's ZipMap...) keeps the types it has: onnx-ir cannot read maps back."""
    try:
        ir_common.ShapeInferencePass(strict_mode=False)(model)
    except ir.serde.SerdeError as exc:
        cause = exc
        while cause is not None and not isinstance(cause, NotImplementedError):
            cause = cause.__cause__
        if cause is None or "Map types" not in str(cause):
            raise


#: Largest tensor (elements) constant folding may create or read: an inference session wants
#: every weight computed once (Caffe2-era models build theirs with ConstantOfShape), not per run.
FOLD_SIZE_LIMIT = 1 << 26


_PROTECTED_DOMAIN = "tritonnx.keep"


def _should_fold(node: ir.Node) -> bool | None:
    # onnxscript keeps ConstantOfShape by default (to keep saved models small); a session
    # folds it when its shape is constant, so weights built with it become initializers.
    if node.op_type == "ConstantOfShape" and is_standard_domain(node.domain):
        return True
    return None


def _fold_constants(model: ir.Model, state: PassState) -> None:
    """onnxscript's constant folder: constant subgraphs become initializers."""
    if not state.optimize:
        return
    import onnxscript.optimizer

    # onnxscript's partial evaluator turns CastLike into Cast and loses `saturate`: such nodes
    # sit in a private domain while the folder runs (it skips domains the model does not import).
    # SplitToSequence too: onnxscript 0.7's folder crashes on one whose `split` is a non-constant scalar.
    protected = [n for n in ir.traversal.RecursiveGraphIterator(model.graph)
                 if is_standard_domain(n.domain) and (n.op_type == "SplitToSequence" or
                                                     n.op_type == "CastLike" and "saturate" in n.attributes)]
    for node in protected:
        node.domain = _PROTECTED_DOMAIN
    try:
        result = onnxscript.optimizer.fold_constants(model, input_size_limit=FOLD_SIZE_LIMIT,
                                                     output_size_limit=FOLD_SIZE_LIMIT, should_fold=_should_fold)
    finally:
        for node in protected:
            node.domain = ""
    state.log.append(f"fold_constants: modified={bool(getattr(result, 'modified', False))}")
    # Constant nodes become initializers: uploaded once, and seen as weights by later rules.
    ir_common.LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(model)


def _remove_dead(model: ir.Model, state: PassState) -> None:
    """Dead nodes, unused functions and unused opset imports removed."""
    if not state.optimize:
        return
    common = ir_common
    ir.passes.PassManager([common.RemoveUnusedNodesPass(), common.RemoveUnusedFunctionsPass(),
                           common.RemoveUnusedOpsetsPass()])(model)


def _fold_batchnorm(model: ir.Model, state: PassState) -> None:
    """BatchNormalization folded into the preceding Conv / ConvTranspose / Gemm (onnxscript's
    rules; they decline weights that are graph inputs or shared with other nodes)."""
    if not state.optimize:
        return
    from onnxscript.rewriter.rules.common import _fuse_batchnorm

    def keep_name(delta):  # the folded Conv keeps the name of the Conv it replaces
        anchor = next((n for n in delta.match.nodes if n.op_type != "BatchNormalization"), None)
        if anchor is not None and len(delta.new_nodes) == 1:
            delta.new_nodes[0].name = anchor.name

    with APPLY_LOCK, contextlib.ExitStack() as stack:
        for rule in _fuse_batchnorm.rules:
            stack.enter_context(recording(rule, keep_name))
        count = _fuse_batchnorm.rules.apply_to_model(model)
    state.log.append(f"fold_batchnorm: {count} folded")


def _fusion(model: ir.Model, state: PassState) -> None:
    """The fusion rules by priority (`apply_fusion`), then the candidate scan. onnxruntime's
    ``com.microsoft::FusedConv`` is split back into Conv -> activation first, so the Conv rules
    see it."""
    if state.optimize and state.fusion:
        from tritonnx.runtime.passes.fuse_conv import split_ms_fused_conv

        split = split_ms_fused_conv(model)
        if split:
            state.log.append(f"split_ms_fused_conv: {split} com.microsoft::FusedConv split")
    state.report = apply_fusion(model, state.rules, ctx=state.ctx,
                                enabled=state.optimize and state.fusion)


def _check(model: ir.Model, state: PassState) -> None:
    """The rewritten model must pass ``onnx.checker`` (checked without its weights' bytes), less
    the faults onnxruntime accepts in a loaded model (`loader.check_like_onnxruntime`)."""
    from tritonnx.runtime.loader import check_like_onnxruntime

    proto = weightless_proto(model)
    for value in (*proto.graph.input, *proto.graph.output):
        if value.name in state.map_types and not value.HasField("type"):
            value.type.CopyFrom(state.map_types[value.name])
    try:
        check_like_onnxruntime(proto)
    except onnx.checker.ValidationError as exc:
        raise InvalidGraph(f"the rewritten model is not valid ONNX (a pass or rule is at fault): "
                           f"{str(exc).strip().splitlines()[0]}") from None
    state.checked = proto


def weightless_proto(model: ir.Model) -> onnx.ModelProto:
    """`model` as a ``ModelProto`` whose main-graph initializers are empty placeholders.

    Serializing gigabytes of weights only to check or lower the graph is slow; the checker and
    the executor need the nodes, names and attributes. The weights: `initializer_arrays`.
    """
    values = list(model.graph.initializers.values())
    originals = [v.const_value for v in values]
    placeholder = ir.Tensor(np.zeros(0, dtype=np.uint8))
    try:
        for v in values:
            v.const_value = placeholder
        return pad_loop_inputs(ir.serde.serialize_model(model))
    finally:
        for v, original in zip(values, originals):
            v.const_value = original


def pad_loop_inputs(proto: onnx.ModelProto) -> onnx.ModelProto:
    """`proto` with every Loop's two leading inputs present (in place): onnx-ir drops trailing
    absent inputs when serializing, and ``Loop(M, "")`` without loop-carried values would come
    out with one input, which onnx.checker refuses."""
    from tritonnx.runtime.loader import iter_nodes

    for node in iter_nodes(proto.graph):
        if node.op_type == "Loop" and is_standard_domain(node.domain) and len(node.input) < 2:
            node.input.extend([""] * (2 - len(node.input)))
    return proto


def initializer_arrays(model: ir.Model) -> dict[str, np.ndarray]:
    """name -> numpy array of every main-graph initializer (no copy where onnx-ir has one)."""
    return {name: v.const_value.numpy() for name, v in model.graph.initializers.items()
            if v.const_value is not None}


#: The passes, in order.
PASSES: tuple[tuple[str, Callable[[ir.Model, PassState], None]], ...] = (
    ("shape_inference", _infer_shapes),
    ("fold_constants", _fold_constants),
    ("remove_dead", _remove_dead),
    ("fold_batchnorm", _fold_batchnorm),
    ("fusion", _fusion),
    ("check", _check),
)


def _has_map(t: onnx.TypeProto) -> bool:
    kind = t.WhichOneof("value")
    if kind == "map_type":
        return True
    return kind in ("sequence_type", "optional_type") and _has_map(getattr(t, kind).elem_type)


def _drop_map_types(graph: onnx.GraphProto, state: PassState) -> None:
    """Clear the types that hold a map (ai.onnx.ml's ZipMap, DictVectorizer...), which onnx-ir
    cannot read; the graph inputs' and outputs' are kept in `state` for the ``check`` pass."""
    for value in (*graph.input, *graph.output):
        if _has_map(value.type):
            state.map_types[value.name] = onnx.TypeProto()
            state.map_types[value.name].CopyFrom(value.type)
    for value in (*graph.input, *graph.output, *graph.value_info):
        if _has_map(value.type):
            value.ClearField("type")


def run_passes(model: onnx.ModelProto, state: PassState) -> ir.Model:
    """Run `PASSES` on a copy of `model`; return the rewritten onnx-ir model (report in
    `state`). ``ir.serde.serialize_model`` gives its proto (`weightless_proto` without weights)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    _drop_map_types(copy.graph, state)
    ir_model = ir.serde.deserialize_model(copy)
    for _name, fn in PASSES:
        fn(ir_model, state)
    return ir_model
