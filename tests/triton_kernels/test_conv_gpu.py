"""The conv kernel on a real GPU (`pytest -m gpu`): zoo-sized blocks, every autotune config,
every dtype, channels-last and NCHW inputs, against the float64 reference."""
from __future__ import annotations

import pytest
import tolerances
import torch

from tritonnx.triton_kernels.conv_relu_pool import conv_configs, conv_relu_pool, conv_relu_pool_reference

pytestmark = pytest.mark.gpu

DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# (N, C, H, W, O, K, conv kwargs, epilogue kwargs): VGG, the ResNet stem, a residual block, GoogLeNet 1x1
BLOCKS = {
    "vgg-3x3-max2": (2, 64, 56, 56, 128, 3, dict(pads=(1, 1, 1, 1)), dict(pool="max", pool_kernel=(2, 2))),
    "stem-7x7s2-max3s2": (2, 3, 224, 224, 64, 7, dict(strides=(2, 2), pads=(3, 3, 3, 3)),
                          dict(pool="max", pool_kernel=(3, 3), pool_strides=(2, 2), pool_pads=(1, 1, 1, 1))),
    "alexnet-11x11s4": (2, 3, 227, 227, 96, 11, dict(strides=(4, 4)), dict()),
    "resnet-res": (2, 128, 28, 28, 128, 3, dict(pads=(1, 1, 1, 1)), dict(residual=True)),
    "googlenet-1x1-avg": (2, 480, 14, 14, 192, 1, dict(),
                          dict(pool="avg", pool_kernel=(3, 3), pool_strides=(1, 1), pool_pads=(1, 1, 1, 1))),
}


def _run(name, dtype_name, *, config=None, channels_last=True):
    n, c, h, w, o, k, conv_kw, epi = BLOCKS[name]
    epi = dict(epi)
    gen = torch.Generator().manual_seed(0)
    dt = DTYPES[dtype_name]
    x = torch.randn(n, c, h, w, generator=gen).to(dt)
    wt = (torch.randn(o, c, k, k, generator=gen) / (c * k * k) ** 0.5).to(dt)
    b = torch.randn(o, generator=gen).to(dt)
    r = None
    if epi.pop("residual", False):
        r = torch.randn(n, o, h, w, generator=gen).to(dt)
    ref = conv_relu_pool_reference(x.double(), wt.double(), b.double(), None if r is None else r.double(),
                                   activation="relu", **conv_kw, **epi)
    xd = x.cuda()
    if channels_last:
        xd = xd.contiguous(memory_format=torch.channels_last)
    out = torch.full(ref.shape, float("nan"), dtype=dt, device="cuda")
    y = conv_relu_pool(xd, wt.cuda(), b.cuda(), None if r is None else r.cuda(), activation="relu", out=out,
                       allow_tf32=dtype_name == "tf32", config=config, **conv_kw, **epi)
    torch.cuda.synchronize()
    assert not torch.isnan(y).any()
    err = (y.double().cpu() - ref).abs().max().item() / ref.abs().max().item()
    assert err <= tolerances.kernel_max_rel(dtype_name, "cuda", tf32=dtype_name == "tf32"), \
        f"{name} {dtype_name} {config}: {err:.3g}"


@pytest.mark.parametrize("dtype_name", list(DTYPES))
@pytest.mark.parametrize("name", list(BLOCKS))
def test_blocks_autotuned(name, dtype_name):
    _run(name, dtype_name)


@pytest.mark.parametrize("config", conv_configs(interpret=False), ids=str)
def test_every_config(config):
    _run("vgg-3x3-max2", "fp16", config=config)
    _run("stem-7x7s2-max3s2", "bf16", config=config)


def test_nchw_input():
    _run("vgg-3x3-max2", "fp16", channels_last=False)
