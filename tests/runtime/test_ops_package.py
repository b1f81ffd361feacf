"""The handler package: every module under runtime/ops is imported by the package itself
(so another area adds handlers by adding a file), and every standard-domain handler follows
the registry contract's naming (named like its op) and has a docstring."""
from __future__ import annotations

import pkgutil
import sys

import tritonnx.runtime.ops as ops_pkg
from tritonnx.runtime.registry import OPS


def test_every_module_is_imported():
    names = [m.name for m in pkgutil.iter_modules(ops_pkg.__path__)]
    assert names
    assert not [n for n in names if f"tritonnx.runtime.ops.{n}" not in sys.modules]


def test_handlers_are_named_like_their_op_and_documented():
    bad = []
    for (domain, op), impls in OPS.handlers.items():
        if domain != "":
            continue
        for impl in impls:
            if not impl.fn.__name__.startswith(op) or not (impl.fn.__doc__ or "").strip():
                bad.append(f"{op} since {impl.since}: {impl.fn.__name__}")
    assert not bad


def test_function_body_handlers_only_fill_gaps():
    """onnx's function bodies are run only for ops that no module handles natively."""
    for (domain, op), impls in OPS.handlers.items():
        kinds = {impl.fn.__module__.rsplit(".", 1)[-1] == "functions" for impl in impls}
        assert len(kinds) == 1, f"{op}: native and function-body handlers mixed"
    assert OPS.resolve("", "Attention", 23).fn.__module__.endswith("functions")
    assert not OPS.resolve("", "Elu", 22).fn.__module__.endswith("functions")
