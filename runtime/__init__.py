"""The runtime: load and check an ONNX model, rewrite it (passes, fusion), lower every node to
a handler, and run it, behind onnxruntime's API (`InferenceSession`)."""
from __future__ import annotations

from tritonnx.runtime.context import ExecContext
from tritonnx.runtime.session import (
    ExecutionMode,
    GraphOptimizationLevel,
    InferenceSession,
    ModelMetadata,
    NodeArg,
    RunOptions,
    SessionOptions,
    get_all_providers,
    get_available_providers,
    get_device,
)

__all__ = [
    "ExecContext", "ExecutionMode", "GraphOptimizationLevel", "InferenceSession", "ModelMetadata",
    "NodeArg", "RunOptions", "SessionOptions", "get_all_providers", "get_available_providers", "get_device",
]
