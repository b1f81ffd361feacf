"""Fakes for the bench harness's own tests: a two-model zoo and an exporter that writes the
ONNX graph by hand, so the harness is tested without the real zoo, exporter or GPU.

A uniquely named helper module (not conftest.py), so ``from bench_fakes import ...`` cannot
pick up another folder's conftest."""
from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

IN, HIDDEN, OUT = 8, 16, 4


class TinyMLP(torch.nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.fc1 = torch.nn.Linear(IN, HIDDEN)
        self.fc2 = torch.nn.Linear(HIDDEN, OUT)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


@dataclass
class FakeEntry:
    name: str
    family: str = "mlp"
    paper: str = "Nobody, 2024, Tests"
    input_names: tuple = ("input",)
    output_names: tuple = ("logits",)
    is_sequence: bool = False

    def build(self, config="paper", *, seed=0, state_dict=None):
        return TinyMLP(seed).eval()

    def example_inputs(self, config="tiny", *, batch=1, seq_len=None, seed=0):
        gen = torch.Generator().manual_seed(seed + 1)
        return (torch.randn(batch, IN, generator=gen),)

    def param_count(self, config):
        return sum(p.numel() for p in self.build(config).parameters())


class FakeZoo:
    """`names()` / `get()` like tritonnx.zoo; "broken" fails to export."""

    def __init__(self):
        self.entries = {n: FakeEntry(n) for n in ("fake_mlp", "broken")}
        self.exports = 0

    def names(self):
        return list(self.entries)

    def get(self, name):
        return self.entries[name]


def fake_export(zoo: FakeZoo):
    def export(name, path, *, config="paper", dtype="fp32", opset=18, verify=True, seed=0):
        zoo.exports += 1
        if name == "broken":
            raise RuntimeError("cannot export 'broken'")
        module = zoo.get(name).build(config, seed=seed)
        np_dtype = np.float16 if dtype == "fp16" else np.float32
        elem = TensorProto.FLOAT16 if dtype == "fp16" else TensorProto.FLOAT
        inits = [numpy_helper.from_array(p.detach().numpy().astype(np_dtype), n)
                 for n, p in [("w1", module.fc1.weight), ("b1", module.fc1.bias),
                              ("w2", module.fc2.weight), ("b2", module.fc2.bias)]]
        nodes = [
            helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], transB=1),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1),
        ]
        graph = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("input", elem, ["N", IN])],
            [helper.make_tensor_value_info("logits", elem, ["N", OUT])], inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return export


def bench_args(**kw) -> argparse.Namespace:
    """`tritonnx bench`'s parsed arguments at their defaults, with `kw` given."""
    base = dict(models=None, config=None, batch=None, dtype=None, providers=None, out=None, resume=None,
                time_budget=None, format="table", kernels=None, kernel_bench=None, quick=False, seq_len=None,
                seed=0, opset=18, no_tf32=False, no_progress=True, shapes=None, feeds=None, compare=None,
                wide=False)
    base.update(kw)
    return argparse.Namespace(**base)
