"""The model zoo: the classic networks of deep learning as plain torch `nn.Module`s.

    from tritonnx import zoo
    zoo.names()                       # ['mlp', 'lenet5', ...]
    entry = zoo.get("lenet5")         # a ZooEntry
    model = entry.build("tiny", seed=0)
    (x,) = entry.example_inputs("tiny", batch=2)

Each entry has `name, family, paper, input_names, output_names, dynamic_axes, is_sequence`,
`build(config="paper"|"tiny", *, seed=0, state_dict=None)`, `example_inputs(config="tiny", *,
batch=1, seq_len=None, seed=0)` and `param_count(config)`. One file per family.
"""
from __future__ import annotations

from .registry import CONFIGS, Tensor, ZooEntry, get, names, register
from . import mlp, cnn, recurrent, gan, transformer  # noqa: E402,F401  (each registers its models)

__all__ = ["CONFIGS", "Tensor", "ZooEntry", "get", "names", "register"]
