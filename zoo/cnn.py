"""Convolutional classifiers: LeNet-5, AlexNet, VGG-16, GoogLeNet, ResNet-18.

Every model takes `input[batch, channels, size, size]` (fp32) and returns `logits[batch,
classes]`. Pools use explicit padding where the papers' sizes need it (never `ceil_mode`),
and the tiny configs keep each net's op structure (LRN, overlapping 3x3/2 pools, inception
branches with a 3x3/1 pad-1 pool, the ResNet stem, BatchNorm, residual adds) at small sizes.
"""
from __future__ import annotations

import torch
from torch import nn

from .registry import Tensor, ZooEntry, register


class _LRNFunction(torch.autograd.Function):
    """`F.local_response_norm` whose ONNX export is the one LRN node (not its decomposition)."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        if x.dtype in (torch.float16, torch.bfloat16) and x.device.type == "cpu":
            return nn.functional.local_response_norm(x.float(), size, alpha, beta, k).to(x.dtype)
        return nn.functional.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class LRN(nn.LocalResponseNorm):
    """Local response normalisation across channels, b = a / (k + alpha/n * sum a^2)^beta
    (the paper's alpha is per element; torch's and ONNX's alpha is divided by n); exports as
    ONNX LRN."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


def _conv_relu(cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, pad), nn.ReLU()]


