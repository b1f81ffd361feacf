"""MelWeightMatrix (opset 17): the triangular mel filter bank, computed on the host from its
scalar inputs (as onnx's reference and onnxruntime do it, integer bin edges included) and put on
the session's device."""
from __future__ import annotations

import numpy as np

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes
from tritonnx.runtime.ops._common import scalar
from tritonnx.runtime.registry import register


@register("MelWeightMatrix", since=17, host_inputs=(0, 1, 2, 3, 4))
def MelWeightMatrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz, *,
                    output_datatype=1, ctx=None):
    """ONNX MelWeightMatrix -> [dft_length // 2 + 1, num_mel_bins] of `output_datatype`."""
    bins, length, rate = int(scalar(num_mel_bins)), int(scalar(dft_length)), int(scalar(sample_rate))
    low, high = float(scalar(lower_edge_hertz)), float(scalar(upper_edge_hertz))
    if bins <= 0 or length <= 0 or rate <= 0 or not 0 <= low < high:
        raise InvalidArgument(f"MelWeightMatrix: num_mel_bins={bins}, dft_length={length}, sample_rate={rate}, "
                              f"edges {low}..{high}: expected positive sizes and 0 <= lower < upper")
    points = np.arange(bins + 2)
    low_mel = 2595 * np.log1p(low / 700) / np.log(10)
    high_mel = 2595 * np.log1p(high / 700) / np.log(10)
    hertz = 700 * np.expm1((points * (high_mel - low_mel) / points.size + low_mel) / 2595 * np.log(10))
    edges = (((length + 1) * hertz) // rate).astype(np.int64)
    out = np.zeros((length // 2 + 1, bins))
    for i in range(bins):
        left, center, right = edges[i], edges[i + 1], edges[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            j = np.arange(left, center + 1)
            out[j, i] = (j - left) / (center - left)
        if right > center:
            j = np.arange(center, right)
            out[j, i] = (right - j) / (right - center)
    dtype = dtypes.ONNX_TO_TORCH.get(int(output_datatype))
    if dtype is None:
        raise InvalidArgument(f"MelWeightMatrix: output_datatype={output_datatype} is no supported type")
    return dtypes.from_numpy(out, ctx.device if ctx is not None else "cpu").to(dtype)
