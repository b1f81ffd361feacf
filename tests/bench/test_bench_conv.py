"""The conv kernel benchmark's CPU-checkable parts: block extraction from the zoo, the torch
and one-block ONNX versions of a block (against the float64 reference), and the CUDA guard."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tritonnx.bench.kernels import conv as bench_conv
from tritonnx.triton_kernels.conv_relu_pool import conv_relu_pool_reference

ort = pytest.importorskip("onnxruntime")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU guard")
def test_needs_cuda():
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        bench_conv.benchmark(dtypes=["fp32"], quick=True)


@pytest.fixture(scope="module")
def blocks():
    return {name: bench_conv.model_blocks(name, config="tiny", cache=False) for name in ("lenet5", "resnet18")}


def test_blocks_cache_in_the_tritonnx_cache_dir(blocks, tmp_path, monkeypatch):
    monkeypatch.setenv("TRITONNX_CACHE_DIR", str(tmp_path))
    assert bench_conv.model_blocks("lenet5", config="tiny") == blocks["lenet5"]
    assert (tmp_path / "bench" / "conv-blocks-lenet5-tiny.json").exists()
    assert bench_conv.model_blocks("lenet5", config="tiny") == blocks["lenet5"]  # from the file


def test_blocks_found(blocks):
    assert [b.attrs["pool"] for b in blocks["lenet5"]] == ["max", "max"]
    res = blocks["resnet18"]
    assert any(b.has_residual for b in res) and res[0].attrs["pool"] == "max"  # stem: conv + relu + maxpool
    assert sum(b.count for b in res) == 9
    assert all(b.label.startswith(b.model + ":") for b in res)


def test_block_three_ways_agree(blocks):
    gen = torch.Generator().manual_seed(0)
    for block in blocks["lenet5"] + blocks["resnet18"]:
        o, cg, kh, kw = block.w_shape
        c, h, w = block.in_chw
        kwargs = bench_conv.kernel_kwargs(block, (h, w))
        x = torch.randn(2, c, h, w, generator=gen)
        wt = torch.randn(o, cg, kh, kw, generator=gen) / (cg * kh * kw) ** 0.5
        b = torch.randn(o, generator=gen) if block.has_bias else None
        r = None
        if block.has_residual:
            conv = torch.nn.functional.conv2d(x, wt, None, kwargs["strides"], kwargs["pads"][:2])
            r = torch.randn(conv.shape, generator=gen)
        ref = conv_relu_pool_reference(x.double(), wt.double(), None if b is None else b.double(),
                                       None if r is None else r.double(), **kwargs)
        got_torch = bench_conv.torch_block(x, wt, b, r, kwargs)
        feeds = {"x": x.numpy()} | ({"r": r.numpy()} if r is not None else {})
        model = bench_conv.onnx_block(block, wt, b, "fp32")
        got_ort = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        scale = float(ref.abs().max())
        assert float((got_torch.double() - ref).abs().max()) <= 1e-5 * scale, block.label
        assert float(np.abs(got_ort - ref.numpy()).max()) <= 1e-5 * scale, block.label


def test_bench_block_rows_on_cpu(blocks, monkeypatch):
    """One block's rows with the timer faked (the real run needs CUDA): every provider runs and agrees."""
    from tritonnx.triton_kernels import conv_relu_pool as crp

    monkeypatch.setattr(bench_conv, "time_cuda", lambda fn: (fn(), (1.0, 0.9, 1.1))[1])
    for block in (blocks["lenet5"][0], next(b for b in blocks["resnet18"] if b.has_residual)):
        rows = bench_conv._bench_block(block, 1, "fp32", torch.float32, torch.device("cpu"), crp, torch)
        assert [r["provider"] for r in rows] == ["tritonnx", "torch", "onnxruntime"]
        for row in rows:
            assert row["median_ms"] == 1.0 and row["max_rel_err"] < 1e-4, row
            assert row["flops"] > 0 and row["bytes"] > 0