def _classifier(width: int, fc: tuple[int, ...], num_classes: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    for h in fc:
        layers += [nn.Linear(width, h), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def _pooled(size: int, k: int, s: int, pad: int = 0) -> int:
    return (size + 2 * pad - k) // s + 1


class LeNet5(nn.Module):
    """LeCun et al. 1998: (conv 5x5 -> ReLU -> max-pool 2x2) twice, then three FC layers.

    The modern reading of LeNet-5: ReLU and max-pooling for the paper's scaled tanh and
    trainable subsampling, full connections in C3.
    """

    def __init__(self, in_channels: int, image_size: int, channels: tuple[int, int], fc: tuple[int, ...], num_classes: int):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            *_conv_relu(in_channels, c1, 5), nn.MaxPool2d(2, 2),
            *_conv_relu(c1, c2, 5), nn.MaxPool2d(2, 2),
        )
        size = ((image_size - 4) // 2 - 4) // 2
        self.classifier = _classifier(c2 * size * size, fc, num_classes, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class AlexNet(nn.Module):
    """Krizhevsky et al. 2012, single-tower (no 2-GPU grouping): 11x11/4 conv, LRN, 3x3/2 pools.

    `channels` are the five conv widths, `fc` the two hidden FC widths.
    """

    def __init__(self, in_channels: int, image_size: int, channels: tuple[int, ...], fc: tuple[int, int], num_classes: int, dropout: float = 0.5):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
        self.features = nn.Sequential(
            *_conv_relu(in_channels, c1, 11, 4, 2), LRN(**lrn), nn.MaxPool2d(3, 2),
            *_conv_relu(c1, c2, 5, 1, 2), LRN(**lrn), nn.MaxPool2d(3, 2),
            *_conv_relu(c2, c3, 3, 1, 1),
            *_conv_relu(c3, c4, 3, 1, 1),
            *_conv_relu(c4, c5, 3, 1, 1), nn.MaxPool2d(3, 2),
        )
        size = _pooled(_pooled(_pooled((image_size + 4 - 11) // 4 + 1, 3, 2), 3, 2), 3, 2)
        self.classifier = _classifier(c5 * size * size, fc, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class VGG(nn.Module):
    """Simonyan & Zisserman 2014: 3x3/1 pad-1 convs with ReLU, 2x2/2 max-pools ("M" in `layers`)."""

    def __init__(self, in_channels: int, image_size: int, layers: tuple[int | str, ...], fc: tuple[int, int], num_classes: int, dropout: float = 0.5):
        super().__init__()
        mods: list[nn.Module] = []
        width, size = in_channels, image_size
        for item in layers:
            if item == "M":
                mods.append(nn.MaxPool2d(2, 2))
                size //= 2
            else:
                mods += _conv_relu(width, int(item), 3, 1, 1)
                width = int(item)
        self.features = nn.Sequential(*mods)
        self.classifier = _classifier(width * size * size, fc, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class Inception(nn.Module):
    """Inception v1 module: 1x1 | 1x1->3x3 | 1x1->5x5 | 3x3/1 pad-1 max-pool->1x1, concatenated.

    `widths` = (1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj), Table 1 of the paper.
    """

    def __init__(self, cin: int, widths: tuple[int, int, int, int, int, int]):
        super().__init__()
        c1, c3r, c3, c5r, c5, pp = widths
        self.b1 = nn.Sequential(*_conv_relu(cin, c1, 1))
        self.b3 = nn.Sequential(*_conv_relu(cin, c3r, 1), *_conv_relu(c3r, c3, 3, 1, 1))
        self.b5 = nn.Sequential(*_conv_relu(cin, c5r, 1), *_conv_relu(c5r, c5, 5, 1, 2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), *_conv_relu(cin, pp, 1))
        self.out_channels = c1 + c3 + c5 + pp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


class GoogLeNet(nn.Module):
    """Szegedy et al. 2015 (no auxiliary classifiers: inference graph).

    Stem: conv 7x7/2 -> 3x3/2 pool -> LRN -> conv 1x1 -> conv 3x3 -> LRN -> 3x3/2 pool; then
    `stages` (tuples of inception widths) with a 3x3/2 pool between stages; global average
    pool, dropout, linear. `features()` (the pooled trunk, `[batch, out_channels]`) is what the
    captioner uses as its image encoder.
    """

    def __init__(self, in_channels: int, image_size: int, stem: tuple[int, int, int], stages: tuple[tuple[tuple[int, ...], ...], ...], num_classes: int, dropout: float = 0.4):
        super().__init__()
        s1, s2, s3 = stem
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
        self.stem = nn.Sequential(
            *_conv_relu(in_channels, s1, 7, 2, 3), nn.MaxPool2d(3, 2, 1), LRN(**lrn),
            *_conv_relu(s1, s2, 1), *_conv_relu(s2, s3, 3, 1, 1), LRN(**lrn),
            nn.MaxPool2d(3, 2, 1),
        )
        blocks: list[nn.Module] = []
        width = s3
        for i, stage in enumerate(stages):
            if i:
                blocks.append(nn.MaxPool2d(3, 2, 1))
            for widths in stage:
                block = Inception(width, tuple(widths))
                blocks.append(block)
                width = block.out_channels
        self.inception = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = width
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.inception(self.stem(x))), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


class BasicBlock(nn.Module):
    """3x3 conv-BN-ReLU, 3x3 conv-BN, + shortcut (1x1/stride conv-BN when the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.shortcut is None else self.shortcut(x)))


class ResNet(nn.Module):
    """He et al. 2016: stem conv 7x7/2-BN-ReLU + 3x3/2 pad-1 max-pool, four stages of basic
    blocks (the first block of stages 2-4 strides 2), global average pool, linear."""

    def __init__(self, in_channels: int, image_size: int, widths: tuple[int, int, int, int], blocks: tuple[int, int, int, int], num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
        )
        layers: list[nn.Module] = []
        cin = widths[0]
        for i, (w, n) in enumerate(zip(widths, blocks)):
            for j in range(n):
                layers.append(BasicBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _image_entry(name: str, paper: str, factory, paper_cfg: dict, tiny_cfg: dict, description: str) -> ZooEntry:
    return register(ZooEntry(
        name=name,
        family="cnn",
        paper=paper,
        factory=factory,
        configs={"paper": paper_cfg, "tiny": tiny_cfg},
        inputs=(Tensor("input", ("batch", "in_channels", "image_size", "image_size")),),
        outputs=(Tensor("logits", ("batch", "num_classes")),),
        description=description,
    ))


_image_entry(
    "lenet5", "LeCun, Bottou, Bengio, Haffner, 1998, Proc. IEEE", LeNet5,
    dict(in_channels=1, image_size=32, channels=(6, 16), fc=(120, 84), num_classes=10),
    dict(in_channels=1, image_size=20, channels=(4, 8), fc=(16, 12), num_classes=10),
    "conv 5x5-ReLU-maxpool 2x2 twice, FC 120-84-10",
)

_image_entry(
    "alexnet", "Krizhevsky, Sutskever, Hinton, 2012, NeurIPS", AlexNet,
    dict(in_channels=3, image_size=224, channels=(96, 256, 384, 384, 256), fc=(4096, 4096), num_classes=1000),
    dict(in_channels=3, image_size=63, channels=(8, 16, 16, 16, 8), fc=(32, 32), num_classes=10),
    "11x11/4 conv, LRN, overlapping 3x3/2 max-pools, 5 convs, 3 FC",
)

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_VGG16_TINY = (4, 4, "M", 8, 8, "M", 8, 8, 8, "M", 16, 16, 16, "M", 16, 16, 16, "M")
_image_entry(
    "vgg16", "Simonyan, Zisserman, 2014, ICLR 2015", VGG,
    dict(in_channels=3, image_size=224, layers=_VGG16, fc=(4096, 4096), num_classes=1000),
    dict(in_channels=3, image_size=32, layers=_VGG16_TINY, fc=(32, 32), num_classes=10),
    "13 conv 3x3 + ReLU, 5 max-pools 2x2, 3 FC (configuration D)",
)

GOOGLENET_STAGES = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)
_GOOGLENET_TINY_STAGES = (
    ((4, 4, 8, 2, 4, 4), (8, 4, 8, 2, 4, 4)),
    ((8, 4, 8, 2, 4, 4),),
    ((8, 8, 8, 2, 4, 4),),
)
_image_entry(
    "googlenet", "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich, 2015, CVPR", GoogLeNet,
    dict(in_channels=3, image_size=224, stem=(64, 64, 192), stages=GOOGLENET_STAGES, num_classes=1000),
    dict(in_channels=3, image_size=32, stem=(8, 8, 16), stages=_GOOGLENET_TINY_STAGES, num_classes=10),
    "Inception v1: 1x1 | 3x3 | 5x5 | 3x3/1 pool branches, LRN stem, global average pool",
)

_image_entry(
    "resnet18", "He, Zhang, Ren, Sun, 2016, CVPR", ResNet,
    dict(in_channels=3, image_size=224, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), num_classes=1000),
    dict(in_channels=3, image_size=32, widths=(4, 8, 8, 16), blocks=(1, 1, 1, 1), num_classes=10),
    "7x7/2 stem + 3x3/2 max-pool, basic blocks with BatchNorm and residual adds",
)
