"""The fusion-rule framework (its contract: the `tritonnx.runtime.passes` package docstring):
`FusionRule` and `RuleRegistry`, the built-in rules' registry, custom-op schemas, and
`apply_fusion` with its `FusionReport` of fused groups and declined candidates."""
from __future__ import annotations

import contextlib
import contextvars
import importlib
import pkgutil
import threading
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

from tritonnx.runtime.registry import CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION, is_standard_domain

if TYPE_CHECKING:  # pragma: no cover
    import onnx
    import onnx_ir as ir

    from tritonnx.runtime.context import ExecContext


@dataclass(frozen=True)
class FusionRule:
    """One fusion: onnxscript rewrite rules plus what the report needs.

    Attributes:
        name: short id, e.g. "conv_relu_pool"; appears in the report and in node metadata.
        priority: lower runs first (built-ins 100, 200, ...; plugins pick their own).
        candidates: standard-domain op types this rule fuses, e.g. ("Conv",) or
            ("LSTM", "GRU", "RNN"); each such node left unfused gets a decline reason.
        rules: onnxscript ``RewriteRule`` objects (e.g. ``MyRule().rule()``), applied in order.
        explain: ``explain(node: onnx_ir.Node) -> str | None``: why this candidate was not
            fused (None: no reason known).
        schemas: the ``onnx.defs.OpSchema`` of each custom op the rules emit.
    """

    name: str
    priority: int
    candidates: tuple[str, ...]
    rules: tuple = ()
    explain: Callable[["ir.Node"], str | None] | None = None
    schemas: tuple = ()

    def __post_init__(self) -> None:
        if not isinstance(self.priority, int):
            raise TypeError(f"FusionRule {self.name!r}: priority must be an int, got {self.priority!r}")
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "schemas", tuple(self.schemas))


@dataclass(frozen=True)
class FusedGroup:
    """One replacement made by a rule: `node` (a ``tritonnx`` node) replaced `replaced`."""

    rule: str
    node: str
    op_type: str
    replaced: tuple[str, ...]
    replaced_ops: tuple[str, ...]
    #: the subgraph it lives in, e.g. "in Loop 'loop0' body" ("" for the main graph)
    where: str = ""

    def __str__(self) -> str:
        chain = " -> ".join(self.replaced_ops)
        place = f" {self.where}" if self.where else ""
        return f"{self.node}: {chain} => tritonnx::{self.op_type} ({self.rule}; {', '.join(self.replaced)}){place}"


@dataclass(frozen=True)
class Declined:
    """A candidate node left unfused, with one reason per rule that could have fused it."""

    node: str
    op_type: str
    reasons: tuple[tuple[str, str], ...]
    #: the subgraph it lives in, e.g. "in Loop 'loop0' body" ("" for the main graph)
    where: str = ""

    @property
    def reason(self) -> str:
        return "; ".join(f"{rule}: {why}" for rule, why in self.reasons)

    def __str__(self) -> str:
        place = f" {self.where}" if self.where else ""
        return f"{self.node} ({self.op_type}){place}: {self.reason}"


@dataclass(frozen=True)
class FusionReport:
    """What fusion did: every candidate is in `fused` (through its group) or in `declined`."""

    enabled: bool
    fused: tuple[FusedGroup, ...] = ()
    declined: tuple[Declined, ...] = ()

    def __str__(self) -> str:
        lines = [f"fusion: {'on' if self.enabled else 'off'}; {len(self.fused)} fused group(s), "
                 f"{len(self.declined)} declined candidate(s)"]
        lines += [f"  fused    {g}" for g in self.fused]
        lines += [f"  declined {d}" for d in self.declined]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- registries

