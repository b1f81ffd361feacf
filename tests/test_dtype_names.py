"""The one dtype-name table (tritonnx/dtype_names.py) and its readers agree."""
import pytest
import torch

from tritonnx import dtype_names
from tritonnx.bench import devices
from tritonnx.errors import InvalidArgument
from tritonnx.export import normalize_dtype
from tritonnx.triton_kernels import catalog


@pytest.mark.parametrize("spelling", sorted(dtype_names.ALIASES))
def test_every_spelling_means_the_same_everywhere(spelling):
    name = dtype_names.ALIASES[spelling]
    assert dtype_names.canonical(spelling.upper()) == name
    assert devices.canonical_dtype(spelling) == name
    assert catalog.canonical_dtype(spelling) == name
    if name != "bf16":
        assert normalize_dtype(spelling) == name
    assert dtype_names.torch_dtype(spelling) == {"fp32": torch.float32, "fp16": torch.float16,
                                                 "bf16": torch.bfloat16}[name]


def test_unknown_name_lists_the_spellings():
    with pytest.raises(InvalidArgument, match="fp32, fp16, bf16.*float32"):
        dtype_names.canonical("int8")


def test_of_torch_is_torch_dtype_reversed():
    for name in dtype_names.NAMES:
        assert dtype_names.of_torch(dtype_names.torch_dtype(name)) == name
    assert dtype_names.of_torch(torch.float64) is None
