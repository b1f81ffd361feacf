"""The execution context a session hands to handlers that take a keyword ``ctx``.

Settings follow DESIGN.md ("Names, knobs and defaults"): session config entries
``tritonnx.<key>`` (string values, as onnxruntime's ``add_session_config_entry``), each also an
``InferenceSession`` keyword argument (the key without ``tritonnx.``, dots as underscores).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

from tritonnx.errors import InvalidArgument

KERNEL_MODES = ("triton", "torch")

#: config key -> (keyword name, kind); kind "bool", "int" or a tuple of allowed strings.
CONFIG_KEYS: dict[str, tuple[str, Any]] = {
    "tritonnx.fusion": ("fusion", "bool"),
    "tritonnx.cuda_graphs": ("cuda_graphs", "bool"),
    "tritonnx.cuda_graphs.max_shapes": ("cuda_graphs_max_shapes", "int"),
    "tritonnx.kernels": ("kernels", KERNEL_MODES),
    "tritonnx.tf32": ("tf32", "bool"),
    "tritonnx.plugins": ("plugins", "bool"),
}
KEYWORDS = {kw: key for key, (kw, _) in CONFIG_KEYS.items()}


@dataclass(frozen=True)
class ExecContext:
    """What a handler may need to know about the session running it.

    Nodes of shape arithmetic (Shape, Size, small Constants and the Gather/Concat/... chains
    fed only by them) run on the host: their handlers get a copy of this context whose
    ``device`` is the CPU, and their inputs are CPU tensors. A device node may receive such a
    CPU tensor where ONNX reads a shape or axes (Reshape's ``shape``, Slice's ``starts``, ...:
    its handler's ``host_inputs``, `tritonnx.runtime.registry`); everywhere else its inputs are on ``device``.

    Attributes:
        device: where tensors live (``cuda:N`` or ``cpu``).
        kernels: "triton" (fused nodes run their Triton kernels; on the CPU under the
            interpreter) or "torch" (their plain-torch references).
        tf32: TF32 allowed for fp32 matmuls/convolutions (onnxruntime's ``use_tf32``).
        fusion: fused rewrites applied.
        cuda_graphs: CUDA-graph replay per input-shape signature (GPU only).
        cuda_graphs_max_shapes: how many signatures keep a graph (least recently used dropped).
        plugins: entry-point plugins loaded.
        extra: any other session config entries, as given (strings).
    """

    device: Any
    kernels: str = "torch"
    tf32: bool = True
    fusion: bool = True
    cuda_graphs: bool = False
    cuda_graphs_max_shapes: int = 8
    plugins: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def is_cuda(self) -> bool:
        return getattr(self.device, "type", str(self.device)) == "cuda"

    @property
    def interpret(self) -> bool:
        """True when Triton kernels run under the interpreter (no CUDA device)."""
        return not self.is_cuda


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return False
    raise InvalidArgument(f"session setting {key}: expected '1' or '0', got {value!r}")


def parse_setting(key: str, value: Any) -> Any:
    """Validate one ``tritonnx.*`` setting; return its typed value."""
    if key not in CONFIG_KEYS:
        raise InvalidArgument(f"unknown session setting {key!r}; known: {', '.join(CONFIG_KEYS)}")
    _, kind = CONFIG_KEYS[key]
    if kind == "bool":
        return parse_bool(key, value)
    if kind == "int":
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidArgument(f"session setting {key}: expected an integer, got {value!r}") from None
        if number < 1:
            raise InvalidArgument(f"session setting {key}: expected an integer >= 1, got {value!r}")
        return number
    text = str(value).strip().lower()
    if text not in kind:
        raise InvalidArgument(f"session setting {key}: expected one of {', '.join(kind)}, got {value!r}")
    return text


def default_kernels(device) -> str:
    """"triton" on a GPU, "torch" on the CPU; ``TRITONNX_KERNELS`` overrides."""
    env = os.environ.get("TRITONNX_KERNELS", "").strip().lower()
    if env:
        if env not in KERNEL_MODES:
            raise InvalidArgument(f"TRITONNX_KERNELS: expected one of {', '.join(KERNEL_MODES)}, got {env!r}")
        return env
    return "triton" if getattr(device, "type", "cpu") == "cuda" else "torch"


#: The oldest CUDA architecture the Triton kernels are built and checked for (sm_80, A100).
MIN_TRITON_CAPABILITY = (8, 0)


def supported_kernels(device, kernels: str) -> str:
    """`kernels`, or "torch" with one warning when it is "triton" on a CUDA device older than
    sm_80 (the kernels' tile configs and the compile gate cover sm_80 and up only)."""
    if kernels != "triton" or getattr(device, "type", "cpu") != "cuda":
        return kernels
    import torch

    capability = tuple(torch.cuda.get_device_capability(device))
    if capability >= MIN_TRITON_CAPABILITY:
        return kernels
    name = torch.cuda.get_device_name(device)
    warnings.warn(
        f"{name} is sm_{capability[0]}{capability[1]}; tritonnx's Triton kernels need sm_80 or newer: "
        "fused nodes run their torch references instead (tritonnx.kernels=torch)",
        RuntimeWarning, stacklevel=4,
    )
    return "torch"


def build_context(device, settings: dict[str, Any], extra: dict[str, str] | None = None) -> ExecContext:
    """An `ExecContext` for `device` from typed `settings` (keyword names), defaults filled in."""
    is_cuda = getattr(device, "type", "cpu") == "cuda"
    # tf32, fusion, max_shapes, plugins: the dataclass's defaults where not given (one place);
    # kernels and cuda_graphs depend on the device.
    given = {k: settings[k] for k in ("tf32", "fusion", "cuda_graphs_max_shapes", "plugins") if k in settings}
    return ExecContext(
        device=device,
        kernels=supported_kernels(device, settings.get("kernels") or default_kernels(device)),
        cuda_graphs=bool(settings.get("cuda_graphs", True)) and is_cuda,
        extra=dict(extra or {}),
        **given,
    )
