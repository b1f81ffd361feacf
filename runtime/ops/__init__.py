"""Built-in op handlers for the standard ONNX domain (torch ops), filling `registry.OPS`.

Every module of this package is imported here automatically (``pkgutil``), so an area adds its
handlers by adding a file (e.g. ``fused_conv.py`` for domain ``tritonnx``) and nothing else.
Modules whose name starts with ``_`` are helpers and are imported too (they register nothing).

Handlers follow the contract in `tritonnx.runtime.registry`: plain functions named like the
op, inputs positionally, attributes as keyword arguments with the spec's defaults, one tensor
or a tuple per node output. They raise `tritonnx.errors` exceptions naming the op, the input
and what was expected; the executor adds the node's name.
"""
from __future__ import annotations

import importlib
import pkgutil

from tritonnx.runtime.registry import OPS

__all__ = ["OPS"]

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_info.name}")

# Last: onnx's function bodies for the standard ops that no module above handles.
importlib.import_module(f"{__name__}.functions").register_function_ops()
