"""`IOBinding`: onnxruntime's I/O binding over a tritonnx session.

Inputs and outputs are bound as torch tensors (our extension: ``bind_input(name, tensor)``),
numpy arrays (``bind_cpu_input``) or raw pointers as onnxruntime takes them
(``bind_input(name, device_type, device_id, element_type, shape, buffer_ptr)``; a CUDA
pointer is wrapped through ``__cuda_array_interface__``, no copy). An output bound to a
buffer is written into it; an output bound by name only is allocated by the run and
returned by `get_outputs` (`OrtValue`s, as onnxruntime; ``.torch()`` gives the tensor) or
`copy_outputs_to_cpu` (numpy). ``bind_ortvalue_input/output`` bind `OrtValue`s.
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes
from tritonnx.runtime.ortvalue import OrtValue


class _CudaBuffer:
    def __init__(self, ptr: int, shape, typestr: str) -> None:
        self.__cuda_array_interface__ = {"data": (int(ptr), False), "shape": tuple(int(s) for s in shape),
                                         "typestr": typestr, "version": 3, "strides": None}


def _wrap_pointer(device_type: str, device_id: int, element_type, shape, buffer_ptr: int) -> torch.Tensor:
    np_dtype = np.dtype(element_type)
    shape = tuple(int(s) for s in shape)
    if str(device_type).lower() == "cuda":
        return torch.as_tensor(_CudaBuffer(buffer_ptr, shape, np_dtype.str), device=f"cuda:{int(device_id)}")
    if str(device_type).lower() == "cpu":
        count = int(np.prod(shape)) if shape else 1
        raw = (ctypes.c_byte * (count * np_dtype.itemsize)).from_address(int(buffer_ptr))
        return torch.from_numpy(np.frombuffer(raw, dtype=np_dtype).reshape(shape))
    raise InvalidArgument(f"IOBinding: device_type {device_type!r}; expected 'cuda' or 'cpu'")


class IOBinding:
    """Bind inputs/outputs once, run many times with ``sess.run_with_iobinding(binding)``."""

    def __init__(self, session) -> None:
        self._session = session
        self._inputs: dict[str, torch.Tensor] = {}
        self._outputs: dict[str, torch.Tensor | None] = {}
        self._results: list[torch.Tensor] = []

    def bind_input(self, name: str, device_type: Any = None, device_id: int = 0, element_type=None,
                   shape=None, buffer_ptr: int | None = None) -> None:
        if isinstance(device_type, OrtValue):
            self._inputs[name] = device_type.torch()
        elif isinstance(device_type, torch.Tensor):
            self._inputs[name] = device_type
        elif isinstance(device_type, np.ndarray):
            self._inputs[name] = dtypes.from_numpy(device_type, self._session.device)
        else:
            if buffer_ptr is None or shape is None or element_type is None:
                raise InvalidArgument(f"IOBinding.bind_input({name!r}): give a torch tensor, or device_type, "
                                      "device_id, element_type, shape and buffer_ptr")
            self._inputs[name] = _wrap_pointer(device_type, device_id, element_type, shape, buffer_ptr)

    def bind_ortvalue_input(self, name: str, ortvalue: OrtValue) -> None:
        """Bind an `OrtValue` as input `name` (its memory, no copy)."""
        self._inputs[name] = ortvalue.torch()

    def bind_ortvalue_output(self, name: str, ortvalue: OrtValue) -> None:
        """Bind output `name` to an `OrtValue`: the run writes into its memory."""
        self._outputs[name] = ortvalue.torch()

    def bind_cpu_input(self, name: str, arr: np.ndarray) -> None:
        self._inputs[name] = dtypes.from_numpy(np.asarray(arr), self._session.device)

    def bind_output(self, name: str, device_type: Any = "cpu", device_id: int = 0, element_type=None,
                    shape=None, buffer_ptr: int | None = None) -> None:
        if isinstance(device_type, OrtValue):
            self._outputs[name] = device_type.torch()
        elif isinstance(device_type, torch.Tensor):
            self._outputs[name] = device_type
        elif buffer_ptr is not None:
            self._outputs[name] = _wrap_pointer(device_type, device_id, element_type, shape, buffer_ptr)
        else:
            self._outputs[name] = None

    def clear_binding_inputs(self) -> None:
        self._inputs.clear()

    def clear_binding_outputs(self) -> None:
        self._outputs.clear()

    def synchronize_inputs(self) -> None:
        if self._session.device.type == "cuda":
            torch.cuda.synchronize(self._session.device)

    synchronize_outputs = synchronize_inputs

    def run_bound(self) -> None:
        """Run the session on the bound inputs, writing bound outputs in place (what
        `InferenceSession.run_with_iobinding` calls)."""
        names = list(self._outputs) or None
        results = self._session.run_torch(names, self._inputs)
        out_names = names or [o.name for o in self._session.get_outputs()]
        self._results = []
        for name, value in zip(out_names, results):
            target = self._outputs.get(name)
            if target is not None:
                if tuple(target.shape) != tuple(value.shape):
                    raise InvalidArgument(f"IOBinding: output {name!r} is bound to a buffer of shape "
                                          f"{list(target.shape)}, the run produced {list(value.shape)}")
                target.copy_(value)
                value = target
            self._results.append(value)

    def get_outputs(self) -> list[OrtValue]:
        """The outputs of the last run as `OrtValue`s (over the bound buffers themselves)."""
        return [OrtValue(t) for t in self._results]

    def copy_outputs_to_cpu(self) -> list[np.ndarray]:
        return [dtypes.to_numpy(t, copy=True) for t in self._results]
