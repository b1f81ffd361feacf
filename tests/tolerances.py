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


#: The fused Triton kernels' tests: the largest error relative to the reference's largest
#: magnitude (max |got - want| / max |want|, against float64), by where the kernel ran and dtype.
#: "interpreter": the CPU (Triton's interpreter, numpy's fp32 products). "gpu": the compiled
#: kernels; its "fp32" row is for allow_tf32=False, its "tf32" row for fp32 inputs through TF32
#: tensor cores (the kernels' default, allow_tf32=True: on a GPU, fp32 may be TF32). The GPU
#: rows were set on a GPU and cannot be rechecked without one: never tighten them here.
KERNEL_MAX_REL = {
    "interpreter": {"fp64": 1e-9, "fp32": 2e-5, "fp16": 5e-3, "bf16": 3e-2},
    "gpu": {"fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2},
}


def kernel_max_rel(dtype, device="cpu", *, tf32: bool = True) -> float:
    """The kernel tests' bound on max |got - want| / max |want| for a kernel run on `device`
    ("cpu"/"cuda", a torch.device) with inputs of `dtype`; fp32 on a GPU reads the "tf32" row
    unless `tf32` is False (the kernel called with allow_tf32=False)."""
    key = name(dtype)
    if getattr(device, "type", str(device)).startswith("cuda"):
        return KERNEL_MAX_REL["gpu"]["tf32" if key == "fp32" and tf32 else key]
    return KERNEL_MAX_REL["interpreter"]["fp32" if key == "tf32" else key]


#: fp32 results of a whole model against onnxruntime's fp32 run of the same file (both sides
#: round every op; reduction orders and algorithms differ): relative, and absolute times the
#: reference's scale.
VS_ONNXRUNTIME = {"fp32": 2e-4}

#: Files onnxruntime's own tools wrote (fp32 models), against onnxruntime running the same file:
#: max |ours - onnxruntime| / max |onnxruntime|, per kind of file. "opt" (optimized): float
#: rounding. "qdyn" (quantize_dynamic): exact for the integer products; DynamicQuantizeLSTM is
#: dequantized here while onnxruntime quantizes X and h too (1e-3 seen). "qdq" (quantize_static,
#: QDQ): a value on a rounding boundary can land one quantization step apart (2e-2 seen for
#: transformer_encoder). "qop" (QOperator): the same one-step rule as QDQ (0 seen on these models).
ORT_WRITTEN = {"opt": 1e-5, "qdyn": 1e-2, "qdq": 5e-2, "qop": 5e-2}
