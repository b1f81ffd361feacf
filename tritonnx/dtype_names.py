"""dtype names: the one table of spellings, for every part (the kernels' catalog, the exporter,
the bench, the CLI). DESIGN: ``fp32``, ``fp16``, ``bf16`` in the CLI, tables and file names;
``float32``, ``float16``, ``bfloat16`` accepted as aliases, and so are ``float`` and ``half``
(torch's and numpy's short names), everywhere alike. A leaf like `tritonnx.errors`: no torch
import, so the CLI answers a misspelled dtype before torch loads.
"""
from __future__ import annotations

from tritonnx.errors import InvalidArgument

#: The canonical names, in table order.
NAMES = ("fp32", "fp16", "bf16")
#: Every accepted spelling (lower case) -> its canonical name.
ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}


def lookup(name) -> str | None:
    """The canonical name of spelling `name` (any case, surrounding spaces), or None."""
    return ALIASES.get(str(name).strip().lower())


def canonical(name, allowed: tuple[str, ...] = NAMES, *, what: str = "dtype") -> str:
    """'float16' -> 'fp16'. Raises `InvalidArgument` naming the accepted spellings when `name`
    is none of them or its canonical name is not in `allowed`."""
    key = lookup(name)
    if key is None or key not in allowed:
        aliases = [a for a, k in ALIASES.items() if k in allowed and a not in allowed]
        raise InvalidArgument(f"unknown {what} {name!r}: expected one of {', '.join(allowed)} "
                              f"(aliases {', '.join(aliases)})")
    return key


def torch_dtype(name):
    """The torch dtype of a dtype name (any accepted spelling)."""
    return _torch_table()[canonical(name)]


def of_torch(dtype) -> str | None:
    """The canonical name of torch dtype `dtype` (torch.float16 -> "fp16"), or None."""
    return next((name for name, dt in _torch_table().items() if dt == dtype), None)


def _torch_table() -> dict:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
