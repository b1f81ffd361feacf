"""Sequence and optional values: SequenceConstruct/At/Insert/Erase/Length/Empty,
SplitToSequence, ConcatFromSequence, Optional, OptionalHasElement, OptionalGetElement.

A sequence is a `SequenceValue` (a list of tensors; a new one per op: values are never mutated),
an optional is its value or ``None`` when empty.
"""
from __future__ import annotations

import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime.ops._common import ints, norm_axis, scalar
from tritonnx.runtime.registry import register
from tritonnx.runtime.subgraph import SequenceValue


def _sequence(value, op: str, what: str = "input_sequence") -> list:
    if not isinstance(value, list):
        raise InvalidArgument(f"{op}: {what} must be a sequence, got {type(value).__name__}")
    return value


def _position(position, length: int, op: str, *, insert: bool = False) -> int:
    """A possibly negative position in [-n, n-1] ([-n, n] when inserting) as an index."""
    pos = int(scalar(position))
    high = length if insert else length - 1
    if not -length <= pos <= high:
        raise InvalidArgument(f"{op}: position {pos} is out of range for a sequence of {length} "
                              f"element(s) (allowed: {-length}..{high})")
    return pos + length if pos < 0 else pos


def _device(ctx):
    return torch.device(ctx.device) if ctx is not None else torch.device("cpu")


@register("SequenceEmpty", since=11)
def SequenceEmpty(*, dtype=None):
    """ONNX SequenceEmpty: an empty sequence."""
    return SequenceValue()


@register("SequenceConstruct", since=11)
def SequenceConstruct(*inputs):
    """ONNX SequenceConstruct: the inputs, in order, as a sequence (they share one dtype)."""
    if len({t.dtype for t in inputs}) > 1:
        raise InvalidArgument(f"SequenceConstruct: inputs of different dtypes {sorted({str(t.dtype) for t in inputs})}")
    return SequenceValue(inputs)


@register("SequenceAt", since=11, host_inputs=(1,))
def SequenceAt(input_sequence, position):
    """ONNX SequenceAt: the tensor at `position` (negative counts from the back)."""
    seq = _sequence(input_sequence, "SequenceAt")
    return seq[_position(position, len(seq), "SequenceAt")]


@register("SequenceInsert", since=11, host_inputs=(2,))
def SequenceInsert(input_sequence, tensor, position=None):
    """ONNX SequenceInsert: a new sequence with `tensor` inserted at `position` (default: the back)."""
    seq = SequenceValue(_sequence(input_sequence, "SequenceInsert"))
    if seq and seq[0].dtype != tensor.dtype:
        raise InvalidArgument(f"SequenceInsert: tensor of dtype {tensor.dtype} into a sequence of {seq[0].dtype}")
    pos = len(seq) if position is None else _position(position, len(seq), "SequenceInsert", insert=True)
    seq.insert(pos, tensor)
    return seq


@register("SequenceErase", since=11, host_inputs=(1,))
def SequenceErase(input_sequence, position=None):
    """ONNX SequenceErase: a new sequence without the tensor at `position` (default: the last)."""
    seq = SequenceValue(_sequence(input_sequence, "SequenceErase"))
    if not seq:
        raise InvalidArgument("SequenceErase: the sequence is empty")
    pos = len(seq) - 1 if position is None else _position(position, len(seq), "SequenceErase")
    del seq[pos]
    return seq


@register("SequenceLength", since=11)
def SequenceLength(input_sequence, *, ctx=None):
    """ONNX SequenceLength: the number of tensors, an int64 scalar."""
    return torch.tensor(len(_sequence(input_sequence, "SequenceLength")), dtype=torch.int64, device=_device(ctx))


@register("SplitToSequence", since=11, host_inputs=(1,))
def SplitToSequence(input, split=None, *, axis=0, keepdims=1):
    """ONNX SplitToSequence: `input` split along `axis` into a sequence: by the sizes in `split`
    (1-D), in chunks of `split` (scalar, the last one smaller), or (no `split`) into pieces of
    one, squeezed unless `keepdims`."""
    ax = norm_axis(axis, input.dim(), "SplitToSequence")
    if split is None:
        pieces = torch.split(input, 1, dim=ax)
        return SequenceValue(pieces if keepdims else (p.squeeze(ax) for p in pieces))
    if split.dim() == 0:
        size = int(split.item())
        if size <= 0:
            raise InvalidArgument(f"SplitToSequence: split={size}, expected a positive size")
        return SequenceValue(torch.split(input, size, dim=ax))
    sizes = ints(split)
    if sum(sizes) != input.shape[ax] or any(s < 0 for s in sizes):
        raise InvalidArgument(f"SplitToSequence: split sizes {sizes} do not add up to the input's "
                              f"dimension {input.shape[ax]} along axis {axis}")
    return SequenceValue(torch.split(input, sizes, dim=ax))


@register("ConcatFromSequence", since=11)
def ConcatFromSequence(input_sequence, *, axis, new_axis=0):
    """ONNX ConcatFromSequence: the tensors concatenated along `axis` (stacked along a new
    `axis` when `new_axis`)."""
    seq = _sequence(input_sequence, "ConcatFromSequence")
    if not seq:
        raise InvalidArgument("ConcatFromSequence: the sequence is empty")
    rank = seq[0].dim() + (1 if new_axis else 0)
    ax = norm_axis(axis, rank, "ConcatFromSequence")
    return torch.stack(seq, dim=ax) if new_axis else torch.cat(seq, dim=ax)


@register("Optional", since=15)
def Optional(input=None, *, type=None):
    """ONNX Optional: `input` as an optional (``None``: an empty one of the given `type`)."""
    if input is None and type is None:
        raise InvalidArgument("Optional: without an input, the 'type' attribute is required")
    return input


@register("OptionalHasElement", since=15)
def OptionalHasElement(input=None, *, ctx=None):
    """ONNX OptionalHasElement: whether the optional holds a value (a bool scalar); no input
    (18+) counts as empty."""
    return torch.tensor(input is not None, device=_device(ctx))


@register("OptionalGetElement", since=15)
def OptionalGetElement(input=None):
    """ONNX OptionalGetElement: the optional's value (18+: a tensor or sequence passes through)."""
    if input is None:
        raise InvalidArgument("OptionalGetElement: the optional is empty")
    return input
