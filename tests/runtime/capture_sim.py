"""A CUDA-graph capture simulated on the CPU (issue 20, item 4): what breaks a real capture raises.

The executor runs as it would on a GPU (``ctx.device`` = cuda, its CUDA-graph path: warm-up,
capture, replay), but every tensor lives on the CPU. Device tensors (feeds, device weights,
prepared values, whatever an op makes from them or allocates on "cuda") are tagged with the
`OnDevice` subclass, which reports ``device == cuda``; host values (the executor's host copies
and host steps) stay plain CPU tensors. While a capture is simulated, what a real capture
refuses raises `CaptureBreak`:
- a host sync on a device tensor: ``.item()``, ``.tolist()``, ``.numpy()``, ``bool()``, ``int()``,
  ``float()``, ``index()``, data-dependent shapes (``nonzero``, boolean masks, ``unique``, ...);
- a copy between host and device: ``.cpu()``/``.to("cpu")`` of a device tensor, ``.to("cuda")``/
  ``copy_`` of a host tensor, ``torch.tensor(..., device="cuda")`` (pageable memory, synchronous).
Triton kernels run under the interpreter with the simulation switched off inside the launch
(on a GPU the launch is asynchronous); their Python wrappers run inside it.
"""
from __future__ import annotations

import dataclasses
import functools
from types import MappingProxyType

import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda", 0)


class CaptureBreak(RuntimeError):
    """What a real CUDA-graph capture would refuse."""


class OnDevice(torch.Tensor):
    """A CPU tensor that stands for a tensor on the GPU."""


def _is_dev(x) -> bool:
    return isinstance(x, OnDevice)


def _wants_cuda(device) -> bool:
    if device is None:
        return False
    if isinstance(device, int):
        return True
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, torch.device) and device.type == "cuda"


def _wants_cpu(device) -> bool:
    return (isinstance(device, str) and device == "cpu") or (isinstance(device, torch.device) and device.type == "cpu")


def _tag(out):
    if isinstance(out, torch.Tensor) and not isinstance(out, OnDevice):
        return out.as_subclass(OnDevice)
    if isinstance(out, (tuple, list)):
        return type(out)(_tag(o) for o in out)
    return out


def _any_dev(args, kwargs) -> bool:
    def walk(x):
        if _is_dev(x):
            return True
        if isinstance(x, (tuple, list)):
            return any(walk(i) for i in x)
        if isinstance(x, dict):
            return any(walk(i) for i in x.values())
        return False
    return walk(args) or walk(kwargs)


T = torch.Tensor
SYNCS = {T.item, T.tolist, T.numpy, T.__bool__, T.__int__, T.__float__, T.__index__, T.__complex__,
         T.nonzero, torch.nonzero, torch.masked_select, T.masked_select, torch.unique, T.unique,
         torch.unique_consecutive, torch.equal, T.equal, torch.allclose, T.allclose, torch.argwhere,
         T.argwhere, torch.bincount, T.bincount, T.__repr__, T.__format__, torch.repeat_interleave,
         T.repeat_interleave, T.__iter__}
#: property getters reach __torch_function__ as fresh method-wrappers of these descriptors
_DEVICE, _IS_CUDA, _IS_CPU = T.device, T.is_cuda, T.is_cpu


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in items)


def _device_arg(func, args, kwargs):
    """The target device of a Tensor.to / .cuda call (None: no device change)."""
    if func is T.cuda:
        return CUDA
    if "device" in kwargs:
        return kwargs["device"]
    for a in args[1:]:
        if isinstance(a, (str, torch.device)) or (isinstance(a, int) and not isinstance(a, bool)):
            return a
        if isinstance(a, torch.Tensor):
            return CUDA if _is_dev(a) else torch.device("cpu")
    return None


def _strip_device(func, args, kwargs):
    kwargs = {k: v for k, v in kwargs.items() if k != "device"}
    args = tuple(a for i, a in enumerate(args) if i == 0 or not (
        isinstance(a, (str, torch.device)) or (isinstance(a, int) and not isinstance(a, bool))))
    if func is T.cuda:
        return T.to, args[:1], {k: v for k, v in kwargs.items() if k in ("non_blocking", "memory_format")}
    return func, args, kwargs