class RuleRegistry:
    """Fusion rules by name; `ordered()` gives them by (priority, name)."""

    def __init__(self, rules: Iterable[FusionRule] = ()) -> None:
        self._rules: dict[str, FusionRule] = {}
        for rule in rules:
            self.add(rule)

    def add(self, rule: FusionRule) -> FusionRule:
        if not isinstance(rule, FusionRule):
            raise TypeError(f"expected a FusionRule, got {type(rule).__name__}")
        self._rules[rule.name] = rule
        return rule

    def remove(self, name: str) -> None:
        self._rules.pop(name, None)

    def ordered(self) -> list[FusionRule]:
        return sorted(self._rules.values(), key=lambda r: (r.priority, r.name))

    def names(self) -> list[str]:
        return [r.name for r in self.ordered()]

    def copy(self) -> "RuleRegistry":
        return RuleRegistry(self._rules.values())

    def __iter__(self) -> Iterator[FusionRule]:
        return iter(self.ordered())

    def __len__(self) -> int:
        return len(self._rules)


#: The built-in rules; the modules of this package add theirs with `register_rule` at import.
RULES = RuleRegistry()


def register_rule(rule: FusionRule) -> FusionRule:
    """Add a built-in fusion rule (call at import of a ``runtime/passes/fuse_*.py`` module)."""
    return RULES.add(rule)


_loaded_lock = threading.Lock()
_loaded = False


#: The package whose modules hold the built-in rules.
PACKAGE = "tritonnx.runtime.passes"


def builtin_rules() -> RuleRegistry:
    """Import every module of `PACKAGE` once (they register their rules); return `RULES`."""
    global _loaded
    with _loaded_lock:
        if not _loaded:
            package = importlib.import_module(PACKAGE)
            for info in pkgutil.iter_modules(package.__path__):
                try:
                    importlib.import_module(f"{PACKAGE}.{info.name}")
                except Exception as exc:  # like a plugin: warn, and go on without its rules
                    warnings.warn(f"tritonnx: fusion-rule module {info.name} failed to import: "
                                  f"{type(exc).__name__}: {exc}; its rules are not applied",
                                  RuntimeWarning, stacklevel=2)
            _loaded = True
    return RULES


_schema_lock = threading.Lock()


def register_schema(schema: "onnx.defs.OpSchema") -> bool:
    """Register a custom-op schema with onnx once per process; False if it was already there."""
    import onnx.defs

    with _schema_lock:
        if onnx.defs.has(schema.name, schema.since_version, schema.domain):
            existing = onnx.defs.get_schema(schema.name, schema.since_version, schema.domain)
            if existing.since_version == schema.since_version:
                return False
        onnx.defs.register_schema(schema)
        return True


def custom_schema(
    op_type: str,
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
    attributes: Mapping[str, str] | None = None,
    types: Sequence[str] = ("tensor(float)", "tensor(float16)", "tensor(bfloat16)", "tensor(double)"),
    doc: str = "",
    domain: str = CUSTOM_DOMAIN,
    since: int = CUSTOM_DOMAIN_VERSION,
    infer: Callable | None = None,
) -> "onnx.defs.OpSchema":
    """A compact `onnx.defs.OpSchema` builder for custom ops.

    Args:
        inputs / outputs: names; a trailing ``?`` marks an optional one, ``*`` a variadic one.
            All share one type variable ``T`` allowed to be any of `types`.
        attributes: name -> kind: "int", "float", "string", "ints", "floats", "strings",
            "tensor"; all optional (the handler's keyword defaults apply).
        infer: optional ``fn(ctx: onnx.shape_inference.InferenceContext)`` passed to
            ``set_type_and_shape_inference_function``; without it, output 0.. take input 0's
            element type (shapes left unknown).
    """
    import onnx
    import onnx.defs

    OpSchema = onnx.defs.OpSchema
    kinds = {
        "int": OpSchema.AttrType.INT, "float": OpSchema.AttrType.FLOAT,
        "string": OpSchema.AttrType.STRING, "ints": OpSchema.AttrType.INTS,
        "floats": OpSchema.AttrType.FLOATS, "strings": OpSchema.AttrType.STRINGS,
        "tensor": OpSchema.AttrType.TENSOR,
    }

    def formal(spec: str):
        option = OpSchema.FormalParameterOption.Single
        name = spec
        if spec.endswith("?"):
            option, name = OpSchema.FormalParameterOption.Optional, spec[:-1]
        elif spec.endswith("*"):
            option, name = OpSchema.FormalParameterOption.Variadic, spec[:-1]
        return OpSchema.FormalParameter(name, "T", param_option=option)

    attrs = []
    for name, kind in (attributes or {}).items():
        if kind not in kinds:
            raise ValueError(f"custom_schema {op_type}: attribute {name!r} kind {kind!r}; expected one of {sorted(kinds)}")
        attrs.append(OpSchema.Attribute(name, kinds[kind], "", required=False))
    schema = OpSchema(
        op_type, domain, since, doc=doc or f"tritonnx fused op {op_type}",
        inputs=[formal(s) for s in inputs], outputs=[formal(s) for s in outputs],
        type_constraints=[("T", list(types), "element type")], attributes=attrs,
    )
    if infer is None:
        def infer(ctx):  # outputs take input 0's element type
            first = ctx.get_input_type(0)
            for i in range(ctx.get_num_outputs()):
                out = onnx.TypeProto()
                out.tensor_type.elem_type = first.tensor_type.elem_type
                ctx.set_output_type(i, out)
    schema.set_type_and_shape_inference_function(infer)
    return schema


