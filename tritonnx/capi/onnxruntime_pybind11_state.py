"""The exception classes at onnxruntime's path: ``from
tritonnx.capi.onnxruntime_pybind11_state import InvalidArgument`` is `tritonnx.errors.InvalidArgument`
itself (the same classes, not copies). onnxruntime's names for states tritonnx never reaches
(``NoModel``, ``ModelLoaded``, ``EngineError``, ``RuntimeException``, ``EPFail``) are `Fail`.
"""
from __future__ import annotations

from tritonnx.errors import (  # noqa: F401 - re-exported under onnxruntime's names
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
    NoSuchFile,
    NotImplemented,
    TritonnxError,
)

NoModel = ModelLoaded = EngineError = RuntimeException = EPFail = Fail

__all__ = ["EPFail", "EngineError", "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "ModelLoaded",
           "NoModel", "NoSuchFile", "NotImplemented", "RuntimeException", "TritonnxError"]
