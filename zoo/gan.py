"""The DCGAN generator (Radford, Metz & Chintala 2015): `z[batch, nz, 1, 1]` ->
`image[batch, channels, image_size, image_size]` in [-1, 1].

A 4x4 transposed conv lifts z to `ngf * 2**(n-1)` channels at 4x4 (n = log2(image_size / 4)),
then stride-2 4x4 transposed convs double the size and halve the width, BatchNorm and ReLU
after each but the last, which maps to `channels` and ends in tanh.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import Tensor, ZooEntry, register


class DCGANGenerator(nn.Module):
    def __init__(self, nz: int, ngf: int, channels: int, image_size: int):
        super().__init__()
        n = (image_size // 4).bit_length() - 1
        if image_size < 8 or 4 * 2**n != image_size:
            raise ValueError(f"DCGAN image_size must be 4 * 2**n with n >= 1, got {image_size}")
        width = ngf * 2 ** (n - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU()]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


register(ZooEntry(
    name="dcgan",
    family="gan",
    paper="Radford, Metz, Chintala, 2015, ICLR 2016",
    factory=DCGANGenerator,
    configs={
        "paper": dict(nz=100, ngf=128, channels=3, image_size=64),
        "tiny": dict(nz=8, ngf=4, channels=3, image_size=16),
    },
    inputs=(Tensor("z", ("batch", "nz", 1, 1)),),
    outputs=(Tensor("image", ("batch", "channels", "image_size", "image_size")),),
    description="DCGAN generator: transposed convs, BatchNorm, ReLU, tanh (64x64 images)",
))