# ----------------------------------------------------------------------------- apply

#: Held while rules are applied: they are shared objects, and `recording` patches them briefly.
APPLY_LOCK = threading.Lock()
_current_ctx: contextvars.ContextVar = contextvars.ContextVar("tritonnx_fusion_ctx", default=None)


def current_context() -> "ExecContext | None":
    """The session's `ExecContext` while `apply_fusion` runs (for a rule's check); else None."""
    return _current_ctx.get()


@contextlib.contextmanager
def recording(rewrite_rule, on_delta):
    """Temporarily wrap one onnxscript rule's ``try_rewrite`` to see each replacement: each
    ``delta`` it makes (outside a tracer's dry run) is passed to ``on_delta(delta)``. Hold
    `APPLY_LOCK` around it (the rule is shared)."""
    original = rewrite_rule.try_rewrite

    def try_rewrite(*args, **kwargs):
        delta = original(*args, **kwargs)
        if delta is not None and kwargs.get("tracer") is None:
            on_delta(delta)
        return delta

    rewrite_rule.try_rewrite = try_rewrite
    try:
        yield
    finally:
        del rewrite_rule.try_rewrite


def _all_nodes(graph) -> Iterator["ir.Node"]:
    import onnx_ir as ir

    yield from ir.traversal.RecursiveGraphIterator(graph)


def graph_locations(graph: "ir.Graph", where: str = "") -> dict[int, str]:
    """id(subgraph) -> where it lives, e.g. "in Loop 'loop0' body" or, nested,
    "in If 'pick' then_branch, in Loop 'loop0' body" (the main graph: "")."""
    import onnx_ir as ir

    places = {id(graph): where}
    for node in graph:
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                subs = [(attr.name, attr.value)]
            elif attr.type == ir.AttributeType.GRAPHS:
                subs = [(f"{attr.name}[{i}]", g) for i, g in enumerate(attr.value)]
            else:
                continue
            for name, sub in subs:
                here = f"in {node.op_type} {node.name!r} {name}" + (f", {where}" if where else "")
                places.update(graph_locations(sub, here))
    return places


def _where(node: "ir.Node", places: Mapping[int, str]) -> str:
    return places.get(id(node.graph), "") if node.graph is not None else ""


