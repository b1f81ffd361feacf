"""The zoo's registry: one `ZooEntry` per model, looked up by name.

An entry knows how to build its module for a named config ("paper": the published sizes,
"tiny": a few channels/units for CPU tests), how to make example inputs for it, and how its
inputs and outputs are named and which of their axes are dynamic. Inputs and outputs are
described by `Tensor` specs whose dims are ints, config keys, or the names of dynamic axes
(`batch`, `seq`, `src_seq`, `tgt_seq`, `steps`), so `dynamic_axes` and the example inputs
come from one description.

The zoo is plain torch: it imports nothing of ours except the leaf `tritonnx.errors`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from tritonnx.errors import InvalidArgument

CONFIGS = ("paper", "tiny")

# Dynamic axis name -> offset of its length from the `seq_len` the caller asks for
# (None: the batch). `tgt_seq` is one longer than `src_seq`, so a swapped axis shows up;
# `steps` (captioner: the image step plus the words) is derived by the model, never fed.
DYNAMIC_AXES = {"batch": None, "seq": 0, "src_seq": 0, "tgt_seq": 1, "steps": None}

# Keys of a config that size the example inputs only and are not model arguments.
INPUT_ONLY_KEYS = frozenset({"seq_len"})


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One graph input or output.

    Args:
        name: the ONNX name.
        dims: each an int, a config key (its value), or a dynamic axis name (DYNAMIC_AXES).
        vocab: for token inputs (int64), the config key of the vocabulary size; None for
            float inputs.
    """

    name: str
    dims: tuple[int | str, ...]
    vocab: str | None = None

    def dynamic(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.dims) if isinstance(d, str) and d in DYNAMIC_AXES}

    def shape(self, cfg: Mapping[str, Any], batch: int, seq_len: int | None) -> tuple[int, ...]:
        out = []
        for d in self.dims:
            if isinstance(d, int):
                out.append(d)
            elif d == "batch":
                out.append(batch)
            elif d in DYNAMIC_AXES and DYNAMIC_AXES[d] is not None:
                out.append(seq_len + DYNAMIC_AXES[d])
            else:
                out.append(int(cfg[d]))
        return tuple(out)

    def describe(self, cfg: Mapping[str, Any]) -> str:
        """`name[batch,1,32,32]` with dynamic axes by name (int64 inputs say so)."""
        dims = ",".join(d if isinstance(d, str) and d in DYNAMIC_AXES else str(cfg[d] if isinstance(d, str) else d) for d in self.dims)
        kind = " int64" if self.vocab else ""
        return f"{self.name}[{dims}]{kind}"


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """A zoo model: how to build it, feed it, and export it (see `tritonnx.zoo`).

    `build`, `example_inputs` and `param_count` are the public methods; `factory` is the
    module class, called with the config's model keys.
    """

    name: str
    family: str
    paper: str
    factory: Callable[..., nn.Module]
    configs: Mapping[str, Mapping[str, Any]]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    description: str = ""

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """For `torch.onnx.export(dynamic_axes=...)`: batch always, sequence axes where any."""
        return {t.name: t.dynamic() for t in (*self.inputs, *self.outputs) if t.dynamic()}

    @property
    def is_sequence(self) -> bool:
        return any(DYNAMIC_AXES[d] is not None for t in self.inputs for d in t.dynamic().values())

    def config(self, config: str = "paper") -> dict[str, Any]:
        """The named config's keys (a copy); unknown names raise `InvalidArgument`."""
        if config not in self.configs:
            raise InvalidArgument(
                f"zoo model {self.name!r} has no config {config!r}; choose one of {', '.join(self.configs)}"
            )
        return dict(self.configs[config])

    def _model_kwargs(self, config: str) -> dict[str, Any]:
        return {k: v for k, v in self.config(config).items() if k not in INPUT_ONLY_KEYS}

    def build(self, config: str = "paper", *, seed: int = 0, state_dict: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
        """The model in eval mode, fp32, on the CPU.

        Args:
            config: "paper" or "tiny".
            seed: seeds the random weights (torch's default initialisers; BatchNorm statistics
                and affine parameters are randomised too, so folding them is not a no-op).
            state_dict: trained weights to load instead (strict: every key must match).
        Returns:
            the `nn.Module`, eval mode.
        """
        kwargs = self._model_kwargs(config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.factory(**kwargs)
            _randomize_batchnorm(model)
        if state_dict is not None:
            try:
                model.load_state_dict(state_dict, strict=True)
            except (RuntimeError, KeyError) as exc:
                problems = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [str(exc)]
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise InvalidArgument(f"state_dict does not fit zoo model {self.name!r} ({config}): {problems[0]}{more}") from None
        return model.eval()

    def example_inputs(self, config: str = "tiny", *, batch: int = 1, seq_len: int | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
        """Random inputs for the model (fp32 features/images in N(0,1), int64 tokens in range).

        Args:
            config: the config whose sizes to use.
            batch: the batch size (>= 1).
            seq_len: the sequence length for sequence models (default: the config's); the
                `tgt_seq` axis of seq2seq is one longer.
            seed: seeds a private generator (the global RNG is untouched).
        Returns:
            one tensor per input, in `input_names` order.
        """
        cfg = self.config(config)
        if int(batch) < 1:
            raise InvalidArgument(f"batch must be >= 1, got {batch}")
        if seq_len is None:
            seq_len = cfg.get("seq_len")
        elif int(seq_len) < 1:
            raise InvalidArgument(f"seq_len must be >= 1, got {seq_len}")
        gen = torch.Generator().manual_seed(seed)
        out = []
        for spec in self.inputs:
            shape = spec.shape(cfg, int(batch), seq_len)
            if spec.vocab:
                out.append(torch.randint(0, int(cfg[spec.vocab]), shape, generator=gen, dtype=torch.int64))
            else:
                out.append(torch.randn(shape, generator=gen))
        return tuple(out)

    def param_count(self, config: str = "paper") -> int:
        """Number of parameters (built on the meta device: no memory, no init time)."""
        with torch.device("meta"):
            model = self.factory(**self._model_kwargs(config))
        return sum(p.numel() for p in model.parameters())

    def describe_inputs(self, config: str = "paper") -> str:
        cfg = self.config(config)
        return ", ".join(t.describe(cfg) for t in self.inputs)


def _randomize_batchnorm(model: nn.Module) -> None:
    for mod in model.modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                if mod.affine:
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.5, 0.5)
                if mod.track_running_stats:
                    mod.running_mean.uniform_(-0.5, 0.5)
                    mod.running_var.uniform_(0.5, 1.5)


_REGISTRY: dict[str, ZooEntry] = {}

# The order of the issue (Fig. 1 MLP, the CNNs, the recurrent nets, ...); others come after.
ORDER = (
    "mlp", "lenet5", "alexnet", "vgg16", "googlenet", "resnet18", "rnn_lm", "char_lstm", "lstm_lm",
    "gru_lm", "seq2seq", "bilstm_speech", "captioner", "nplm", "autoencoder", "dcgan",
    "transformer_encoder",
)


def register(entry: ZooEntry) -> ZooEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"zoo model {entry.name!r} registered twice")
    missing = [c for c in CONFIGS if c not in entry.configs]
    if missing:
        raise ValueError(f"zoo model {entry.name!r} lacks configs {missing}")
    _REGISTRY[entry.name] = entry
    return entry


def names() -> list[str]:
    """Every zoo model's name, in the issue's order (then any registered later)."""
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(_REGISTRY, key=lambda n: rank.get(n, len(rank)))


def get(name: str) -> ZooEntry:
    """The entry for `name`; an unknown name raises `InvalidArgument` listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unknown zoo model {name!r}; available: {', '.join(names())}") from None
