"""Fused Triton kernels (one module per kernel family) and their plain-torch references.

Kernels know tensors, not ONNX or models: nothing here imports the runtime or the zoo.

On a machine with no visible CUDA device, `TRITON_INTERPRET=1` is set here, before any kernel
module runs `@triton.jit`, unless the variable is already set (an explicit value, such as the
ahead-of-time compile check's `TRITON_INTERPRET=0`, is left alone). Kernel modules must be
imported through this package (`tritonnx.triton_kernels.<family>`), so this runs first.
"""
from __future__ import annotations

import os


def _cuda_visible() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a base dependency
        return False
    return bool(torch.cuda.is_available())


if "TRITON_INTERPRET" not in os.environ and not _cuda_visible():
    os.environ["TRITON_INTERPRET"] = "1"

#: True when the kernels of this process run under Triton's interpreter (CPU).
INTERPRET: bool = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
