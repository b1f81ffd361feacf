"""torch -> ONNX: `export_model` (one model, checked and verified) and `export_all`.

See `tritonnx.export.exporter` for the exporter choice and the steps.
"""
from __future__ import annotations

from .exporter import (
    DEFAULT_OPSET, EXPORT_DTYPES, MAX_OPSET, MIN_OPSET, TOLERANCE, ExportResult, export_all,
    export_model, file_name, normalize_dtype,
)

__all__ = [
    "DEFAULT_OPSET", "EXPORT_DTYPES", "MAX_OPSET", "MIN_OPSET", "TOLERANCE", "ExportResult",
    "export_all", "export_model", "file_name", "normalize_dtype",
]