def apply_fusion(model: "ir.Model", rules: RuleRegistry, *, ctx: "ExecContext | None" = None,
                 enabled: bool = True) -> FusionReport:
    """Apply `rules` to `model` in place (by priority) and report fused groups and declines.

    Args:
        model: an onnx-ir model (after shape inference and constant folding).
        rules: the session's rules (built-ins plus plugins).
        ctx: the session's execution context, visible to checks via `current_context()`.
        enabled: False = apply nothing, report every candidate as declined.
    Returns:
        A `FusionReport`.
    """
    from onnxscript.rewriter import RewriteRuleSet

    ordered = rules.ordered()
    for rule in ordered:
        for schema in rule.schemas:
            register_schema(schema)

    groups: list[tuple[FusionRule, "ir.Node", list[tuple[str, str]]]] = []
    token = _current_ctx.set(ctx)
    try:
        with APPLY_LOCK:
            for rule in ordered if enabled else ():
                if not rule.rules:
                    continue
                nodes = list(_all_nodes(model.graph))
                if rule.candidates and not any(is_standard_domain(n.domain) and n.op_type in rule.candidates
                                               for n in nodes):
                    continue  # none of the ops it fuses is left: its patterns cannot match

                position = {id(n): i for i, n in enumerate(nodes)}

                def on_delta(delta, rule=rule, position=position):
                    matched = sorted(delta.match.nodes, key=lambda n: position.get(id(n), -1))
                    replaced = [(n.name or "", n.op_type) for n in matched]
                    for new in delta.new_nodes:
                        if not is_standard_domain(new.domain):
                            groups.append((rule, new, replaced))

                with contextlib.ExitStack() as stack:
                    for rw in rule.rules:
                        stack.enter_context(recording(rw, on_delta))
                    RewriteRuleSet(list(rule.rules)).apply_to_model(model)
    finally:
        _current_ctx.reset(token)

    if any(node.domain == CUSTOM_DOMAIN for node in _all_nodes(model.graph)):
        model.opset_imports.setdefault(CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION)
        model.graph.opset_imports.setdefault(CUSTOM_DOMAIN, CUSTOM_DOMAIN_VERSION)

    live = {id(n) for n in _all_nodes(model.graph)}
    taken = {n.name for n in _all_nodes(model.graph)}
    for _rule, node, replaced in groups:  # name a fused node after the nodes it replaced
        wanted = "+".join(name for name, _ in replaced if name)
        if id(node) in live and wanted and wanted not in taken:
            taken.discard(node.name)
            node.name = wanted
            taken.add(wanted)
    places = graph_locations(model.graph)
    fused = tuple(
        FusedGroup(rule=rule.name, node=node.name or "", op_type=node.op_type,
                   replaced=tuple(n for n, _ in replaced), replaced_ops=tuple(o for _, o in replaced),
                   where=_where(node, places))
        for rule, node, replaced in groups if id(node) in live
    )
    declined = tuple(scan_candidates(model, ordered, enabled=enabled))
    return FusionReport(enabled=enabled, fused=fused, declined=declined)


def scan_candidates(model: "ir.Model", ordered: Sequence[FusionRule], *, enabled: bool = True) -> Iterator[Declined]:
    """Every standard-domain node some rule is a candidate fuser for, with each rule's reason."""
    places = graph_locations(model.graph)
    by_op: dict[str, list[FusionRule]] = {}
    for rule in ordered:
        for op in rule.candidates:
            by_op.setdefault(op, []).append(rule)
    for node in _all_nodes(model.graph):
        if not is_standard_domain(node.domain) or node.op_type not in by_op:
            continue
        reasons = []
        for rule in by_op[node.op_type]:
            if not enabled:
                why = "fusion disabled (tritonnx.fusion=0 or ORT_DISABLE_ALL)"
            elif rule.explain is None:
                why = f"no pattern of rule {rule.name} matched here"
            else:
                try:
                    why = rule.explain(node) or f"no pattern of rule {rule.name} matched here"
                except Exception as exc:  # a broken explain must not break the session
                    why = f"explain() raised {type(exc).__name__}: {exc}"
            reasons.append((rule.name, str(why)))
        yield Declined(node=node.name or "", op_type=node.op_type, reasons=tuple(reasons),
                       where=_where(node, places))


__all__ = [
    "APPLY_LOCK", "CUSTOM_DOMAIN", "CUSTOM_DOMAIN_VERSION", "Declined", "FusedGroup", "FusionReport",
    "FusionRule", "RULES", "RuleRegistry", "apply_fusion", "builtin_rules", "current_context",
    "custom_schema", "recording", "register_rule", "register_schema", "scan_candidates",
]
