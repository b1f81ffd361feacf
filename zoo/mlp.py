"""Fully connected nets: the multilayer net of Fig. 1, the deep autoencoder, the neural
probabilistic language model.

Shapes: `mlp` and `autoencoder` take `input[batch, features]` (a flattened image);
`nplm` takes the `context` words `[batch, context]` (int64) and returns next-word logits.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import Tensor, ZooEntry, register


class MLP(nn.Module):
    """Linear -> ReLU layers, then a linear classifier (LeCun, Bengio & Hinton 2015, Fig. 1)."""

    def __init__(self, in_features: int, hidden: tuple[int, ...], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Autoencoder(nn.Module):
    """Hinton & Salakhutdinov 2006: logistic encoder to a linear code, mirrored decoder.

    `sizes` = (h1, ..., code); the decoder mirrors it and ends in a logistic unit.
    Returns the reconstruction `[batch, in_features]`.
    """

    def __init__(self, in_features: int, sizes: tuple[int, ...]):
        super().__init__()
        sizes = (in_features, *sizes)
        enc: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            enc.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                enc.append(nn.Sigmoid())
        rev = sizes[::-1]
        dec: list[nn.Module] = []
        for a, b in zip(rev[:-1], rev[1:]):
            dec += [nn.Linear(a, b), nn.Sigmoid()]
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(*dec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class NPLM(nn.Module):
    """Bengio et al. 2003: y = b + W x + U tanh(d + H x), x the concatenated word features.

    `direct` keeps the direct connections W from the features to the output.
    """

    def __init__(self, vocab: int, context: int, embed: int, hidden: int, direct: bool = True):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.hidden = nn.Linear(context * embed, hidden)
        self.out = nn.Linear(hidden, vocab)
        self.direct = nn.Linear(context * embed, vocab, bias=False) if direct else None

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.embedding(context), 1)
        y = self.out(torch.tanh(self.hidden(x)))
        if self.direct is not None:
            y = y + self.direct(x)
        return y


register(ZooEntry(
    name="mlp",
    family="mlp",
    paper="LeCun, Bengio, Hinton, 2015, Nature (Fig. 1)",
    factory=MLP,
    configs={
        "paper": dict(in_features=784, hidden=(1024, 1024), num_classes=10),
        "tiny": dict(in_features=64, hidden=(32, 32), num_classes=10),
    },
    inputs=(Tensor("input", ("batch", "in_features")),),
    outputs=(Tensor("logits", ("batch", "num_classes")),),
    description="784-1024-1024-10 ReLU multilayer net",
))

register(ZooEntry(
    name="autoencoder",
    family="mlp",
    paper="Hinton, Salakhutdinov, 2006, Science",
    factory=Autoencoder,
    configs={
        "paper": dict(in_features=784, sizes=(1000, 500, 250, 30)),
        "tiny": dict(in_features=64, sizes=(32, 16, 8, 4)),
    },
    inputs=(Tensor("input", ("batch", "in_features")),),
    outputs=(Tensor("reconstruction", ("batch", "in_features")),),
    description="deep autoencoder 784-1000-500-250-30, logistic units, linear code",
))

register(ZooEntry(
    name="nplm",
    family="mlp",
    paper="Bengio, Ducharme, Vincent, Jauvin, 2003, JMLR",
    factory=NPLM,
    configs={
        "paper": dict(vocab=17964, context=4, embed=60, hidden=100, direct=True),
        "tiny": dict(vocab=50, context=3, embed=8, hidden=16, direct=True),
    },
    inputs=(Tensor("context", ("batch", "context"), vocab="vocab"),),
    outputs=(Tensor("logits", ("batch", "vocab")),),
    description="neural probabilistic LM: shared word features, tanh hidden layer, direct connections",
))
