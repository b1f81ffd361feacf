"""The compile stage: a loaded model and a session's settings -> an executor, the fusion report
and the rewritten model. `InferenceSession` (onnxruntime's API, `tritonnx.runtime.session`) calls
it once at creation, and once more, on first need, for the unoptimised executor of a run whose
feeds override an initializer.

    tools = toolchain(ctx)                                   # handlers, rules, plugins
    model = convert(model, tools, "model 'x.onnx'")          # opset conversion if it helps
    compiled = compile_model(model, tools, optimize=True)    # passes -> check -> executor

The stages: `toolchain` copies the built-in handlers and fusion rules and loads the plugins
into the copies (``ctx.plugins``); `convert` converts old opsets where that gives every node a
handler (`loader.convert_opset`); `compile_model` runs the passes (`passes.pipeline`), checks
that every node of the rewritten graph has a handler (one `NotImplemented` listing them all) and
lowers the weightless graph the check pass serialized, with the weights as arrays, to an
`Executor` (the model is not serialized a second time).
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx_ir as ir

from tritonnx.runtime import plugins
from tritonnx.runtime.context import ExecContext
from tritonnx.runtime.executor import Executor
from tritonnx.runtime.loader import check_supported, convert_opset
from tritonnx.runtime.ops import OPS
from tritonnx.runtime.passes import FusionReport, RuleRegistry, builtin_rules
from tritonnx.runtime.passes.pipeline import PassState, initializer_arrays, run_passes, weightless_proto
from tritonnx.runtime.registry import OpRegistry

__all__ = ["Compiled", "Toolchain", "compile_model", "convert", "toolchain"]


@dataclass(frozen=True)
class Toolchain:
    """What compiling a model needs besides the model: the session's own handlers and fusion
    rules (copies of the built-ins, plugins added) and its context."""

    ops: OpRegistry
    rules: RuleRegistry
    ctx: ExecContext
    #: the entry-point plugins loaded into `ops` and `rules`
    plugins: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compiled:
    """The result of `compile_model`."""

    executor: Executor
    #: every fused group and every declined candidate with its reason (None: fusion off)
    report: FusionReport | None
    #: the model after the passes (valid ONNX, custom domain ``tritonnx``)
    rewritten: ir.Model


def toolchain(ctx: ExecContext) -> Toolchain:
    """Copies of the built-in handlers and fusion rules, with the plugins loaded into them when
    ``ctx.plugins`` is on."""
    ops, rules = OPS.copy(), builtin_rules().copy()
    loaded = plugins.load_plugins(plugins.PluginRegistry(ops, rules)) if ctx.plugins else []
    return Toolchain(ops, rules, ctx, tuple(loaded))


def convert(model: onnx.ModelProto, tools: Toolchain, what: str = "model") -> onnx.ModelProto:
    """`model` at an opset whose ops all have handlers (converted only if that helps); raises one
    `NotImplemented` naming every unsupported node otherwise. `what` names the model in errors."""
    return convert_opset(model, tools.ops, what)


def without_initializer_inputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with the graph inputs that are initializers dropped from its input list (a copy;
    `model` itself when there are none), so the passes treat them as constants."""
    names = {t.name for t in model.graph.initializer}
    if not any(v.name in names for v in model.graph.input):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    kept = [v for v in copy.graph.input if v.name not in names]
    del copy.graph.input[:]
    copy.graph.input.extend(kept)
    copy.ir_version = max(copy.ir_version, 4)  # IR 4: initializers need not be inputs
    return copy


def compile_model(model: onnx.ModelProto, tools: Toolchain, *, optimize: bool = True, fusion: bool = True,
                  fixed_initializers: bool = True, what: str = "model") -> Compiled:
    """Rewrite `model` (a converted proto, left unchanged) and lower it to an executor.

    Args:
        model: the model, every op of which has a handler in ``tools.ops`` (`convert`).
        tools: the session's `Toolchain`.
        optimize: run the optimising passes (False: ``graph_optimization_level=ORT_DISABLE_ALL``).
        fusion: apply the fusion rules.
        fixed_initializers: initializers listed as graph inputs are constants for the passes (so
            they fold and fuse); False keeps them feedable (the executor of runs that override one).
        what: the model's name in errors.

    Returns:
        The `Compiled` executor, fusion report and rewritten model.
    """
    state = PassState(rules=tools.rules, ctx=tools.ctx, optimize=optimize, fusion=fusion)
    rewritten = run_passes(without_initializer_inputs(model) if fixed_initializers else model, state)
    graph_only = state.checked if state.checked is not None else weightless_proto(rewritten)
    check_supported(graph_only, tools.ops, f"{what} after rewriting")
    executor = Executor(graph_only, tools.ops, tools.ctx, initializer_arrays(rewritten))
    return Compiled(executor, state.report, rewritten)
