"""The exceptions every part of tritonnx raises for a caller's mistake or an unsupported model.

A leaf module (imports nothing of ours), so the zoo-free parts (export, runtime, kernels'
wrappers, bench) can all raise the same catchable types. Names follow onnxruntime's
(``onnxruntime.capi.onnxruntime_pybind11_state``): a script that catches ``InvalidArgument``
there catches it here too after the import swap.
"""
from __future__ import annotations


class TritonnxError(Exception):
    """Base of every error tritonnx raises on purpose (bad input, unsupported model)."""


class Fail(TritonnxError):
    """Something failed that is neither the caller's input nor an unsupported feature."""


class InvalidArgument(TritonnxError, ValueError):
    """A wrong argument or feed: unknown/missing input name, dtype, rank, shape, option."""


class NoSuchFile(TritonnxError, FileNotFoundError):
    """A model or data file that does not exist."""


class InvalidGraph(TritonnxError):
    """A malformed, truncated or invalid model (fails at load, never mid-run)."""


class InvalidProtobuf(InvalidGraph):
    """The bytes are not an ONNX ModelProto."""


class NotImplemented(TritonnxError, NotImplementedError):  # noqa: A001 - onnxruntime's name
    """The model uses ops, opsets or attributes tritonnx does not support."""


class ExportError(TritonnxError):
    """A torch -> ONNX export failed or did not verify against torch."""