class SimulatedDevice(TorchFunctionMode):
    """Runs torch with "cuda" mapped onto the CPU; `capturing` makes capture breakers raise."""

    def __init__(self):
        super().__init__()
        self.capturing = False
        self.breaks: list[str] = []

    def _break(self, what: str):
        self.breaks.append(what)
        raise CaptureBreak(f"{what} during CUDA-graph capture")

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        owner = getattr(func, "__self__", None)
        if owner is _DEVICE and _is_dev(args[0]):
            return CUDA
        if owner is _IS_CUDA and _is_dev(args[0]):
            return True
        if owner is _IS_CPU and _is_dev(args[0]):
            return False
        name = getattr(func, "__name__", str(func))
        if func in SYNCS and _any_dev(args, kwargs):
            if self.capturing:
                self._break(f"host sync {name}() on a device tensor")
            return func(*args, **kwargs)
        if func is T.__getitem__ and self.capturing and _is_dev(args[0]) and _bool_index(args[1]):
            self._break("boolean-mask indexing (a data-dependent shape) of a device tensor")
        if func in (T.to, T.cuda, T.cpu):
            src = args[0]
            target = torch.device("cpu") if func is T.cpu else _device_arg(func, args, kwargs)
            if target is not None and _wants_cpu(target) and _is_dev(src):
                if self.capturing:
                    self._break(f"device-to-host copy ({name}) of a device tensor")
                func, args, kwargs = _strip_device(func, args, kwargs)
                return func(*args, **kwargs).as_subclass(torch.Tensor) if func is not T.cpu else \
                    src.as_subclass(torch.Tensor).clone()
            if target is not None and _wants_cuda(target):
                if not _is_dev(src) and self.capturing and src.numel() > 0:
                    self._break(f"host-to-device copy ({name}) of a host tensor")
                func, args, kwargs = _strip_device(func, args, kwargs)
                return _tag(func(*args, **kwargs))
            return func(*args, **kwargs)
        if func in (T.copy_,) and len(args) > 1 and isinstance(args[1], torch.Tensor):
            dst, src = args[0], args[1]
            if self.capturing and _is_dev(dst) != _is_dev(src) and src.numel() > 1:
                self._break("host-to-device copy_" if _is_dev(dst) else "device-to-host copy_")
            return func(*args, **kwargs)
        if "device" in kwargs and _wants_cuda(kwargs["device"]):
            kwargs.pop("device")
            if self.capturing and func in (torch.tensor, torch.as_tensor, torch.asarray) and args and \
                    not _is_dev(args[0]):
                self._break(f"host-to-device copy ({name} from host data)")
            return _tag(func(*args, **kwargs))
        if func in (T.new_tensor,) and _is_dev(args[0]) and self.capturing:
            self._break("host-to-device copy (new_tensor from host data)")
        return func(*args, **kwargs)


def _to_device(value, memo=None):
    """Tensors in `value` (tensors, tuples, lists, dicts, dataclasses) tagged as device tensors."""
    memo = {} if memo is None else memo
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, torch.Tensor):
        out = value if _is_dev(value) else value.as_subclass(OnDevice)
    elif isinstance(value, tuple) and hasattr(value, "_fields"):
        out = type(value)(*(_to_device(v, memo) for v in value))
    elif isinstance(value, (tuple, list)):
        out = type(value)(_to_device(v, memo) for v in value)
    elif isinstance(value, dict):
        out = {k: _to_device(v, memo) for k, v in value.items()}
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: _to_device(getattr(value, f.name), memo) for f in dataclasses.fields(value)
                   if f.init}
        try:
            out = dataclasses.replace(value, **changes)
        except (TypeError, ValueError):
            out = value
    else:
        out = value
    memo[id(value)] = out
    return out


class SimulatedGraphs:
    """The executor's CUDA-graph backend, simulated: warm-up and replay run the function with
    "cuda" mapped onto the CPU; capture runs it once more with the capture breakers raising."""

    def __init__(self, mode: SimulatedDevice):
        self.mode = mode
        self.captures = self.replays = 0

    def warmup(self, fn) -> None:
        with self.mode:
            fn()

    def capture(self, fn):
        self.mode.capturing = True
        try:
            with self.mode:
                outputs = fn()
        finally:
            self.mode.capturing = False
        self.captures += 1
        return (fn, outputs), outputs

    def replay(self, graph) -> None:
        fn, outputs = graph
        self.replays += 1
        with self.mode:
            for static, fresh in zip(outputs, fn()):
                static.copy_(fresh)

    def recover(self) -> None:
        pass


@functools.cache
def _patch_interpreter() -> None:
    """Triton's interpreter copies device tensors to the host around a launch: on a GPU the
    launch is asynchronous, so the simulation is switched off inside it."""
    from triton.runtime import interpreter

    call = interpreter.GridExecutor.__call__

    def launch(self, *args, **kwargs):
        with torch._C.DisableTorchFunction():
            args = tuple(a.as_subclass(torch.Tensor) if isinstance(a, OnDevice) else a for a in args)
            kwargs = {k: v.as_subclass(torch.Tensor) if isinstance(v, OnDevice) else v for k, v in kwargs.items()}
            return call(self, *args, **kwargs)

    interpreter.GridExecutor.__call__ = launch


class _H200Properties:
    multi_processor_count = 132
    name = "simulated H200"


def simulate_on_gpu(executor, monkeypatch) -> SimulatedGraphs:
    """Turn a CPU `Executor` into one that runs as on a GPU with CUDA graphs, simulated
    (`monkeypatch` stands in for the torch.cuda queries the kernels' wrappers make)."""
    from tritonnx.runtime.executor import _HOST

    _patch_interpreter()
    mode = SimulatedDevice()
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: mode.capturing)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: _H200Properties())
    monkeypatch.setenv("TRITONNX_RNN_MEASURE", "0")  # a first-use timing runs in warm-up, needs events
    executor.device = CUDA
    executor.ctx = dataclasses.replace(executor.ctx, device=CUDA, cuda_graphs=True)
    executor.weights = {k: (v if k.endswith(_HOST) or not isinstance(v, torch.Tensor) else _to_device(v))
                        for k, v in executor.weights.items()}
    # device steps: their tensor attributes and prepared values are on the device
    executor.steps = tuple(
        executor._bind(s) if s.host else executor._bind(dataclasses.replace(
            s, prepared=_to_device(s.prepared), attrs=MappingProxyType(_to_device(dict(s.attrs)))))
        for s in executor.steps)
    executor.graph_backend = SimulatedGraphs(mode)
    return executor.graph_backend
