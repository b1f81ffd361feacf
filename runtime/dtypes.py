"""ONNX element types (``onnx.TensorProto`` enum) <-> torch dtypes <-> numpy dtypes.

One table for the whole runtime: the loader maps graph inputs and initializers with it, the
session checks feeds and builds `get_inputs()` types with it, and handlers such as Cast and
ConstantOfShape map their ``to`` / value types with it.

numpy has no bfloat16 and no float8: those ONNX types map to a torch dtype but to no numpy
dtype of their own (onnx stores them as raw bits; `numpy_dtype` returns the storage dtype
onnx's `helper.tensor_dtype_to_np_dtype` uses, e.g. ``ml_dtypes.bfloat16`` when onnx has it).
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto

from tritonnx.errors import InvalidArgument

#: ONNX element type -> torch dtype, for every type torch can hold element for element.
ONNX_TO_TORCH: dict[int, torch.dtype] = {
    TensorProto.FLOAT: torch.float32,
    TensorProto.UINT8: torch.uint8,
    TensorProto.INT8: torch.int8,
    TensorProto.UINT16: torch.uint16,
    TensorProto.INT16: torch.int16,
    TensorProto.INT32: torch.int32,
    TensorProto.INT64: torch.int64,
    TensorProto.BOOL: torch.bool,
    TensorProto.FLOAT16: torch.float16,
    TensorProto.DOUBLE: torch.float64,
    TensorProto.UINT32: torch.uint32,
    TensorProto.UINT64: torch.uint64,
    TensorProto.COMPLEX64: torch.complex64,
    TensorProto.COMPLEX128: torch.complex128,
    TensorProto.BFLOAT16: torch.bfloat16,
    TensorProto.FLOAT8E4M3FN: torch.float8_e4m3fn,
    TensorProto.FLOAT8E4M3FNUZ: torch.float8_e4m3fnuz,
    TensorProto.FLOAT8E5M2: torch.float8_e5m2,
    TensorProto.FLOAT8E5M2FNUZ: torch.float8_e5m2fnuz,
}

#: torch dtype -> ONNX element type (the inverse of `ONNX_TO_TORCH`).
TORCH_TO_ONNX: dict[torch.dtype, int] = {v: k for k, v in ONNX_TO_TORCH.items()}

#: Unsigned integer dtypes torch stores but lacks most arithmetic for (handlers widen them).
LIMITED_UNSIGNED: frozenset[torch.dtype] = frozenset({torch.uint16, torch.uint32, torch.uint64})

_NP_TO_TORCH: dict[np.dtype, torch.dtype] = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float64): torch.float64,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.uint16): torch.uint16,
    np.dtype(np.uint32): torch.uint32,
    np.dtype(np.uint64): torch.uint64,
    np.dtype(np.bool_): torch.bool,
    np.dtype(np.complex64): torch.complex64,
    np.dtype(np.complex128): torch.complex128,
}
_TORCH_TO_NP: dict[torch.dtype, np.dtype] = {v: k for k, v in _NP_TO_TORCH.items()}


def onnx_type_name(elem_type: int) -> str:
    """``TensorProto.FLOAT`` -> ``"FLOAT"`` (for messages)."""
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"<unknown element type {elem_type}>"


_ORT_NAMES = {
    TensorProto.FLOAT: "float", TensorProto.DOUBLE: "double", TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16", TensorProto.INT8: "int8", TensorProto.INT16: "int16",
    TensorProto.INT32: "int32", TensorProto.INT64: "int64", TensorProto.UINT8: "uint8",
    TensorProto.UINT16: "uint16", TensorProto.UINT32: "uint32", TensorProto.UINT64: "uint64",
    TensorProto.BOOL: "bool", TensorProto.STRING: "string", TensorProto.COMPLEX64: "complex64",
    TensorProto.COMPLEX128: "complex128",
}


def ort_type_string(elem_type: int) -> str:
    """The type string onnxruntime's ``NodeArg.type`` shows, e.g. ``"tensor(float)"``."""
    name = _ORT_NAMES.get(elem_type) or onnx_type_name(elem_type).lower()
    return f"tensor({name})"


