"""The ordered list of graph passes a session runs (see the package docstring).

Each pass is ``fn(model: onnx_ir.Model, state: PassState) -> None`` working in place. The
list is explicit (`PASSES`); `run_passes` runs it and returns the rewritten ``ModelProto``
plus the `FusionReport`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import onnx
import onnx_ir as ir
import onnx_ir.passes.common as ir_common

from tritonnx.errors import InvalidGraph
from tritonnx.runtime.passes import FusionReport, RuleRegistry, apply_fusion


@dataclass
class PassState:
    """What the passes share: the rules, switches, the context, and what they found."""

    rules: RuleRegistry
    ctx: object = None
    optimize: bool = True  # False: graph_optimization_level=ORT_DISABLE_ALL
    fusion: bool = True
    report: FusionReport | None = None
    log: list[str] = field(default_factory=list)


def _infer_shapes(model: ir.Model, state: PassState) -> None:
    """onnx shape inference on the whole model (values gain types and shapes)."""
    ir_common.ShapeInferencePass(strict_mode=False)(model)


def _fold_constants(model: ir.Model, state: PassState) -> None:
    """onnxscript's constant folder: constant subgraphs become initializers."""
    if not state.optimize:
        return
    import onnxscript.optimizer

    result = onnxscript.optimizer.fold_constants(model)
    state.log.append(f"fold_constants: modified={bool(getattr(result, 'modified', False))}")


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

    count = _fuse_batchnorm.rules.apply_to_model(model)
    state.log.append(f"fold_batchnorm: {count} folded")


def _fusion(model: ir.Model, state: PassState) -> None:
    """The fusion rules by priority (`apply_fusion`), then the candidate scan."""
    state.report = apply_fusion(model, state.rules, ctx=state.ctx,
                                enabled=state.optimize and state.fusion)


def _check(model: ir.Model, state: PassState) -> None:
    """Shape inference again; the rewritten model must pass ``onnx.checker``."""
    _infer_shapes(model, state)
    proto = ir.serde.serialize_model(model)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise InvalidGraph(f"the rewritten model is not valid ONNX (a pass or rule is at fault): "
                           f"{str(exc).strip().splitlines()[0]}") from None


#: The passes, in order.
PASSES: tuple[tuple[str, Callable[[ir.Model, PassState], None]], ...] = (
    ("shape_inference", _infer_shapes),
    ("fold_constants", _fold_constants),
    ("remove_dead", _remove_dead),
    ("fold_batchnorm", _fold_batchnorm),
    ("fusion", _fusion),
    ("check", _check),
)


def run_passes(model: onnx.ModelProto, state: PassState) -> onnx.ModelProto:
    """Run `PASSES` on a copy of `model`; return the rewritten proto (report in `state`)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    ir_model = ir.serde.deserialize_model(copy)
    for _name, fn in PASSES:
        fn(ir_model, state)
    return ir.serde.serialize_model(ir_model)
