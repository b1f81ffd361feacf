"""Control flow: If, Loop, Scan (every opset; Scan 8's batched form apart) and SequenceMap.

Their subgraphs arrive lowered (`tritonnx.runtime.subgraph.Subgraph`), with the values they
read from the enclosing scopes after the node's own inputs (``num_inputs`` and ``outer`` say
where). A condition or trip count that is a host tensor (computed from shapes, or a small
constant) is read without a device sync; one on the device costs one sync per read (once per
If, once per Loop iteration). A value carried from one iteration to the next, and every
output, is placed on the session's device.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from tritonnx.errors import InvalidArgument
from tritonnx.runtime import dtypes
from tritonnx.runtime.registry import register
from tritonnx.runtime.subgraph import SequenceValue, Subgraph, scope_of, to_device


def _device(ctx) -> torch.device:
    return torch.device(ctx.device) if ctx is not None else torch.device("cpu")


def _truth(value, op: str, what: str) -> bool:
    """A one-element boolean tensor as a Python bool (a device tensor: one sync)."""
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidArgument(f"{op}: {what} must be a tensor of one element, got {shape}")
    return bool(value.reshape(()).item())


def _count(value, op: str, what: str) -> int:
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        shape = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidArgument(f"{op}: {what} must be a tensor of one element, got {shape}")
    return int(value.reshape(()).item())


def _empty_scan_output(body: Subgraph, index: int, device, op: str) -> torch.Tensor:
    """A scan output of zero iterations: shape [0, per-iteration dims known statically]."""
    out = body.output_types[index]
    if out is None or not out.HasField("tensor_type"):
        raise InvalidArgument(f"{op}: zero iterations, and body output {body.output_names[index]!r} "
                              "declares no tensor type to build its empty scan output from")
    tt = out.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim] if tt.HasField("shape") else []
    return torch.empty([0, *dims], dtype=dtypes.torch_dtype(tt.elem_type), device=device)


@register("If", since=1, host_inputs=(0,))
def If(*values, then_branch: Subgraph, else_branch: Subgraph, num_inputs: int = 1,
       outer: Sequence[str] = (), ctx=None):
    """ONNX If: run `then_branch` when `cond` is true, else `else_branch`; their outputs."""
    own, scope = scope_of(values, num_inputs, outer)
    branch = then_branch if _truth(own[0], "If", "cond") else else_branch
    device = _device(ctx)
    return tuple(to_device(v, device) for v in branch.run([], scope))


@register("Loop", since=1, host_inputs=(0, 1))
def Loop(*values, body: Subgraph, num_inputs: int = 2, outer: Sequence[str] = (), ctx=None):
    """ONNX Loop: run `body` while the trip count (``M``, absent: unbounded) and the condition
    (``cond``, absent: true) allow; outputs: the final loop-carried values, then each scan
    output stacked along a new first axis."""
    own, scope = scope_of(values, num_inputs, outer)
    trip_count, cond, carried = own[0], own[1], list(own[2:])
    device = _device(ctx)
    max_trip = None if trip_count is None else _count(trip_count, "Loop", "M (trip count)")
    keep_going = True if cond is None else _truth(cond, "Loop", "cond")
    n_carried = len(carried)
    n_scan = len(body.output_names) - 1 - n_carried
    if n_scan < 0 or len(body.input_names) != 2 + n_carried:
        raise InvalidArgument(f"Loop: {n_carried} loop-carried input(s), but the body has "
                              f"{len(body.input_names)} inputs and {len(body.output_names)} outputs "
                              f"(expected {2 + n_carried} inputs and at least {1 + n_carried} outputs)")
    carried = [to_device(v, device) for v in carried]
    scans: list[list[torch.Tensor]] = [[] for _ in range(n_scan)]
    i = 0
    while keep_going and (max_trip is None or i < max_trip):
        outs = body.run([torch.tensor(i, dtype=torch.int64), torch.tensor(keep_going)] + carried, scope)
        keep_going = _truth(outs[0], "Loop", "the body's condition output")
        carried = [to_device(v, device) for v in outs[1:1 + n_carried]]
        for acc, value in zip(scans, outs[1 + n_carried:]):
            acc.append(to_device(value, device))
        i += 1
    stacked = [torch.stack(acc) if acc else _empty_scan_output(body, 1 + n_carried + k, device, "Loop")
               for k, acc in enumerate(scans)]
    return tuple(carried + stacked)


@register("Scan", since=9)
def Scan(*values, body: Subgraph, num_scan_inputs: int, scan_input_axes=None, scan_input_directions=None,
         scan_output_axes=None, scan_output_directions=None, num_inputs: int = 1,
         outer: Sequence[str] = (), ctx=None):
    """ONNX Scan (9+): `body` run once per slice of the scan inputs along their axes, the states
    carried; outputs: the final states, then the scan outputs stacked along their axes."""
    own, scope = scope_of(values, num_inputs, outer)
    device = _device(ctx)
    n_state = len(own) - num_scan_inputs
    if n_state < 0:
        raise InvalidArgument(f"Scan: num_scan_inputs={num_scan_inputs} but the node has {len(own)} inputs")
    states = [to_device(v, device) for v in own[:n_state]]
    xs = [to_device(v, device) for v in own[n_state:]]
    in_axes = [a % x.dim() if x.dim() else a for a, x in zip(scan_input_axes or [0] * len(xs), xs)]
    in_dirs = list(scan_input_directions or [0] * len(xs))
    n_scan_out = len(body.output_names) - n_state
    out_axes = list(scan_output_axes or [0] * n_scan_out)
    out_dirs = list(scan_output_directions or [0] * n_scan_out)
    lengths = {x.shape[a] for x, a in zip(xs, in_axes)}
    if len(lengths) > 1:
        raise InvalidArgument(f"Scan: the scan inputs have different lengths along their scan axes: "
                              f"{[x.shape[a] for x, a in zip(xs, in_axes)]}")
    steps = lengths.pop() if lengths else 0
    accs: list[list[torch.Tensor]] = [[] for _ in range(n_scan_out)]
    for t in range(steps):
        slices = [x.select(a, steps - 1 - t if d else t) for x, a, d in zip(xs, in_axes, in_dirs)]
        outs = body.run(states + slices, scope)
        states = [to_device(v, device) for v in outs[:n_state]]
        for acc, value in zip(accs, outs[n_state:]):
            acc.append(to_device(value, device))
    results = []
    for k, (acc, axis, direction) in enumerate(zip(accs, out_axes, out_dirs)):
        if not acc:
            results.append(_empty_scan_output(body, n_state + k, device, "Scan"))
            continue
        if direction:
            acc = acc[::-1]
        rank = acc[0].dim() + 1
        results.append(torch.stack(acc, dim=axis % rank))
    return tuple(states + results)


@register("Scan", since=8, host_inputs=(0,))
def Scan8(*values, body: Subgraph, num_scan_inputs: int, directions=None, num_inputs: int = 1,
          outer: Sequence[str] = (), ctx=None):
    """ONNX Scan 8: batched (axis 0 of every state and scan input), scanned along axis 1, with
    optional per-batch ``sequence_lens`` (scan outputs past a sequence's length are zero)."""
    own, scope = scope_of(values, num_inputs, outer)
    device = _device(ctx)
    seq_lens, rest = own[0], own[1:]
    n_state = len(rest) - num_scan_inputs
    if n_state < 0:
        raise InvalidArgument(f"Scan: num_scan_inputs={num_scan_inputs} but the node has {len(rest)} "
                              "inputs after sequence_lens")
    states = [to_device(v, device) for v in rest[:n_state]]
    xs = [to_device(v, device) for v in rest[n_state:]]
    dirs = list(directions or [0] * len(xs))
    batch = (states or xs)[0].shape[0]
    steps = xs[0].shape[1] if xs else 0
    lens = [steps] * batch if seq_lens is None else [int(v) for v in seq_lens.reshape(-1).tolist()]
    final_states: list[list[torch.Tensor]] = [[] for _ in range(n_state)]
    n_scan_out = len(body.output_names) - n_state
    per_batch: list[list[torch.Tensor]] = [[] for _ in range(n_scan_out)]
    for b in range(batch):
        st = [s[b] for s in states]
        accs: list[list[torch.Tensor]] = [[] for _ in range(n_scan_out)]
        length = lens[b]
        for t in range(length):
            slices = [x[b].select(0, length - 1 - t if d else t) for x, d in zip(xs, dirs)]
            outs = body.run(st + slices, scope)
            st = [to_device(v, device) for v in outs[:n_state]]
            for acc, value in zip(accs, outs[n_state:]):
                acc.append(to_device(value, device))
        for k, s in enumerate(st):
            final_states[k].append(s)
        for k, acc in enumerate(accs):
            if acc:
                out = torch.stack(acc)
                if length < steps:
                    out = torch.cat([out, out.new_zeros((steps - length, *out.shape[1:]))])
            else:
                out = _empty_scan_output(body, n_state + k, device, "Scan")
            per_batch[k].append(out)
    return tuple([torch.stack(s) for s in final_states] + [torch.stack(p) for p in per_batch])


@register("SequenceMap", since=17)
def SequenceMap(*values, body: Subgraph, num_inputs: int = 1, outer: Sequence[str] = (), ctx=None):
    """ONNX SequenceMap: `body` applied to each position of the input sequence(s) (a tensor
    input is passed whole every time); one output sequence per body output."""
    own, scope = scope_of(values, num_inputs, outer)
    device = _device(ctx)
    first = own[0]
    if not isinstance(first, list):
        raise InvalidArgument(f"SequenceMap: input_sequence must be a sequence, got {type(first).__name__}")
    for k, extra in enumerate(own[1:], start=1):
        if isinstance(extra, list) and len(extra) != len(first):
            raise InvalidArgument(f"SequenceMap: input {k} is a sequence of {len(extra)} elements, "
                                  f"the input sequence has {len(first)}")
    results = [SequenceValue() for _ in body.output_names]
    for i in range(len(first)):
        args = [first[i]] + [extra[i] if isinstance(extra, list) else extra for extra in own[1:]]
        for acc, value in zip(results, body.run(args, scope)):
            acc.append(to_device(value, device))
    return tuple(results)
