"""`OrtValue`: onnxruntime's tensor handle, over a torch tensor.

    v = OrtValue.ortvalue_from_numpy(x)                 # CPU: shares x's memory, as onnxruntime
    v = OrtValue.ortvalue_from_numpy(x, "cuda", 0)      # a copy on the GPU
    out = sess.run_with_ort_values(["y"], {"x": v})[0]  # OrtValues in and out, no host copy
    out.numpy(), out.shape(), out.data_type()           # "tensor(float)", element_type() -> 1

Beyond onnxruntime: ``OrtValue.from_torch(t)`` and ``v.torch()`` (the tensor itself, no copy).
"""
from __future__ import annotations

import numpy as np
import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes


def _device(device_type: str, device_id: int) -> torch.device:
    kind = str(device_type).lower()
    if kind == "cpu":
        return torch.device("cpu")
    if kind in ("cuda", "gpu"):
        if not torch.cuda.is_available():
            raise InvalidArgument(f"OrtValue on device {device_type!r}: no CUDA device is visible "
                                  "(onnxruntime says the same with its CPU package)")
        return torch.device("cuda", int(device_id))
    raise InvalidArgument(f"OrtValue: device_type {device_type!r}; expected 'cpu' or 'cuda'")


class OrtValue:
    """A tensor as onnxruntime's Python API hands it around (a torch tensor inside)."""

    def __init__(self, tensor: torch.Tensor, numpy_obj: np.ndarray | None = None) -> None:
        if not isinstance(tensor, torch.Tensor):
            raise InvalidArgument(f"OrtValue wraps a torch tensor, got {type(tensor).__name__}; "
                                  "use OrtValue.ortvalue_from_numpy for an array")
        self._tensor = tensor
        self._numpy = numpy_obj  # keeps the shared array alive, as onnxruntime does

    # ------------------------------------------------------------------ construction
    @staticmethod
    def ortvalue_from_numpy(numpy_obj, device_type: str = "cpu", device_id: int = 0) -> "OrtValue":
        """An OrtValue of a numpy array: sharing its memory on the CPU, copied to a GPU."""
        if not isinstance(numpy_obj, np.ndarray) or numpy_obj.dtype.kind in "OSU":
            raise InvalidArgument("Creation of OrtValues is currently only supported from non-string numpy arrays")
        device = _device(device_type, device_id)
        if device.type == "cpu" and numpy_obj.flags.c_contiguous and numpy_obj.flags.writeable \
                and numpy_obj.dtype in dtypes._NP_TO_TORCH:
            return OrtValue(torch.from_numpy(numpy_obj), numpy_obj)
        return OrtValue(dtypes.from_numpy(numpy_obj, device))

    @staticmethod
    def ortvalue_from_shape_and_type(shape, element_type, device_type: str = "cpu", device_id: int = 0) -> "OrtValue":
        """An uninitialised tensor; `element_type` a numpy dtype (or an ONNX element type int)."""
        if isinstance(element_type, (int, np.integer)) and not isinstance(element_type, bool):
            dtype = dtypes.torch_dtype(int(element_type))
        else:
            dtype = dtypes.torch_dtype_of_numpy(element_type)
        return OrtValue(torch.empty([int(s) for s in shape], dtype=dtype, device=_device(device_type, device_id)))

    @staticmethod
    def from_torch(tensor: torch.Tensor) -> "OrtValue":
        """tritonnx's extension: an OrtValue of a torch tensor (no copy)."""
        return OrtValue(tensor)

    # ------------------------------------------------------------------ queries
    def torch(self) -> torch.Tensor:
        """tritonnx's extension: the torch tensor itself (no copy)."""
        return self._tensor

    def numpy(self) -> np.ndarray:
        """The values as a numpy array: the same memory for a CPU tensor, a copy from a GPU."""
        return dtypes.to_numpy(self._tensor)

    def shape(self) -> list[int]:
        return list(self._tensor.shape)

    def element_type(self) -> int:
        """The ONNX element type (``onnx.TensorProto.FLOAT`` is 1)."""
        return dtypes.onnx_dtype(self._tensor.dtype)

    def data_type(self) -> str:
        """onnxruntime's type string, e.g. ``"tensor(float)"``."""
        return dtypes.ort_type_string(self.element_type())

    def device_name(self) -> str:
        return "cuda" if self._tensor.device.type == "cuda" else "cpu"

    def data_ptr(self) -> int:
        return int(self._tensor.data_ptr())

    def tensor_size_in_bytes(self) -> int:
        return int(self._tensor.numel() * self._tensor.element_size())

    def is_tensor(self) -> bool:
        return True

    def has_value(self) -> bool:
        return True

    def is_sparse_tensor(self) -> bool:
        return False

    def is_tensor_sequence(self) -> bool:
        return False

    def update_inplace(self, np_arr) -> None:
        """Copy `np_arr` (same shape and dtype) into this value's memory."""
        src = dtypes.from_numpy(np.asarray(np_arr), self._tensor.device)
        if src.shape != self._tensor.shape or src.dtype != self._tensor.dtype:
            raise InvalidArgument(f"OrtValue.update_inplace: got {list(src.shape)} {src.dtype}, "
                                  f"expected {self.shape()} {self._tensor.dtype}")
        self._tensor.copy_(src)

    def __repr__(self) -> str:
        return f"OrtValue({self.data_type()}, shape={self.shape()}, device={self.device_name()})"


def as_tensor(value):
    """A feed that may be an OrtValue: its tensor; anything else unchanged."""
    return value._tensor if isinstance(value, OrtValue) else value
