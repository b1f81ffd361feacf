"""tritonnx: run ONNX models on the GPU with fused Triton kernels.

The public facade. Heavy parts (torch, onnx, the runtime) load on first use, so
``import tritonnx`` stays cheap and nothing touches the GPU at import.

    sess = tritonnx.InferenceSession("model.onnx")
    outputs = sess.run(None, {"input": x})
"""
from __future__ import annotations

import importlib

from ._version import __version__

_LAZY = {
    "InferenceSession": ("tritonnx.runtime", "InferenceSession"),
    "SessionOptions": ("tritonnx.runtime", "SessionOptions"),
    "GraphOptimizationLevel": ("tritonnx.runtime", "GraphOptimizationLevel"),
    "RunOptions": ("tritonnx.runtime", "RunOptions"),
    "ExecutionMode": ("tritonnx.runtime", "ExecutionMode"),
    "get_device": ("tritonnx.runtime", "get_device"),
    "get_available_providers": ("tritonnx.runtime", "get_available_providers"),
    "get_all_providers": ("tritonnx.runtime", "get_all_providers"),
    "OrtValue": ("tritonnx.runtime.ortvalue", "OrtValue"),
    "NodeArg": ("tritonnx.runtime", "NodeArg"),
    "ModelMetadata": ("tritonnx.runtime", "ModelMetadata"),
    "capi": ("tritonnx.capi", None),
    "export_model": ("tritonnx.export", "export_model"),
    "zoo": ("tritonnx.zoo", None),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'tritonnx' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
