"""The tests' one tolerance table (FlagGems' accuracy_utils style): a relative tolerance per
dtype for a result rounded once to that dtype, compared with a float64 (or exact) reference,
and an absolute tolerance scaled with the reduction length (a sum of n terms carries up to n
roundings). Look-ups accept the dtype's name ("fp32", "tf32", ...), a torch dtype or a numpy
dtype (or its scalar type)."""
from __future__ import annotations

import numpy as np
import torch

#: Relative tolerance by dtype name. "tf32": fp32 tensors through TF32 matrix products.
RTOL = {"fp64": 1e-12, "fp32": 1e-5, "tf32": 5e-3, "fp16": 2e-3, "bf16": 1.6e-2}

_NAMES = {torch.float64: "fp64", torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16",
          np.dtype(np.float64): "fp64", np.dtype(np.float32): "fp32", np.dtype(np.float16): "fp16"}


def name(dtype) -> str:
    """The table's key of `dtype` (a name, torch dtype, numpy dtype or numpy scalar type)."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, torch.dtype):
        return _NAMES[dtype]
    return _NAMES[np.dtype(dtype)]


def rtol(dtype) -> float:
    """The relative tolerance of `dtype`."""
    return RTOL[name(dtype)]


def atol(dtype, reduction: int = 1) -> float:
    """The absolute tolerance of a result of `dtype` summed over `reduction` terms (inputs of
    magnitude about one): ``rtol(dtype) * reduction``."""
    return rtol(dtype) * max(int(reduction), 1)
