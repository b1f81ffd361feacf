"""Plugins: packages that add handlers, custom-op schemas, kernels and fusion rules.

A plugin is an entry point of group ``tritonnx.plugins`` naming a function
``register(registry: PluginRegistry) -> None``. Each session (unless ``plugins=False``) calls
every plugin's ``register`` with its own copy of the registries, so a plugin changes nothing
outside the sessions it is loaded into. A plugin that fails to load or register is a
``RuntimeWarning`` naming it; the session goes on without it.

In a plugin package's ``pyproject.toml``::

    [project.entry-points."tritonnx.plugins"]
    myplugin = "myplugin:register"
"""
from __future__ import annotations

import warnings
from importlib.metadata import entry_points
from typing import Callable

from tritonnx.runtime.passes import FusionRule, RuleRegistry, register_schema
from tritonnx.runtime.registry import OpImpl, OpRegistry

GROUP = "tritonnx.plugins"


class PluginRegistry:
    """What a plugin's ``register`` receives: the session's op handlers and fusion rules.

    Attributes:
        ops: the session's `OpRegistry` (handler contract: `tritonnx.runtime.registry`).
        rules: the session's `RuleRegistry` (`tritonnx.runtime.passes.FusionRule`).
    """

    def __init__(self, ops: OpRegistry, rules: RuleRegistry) -> None:
        self.ops = ops
        self.rules = rules

    def register(self, op_type: str, *, since: int = 1, domain: str = "", prepare: Callable | None = None,
                 **facts):
        """Decorator adding a handler: ``@registry.register("MyOp", domain="my.domain")``;
        `prepare`: its optional once-per-node preparation step, `facts`: its placement facts
        (``host_inputs``, ``host_chain``, ``syncs``; `tritonnx.runtime.registry`)."""
        return self.ops.register(op_type, since=since, domain=domain, prepare=prepare, **facts)

    def add_handler(self, op_type: str, fn: Callable, *, since: int = 1, domain: str = "",
                    prepare: Callable | None = None, **facts) -> OpImpl:
        """Add `fn` as a handler (`register`'s function form)."""
        return self.ops.add(op_type, fn, since=since, domain=domain, prepare=prepare, **facts)

    #: A kernel is the handler of a custom op (it may launch Triton kernels itself).
    add_kernel = add_handler

    def add_schema(self, schema) -> None:
        """Register an ``onnx.defs.OpSchema`` (process-wide, once) for a custom op."""
        register_schema(schema)

    def add_rule(self, rule: FusionRule) -> FusionRule:
        return self.rules.add(rule)


def discover(group: str = GROUP) -> list:
    """The entry points of `group` (sorted by name, so load order is stable)."""
    return sorted(entry_points(group=group), key=lambda ep: ep.name)


def load_plugins(registry: PluginRegistry, group: str = GROUP) -> list[str]:
    """Call every plugin's ``register(registry)``; return the names of those that loaded."""
    loaded = []
    for ep in discover(group):
        label = f"{ep.name} ({ep.value})"
        try:
            register = ep.load()
        except Exception as exc:
            warnings.warn(f"tritonnx plugin {label} failed to load: {type(exc).__name__}: {exc}; "
                          "continuing without it", RuntimeWarning, stacklevel=3)
            continue
        ops_before = registry.ops.copy()
        rules_before = registry.rules.copy()
        try:
            register(registry)
        except Exception as exc:
            registry.ops.handlers = ops_before.handlers  # a half-registered plugin is undone
            registry.rules._rules = rules_before._rules
            warnings.warn(f"tritonnx plugin {label} failed to register: {type(exc).__name__}: {exc}; "
                          "continuing without it", RuntimeWarning, stacklevel=3)
            continue
        loaded.append(ep.name)
    return loaded
