"""Signal ops: HannWindow, HammingWindow, BlackmanWindow, DFT (opsets 17, 20), STFT."""
from __future__ import annotations

import math

import numpy as np
import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import scalar
from tritonnx.runtime.registry import register


def _window(size, output_datatype, periodic, coeffs, ctx):
    n = int(scalar(size))
    denom = n if periodic else n - 1
    dev = getattr(ctx, "device", None) or (size.device if isinstance(size, torch.Tensor) else "cpu")
    k = torch.arange(n, dtype=torch.float64, device=dev)
    w = torch.zeros_like(k)
    for i, c in enumerate(coeffs):
        w = w + c * torch.cos(2 * math.pi * i * k / denom) * (-1) ** i if denom else w + c
    return w.to(dtypes.torch_dtype(output_datatype))


@register("HannWindow", since=17)
def HannWindow(size, *, output_datatype=1, periodic=1, ctx=None):
    """ONNX HannWindow: 0.5 - 0.5 cos(2 pi n / N) (N = size if periodic, else size - 1)."""
    return _window(size, output_datatype, periodic, (0.5, 0.5), ctx)


@register("HammingWindow", since=17)
def HammingWindow(size, *, output_datatype=1, periodic=1, ctx=None):
    """ONNX HammingWindow: 25/46 - 21/46 cos(2 pi n / N)."""
    return _window(size, output_datatype, periodic, (25 / 46, 21 / 46), ctx)


@register("BlackmanWindow", since=17)
def BlackmanWindow(size, *, output_datatype=1, periodic=1, ctx=None):
    """ONNX BlackmanWindow: 0.42 - 0.5 cos(2 pi n / N) + 0.08 cos(4 pi n / N)."""
    return _window(size, output_datatype, periodic, (0.42, 0.5, 0.08), ctx)


def _complex(x: torch.Tensor) -> torch.Tensor:
    """(..., 1 | 2) real or (real, imag) pairs -> a complex tensor (...), complex128 for float64
    input, complex64 otherwise."""
    x = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    if x.shape[-1] == 1:
        return torch.complex(x[..., 0], torch.zeros_like(x[..., 0]))
    if x.shape[-1] == 2:
        return torch.complex(x[..., 0], x[..., 1])
    raise InvalidArgument(f"DFT: the last dimension is {x.shape[-1]}, expected 1 (real) or 2 (complex)")


def _fft(kind: str, x: torch.Tensor, n, dim: int) -> torch.Tensor:
    """torch.fft on the GPU; numpy.fft on the CPU (its single-precision FFT is the one onnx's
    reference results were made with, round-off included)."""
    if x.device.type == "cpu":
        return torch.from_numpy(np.ascontiguousarray(getattr(np.fft, kind)(x.numpy(), n=n, axis=dim)))
    return getattr(torch.fft, kind)(x, n=n, dim=dim)


def _pairs(y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.stack([y.real, y.imag], dim=-1).to(dtype)


def _dft(input, dft_length, axis, inverse, onesided):
    r = input.dim()
    a = axis % r if axis < 0 else axis
    if not 0 < a < r - 1:
        raise InvalidArgument(f"DFT: axis={axis} must name a signal axis of an input of rank {r}")
    x = _complex(input)
    if inverse and onesided:  # the input holds n // 2 + 1 bins of a real signal: irfft
        n = None if dft_length is None else int(scalar(dft_length))
        return _fft("irfft", x, n, a).unsqueeze(-1).to(input.dtype)
    n = x.shape[a] if dft_length is None else int(scalar(dft_length))
    y = _fft("ifft" if inverse else "fft", x, n, a)
    if onesided:
        y = y.narrow(a, 0, n // 2 + 1)
    return _pairs(y, input.dtype)


@register("DFT", since=17, host_inputs=(1,))
def DFT_17(input, dft_length=None, *, axis=1, inverse=0, onesided=0):
    """ONNX DFT (opset 17): along attribute `axis`; ``onesided`` keeps n // 2 + 1 bins."""
    return _dft(input, dft_length, axis, inverse, onesided)


@register("DFT", since=20, host_inputs=(1, 2))
def DFT(input, dft_length=None, axis=None, *, inverse=0, onesided=0):
    """ONNX DFT (opset 20): `axis` as an input (default -2); output (..., 2) real/imag pairs."""
    return _dft(input, dft_length, -2 if axis is None else int(scalar(axis)), inverse, onesided)


@register("STFT", since=17, host_inputs=(1, 3))
def STFT(signal, frame_step, window=None, frame_length=None, *, onesided=1):
    """ONNX STFT: (batch, frames, bins, 2) DFTs of the windowed frames of a (batch, length, 1 | 2) signal."""
    step = int(scalar(frame_step))
    length = int(scalar(frame_length)) if frame_length is not None else int(window.shape[0])
    x = _complex(signal)  # (batch, length)
    frames = x.unfold(1, length, step)  # (batch, frames, length)
    if window is not None:
        frames = frames * window.to(frames.real.dtype)
    y = _fft("fft", frames.contiguous(), None, -1)
    if onesided:
        y = y[..., : length // 2 + 1]
    return _pairs(y, signal.dtype)