def torch_dtype(elem_type: int) -> torch.dtype:
    """The torch dtype of an ONNX element type; `InvalidArgument` when torch has none."""
    try:
        return ONNX_TO_TORCH[elem_type]
    except KeyError:
        raise InvalidArgument(
            f"ONNX element type {onnx_type_name(elem_type)} ({elem_type}) has no torch dtype; "
            f"supported: {', '.join(onnx_type_name(t) for t in ONNX_TO_TORCH)}"
        ) from None


def onnx_dtype(dtype: torch.dtype | np.dtype | type) -> int:
    """The ONNX element type of a torch or numpy dtype; `InvalidArgument` when there is none."""
    if not isinstance(dtype, torch.dtype):
        dtype = torch_dtype_of_numpy(dtype)
    try:
        return TORCH_TO_ONNX[dtype]
    except KeyError:
        raise InvalidArgument(f"torch dtype {dtype} has no ONNX element type") from None


def torch_dtype_of_numpy(dtype: np.dtype | type) -> torch.dtype:
    """numpy dtype -> torch dtype (bfloat16/float8 of ml_dtypes included when onnx uses them)."""
    dt = np.dtype(dtype)
    if dt in _NP_TO_TORCH:
        return _NP_TO_TORCH[dt]
    name = dt.name
    for elem_type, tdt in ONNX_TO_TORCH.items():
        try:
            if onnx.helper.tensor_dtype_to_np_dtype(elem_type).name == name:
                return tdt
        except (KeyError, ValueError, TypeError):
            continue
    raise InvalidArgument(f"numpy dtype {dt} has no torch dtype")


def numpy_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype onnx uses for an ONNX element type (`onnx.helper`'s mapping)."""
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        raise InvalidArgument(f"ONNX element type {onnx_type_name(elem_type)} has no numpy dtype") from None


def numpy_dtype_of_torch(dtype: torch.dtype) -> np.dtype | None:
    """torch dtype -> numpy dtype, or None where numpy has no such dtype (bfloat16, float8)."""
    return _TORCH_TO_NP.get(dtype)


def to_numpy(t: torch.Tensor, *, copy: bool = False) -> np.ndarray:
    """A torch tensor as a numpy array, bfloat16/float8 through onnx's numpy dtypes (ml_dtypes).

    Returns a host copy for device tensors; for CPU tensors, a view where one is possible.
    `copy`: a C-contiguous array that never shares memory with `t` (for a device tensor, the
    transfer is that copy).
    """
    t = t.detach()
    if t.device.type != "cpu":
        t = (t.contiguous() if copy else t).cpu()
    elif copy:
        t = t.clone(memory_format=torch.contiguous_format)
    np_dt = _TORCH_TO_NP.get(t.dtype)
    if np_dt is not None:
        return t.numpy()
    np_dt = numpy_dtype(onnx_dtype(t.dtype))
    bits = {1: torch.uint8, 2: torch.uint16}[t.element_size()]
    return t.contiguous().view(bits).numpy().view(np_dt)


def from_numpy(a: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """A numpy array as a torch tensor (bfloat16/float8 arrays of ml_dtypes included); 0-D stays 0-D."""
    a = np.asarray(a)
    dt = a.dtype
    c = a if a.flags.c_contiguous and a.flags.writeable else a.copy(order="C")
    if dt in _NP_TO_TORCH:
        return torch.from_numpy(c).to(device)
    tdt = torch_dtype_of_numpy(dt)
    bits = {1: np.uint8, 2: np.uint16}[dt.itemsize]
    return torch.from_numpy(c.view(bits).copy()).view(tdt).to(device)
