"""Shared helpers of the recurrent tests: single-node ONNX LSTM/GRU/RNN models, onnxruntime runs,
seeded random inputs and the tolerance table (imported by the test_rnn_*.py files)."""
from __future__ import annotations

import numpy as np
import onnx
import tolerances
import torch
from onnx import TensorProto, helper

from tritonnx.triton_kernels import rnn_reference

#: The ops' inputs and outputs in ONNX order and gate counts: the one list, rnn_reference's
#: (its order is checked against onnxruntime by test_rnn_reference.py).
INPUTS, OUTPUTS, GATES = rnn_reference.INPUTS, rnn_reference.OUTPUTS, rnn_reference.GATES

#: Relative-error tolerance (max |a-b| / max |b|) by dtype, against a float64 reference, of the
#: kernels under the interpreter (tests/tolerances.py's kernel table).
TOL = {dt: tolerances.kernel_max_rel(dt, "cpu") for dt in (torch.float64, torch.float32, torch.float16,
                                                            torch.bfloat16)}


def _elem(t: torch.Tensor) -> int:
    return {torch.float32: TensorProto.FLOAT, torch.float64: TensorProto.DOUBLE,
            torch.float16: TensorProto.FLOAT16, torch.int32: TensorProto.INT32}[t.dtype]


def make_model(op: str, feeds: dict, attrs: dict, *, outputs=None, opset: int = 14,
               node_name: str = "rnn0") -> onnx.ModelProto:
    """A one-node model whose graph inputs are the given (non-None) feeds."""
    names = [n if feeds.get(n) is not None else "" for n in INPUTS[op]]
    while names and names[-1] == "":
        names.pop()
    outs = list(outputs or OUTPUTS[op])
    attrs = {"hidden_size": int(feeds["R"].shape[-1]), **attrs}
    node = helper.make_node(op, names, outs, name=node_name, **attrs)
    g_in = [helper.make_tensor_value_info(n, _elem(feeds[n]), list(feeds[n].shape)) for n in names if n]
    g_out = [helper.make_tensor_value_info(n, _elem(feeds["X"]), [None] * (4 if n == "Y" else 3))
             for n in outs if n]
    graph = helper.make_graph([node], "g", g_in, g_out)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def run_ort(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: feeds[n].numpy() for n in names})


def random_inputs(op: str, seq: int, batch: int, inp: int, hidden: int, *, dirs: int = 1,
                  bias: bool = True, lens=None, h0: bool = False, c0: bool = False,
                  peep: bool = False, seed: int = 0, dtype=torch.float32, scale: float = 0.5):
    """Seeded random (never zero) ONNX inputs, layout 0."""
    g = torch.Generator().manual_seed(seed)
    G = GATES[op]

    def rnd(*shape):
        return ((torch.rand(*shape, generator=g, dtype=torch.float64) * 2 - 1) * scale).to(dtype)

    feeds = {
        "X": rnd(seq, batch, inp) * 2,
        "W": rnd(dirs, G * hidden, inp),
        "R": rnd(dirs, G * hidden, hidden),
        "B": rnd(dirs, 2 * G * hidden) if bias else None,
        "sequence_lens": torch.tensor(lens, dtype=torch.int32) if lens is not None else None,
        "initial_h": rnd(dirs, batch, hidden) if h0 else None,
    }
    if op == "LSTM":
        feeds["initial_c"] = rnd(dirs, batch, hidden) if c0 else None
        feeds["P"] = rnd(dirs, 3 * hidden) if peep else None
    return feeds


def rel_err(a, b) -> float:
    a = torch.as_tensor(a).double()
    b = torch.as_tensor(b).double()
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-6)) if b.numel() else 0.0
