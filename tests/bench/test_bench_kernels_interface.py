"""Contract 6: `bench/kernels/<family>.py` modules and how `tritonnx bench --kernel-bench` runs them."""
import sys
import types

import pytest

from tritonnx.bench import kernels
from tritonnx.bench.kernels import ROW_KEYS, Budget, make_row, run_families


def _family(monkeypatch, name, benchmark):
    module = types.ModuleType(f"tritonnx.bench.kernels.{name}")
    module.benchmark = benchmark
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_rows_get_device_and_roofline(monkeypatch):
    seen = {}

    def benchmark(*, dtypes, quick, time_budget=None):
        seen.update(dtypes=dtypes, quick=quick, time_budget=time_budget)
        return [make_row(family="conv", case="lenet5.conv1", dtype="float16", batch=64, provider="tritonnx",
                         timing=(1.0, 0.9, 1.1), max_rel_err=1e-3, flops=1e9, bytes=1e6, note="BLOCK_M=64")]

    _family(monkeypatch, "conv", benchmark)
    rows, messages = run_families(["conv"], dtypes=["fp16"], quick=True, time_budget=100.0)
    assert seen["dtypes"] == ["fp16"] and seen["quick"] is True and 0 < seen["time_budget"] <= 100.0
    (row,) = rows
    assert set(ROW_KEYS) <= set(row) and row["dtype"] == "fp16" and row["device"] == "cpu"
    assert row["roofline"] is None  # the CPU has no roofline
    assert messages == ["conv: 1 rows"]


def test_no_gpu_and_missing_family_are_messages(monkeypatch):
    def needs_gpu(*, dtypes, quick, time_budget=None):
        kernels.require_cuda()
        return []

    _family(monkeypatch, "conv", needs_gpu)
    monkeypatch.setitem(sys.modules, "tritonnx.bench.kernels.rnn", None)  # import fails
    rows, messages = run_families(["conv", "rnn"], dtypes=["fp32"], quick=True)
    assert rows == []
    assert messages[0] == "conv: skipped: no GPU" and messages[1].startswith("rnn: not available")


def test_bad_rows_and_names_are_refused(monkeypatch):
    _family(monkeypatch, "conv", lambda **kw: [{"family": "conv"}])
    with pytest.raises(ValueError, match="lacks keys"):
        run_families(["conv"], dtypes=["fp32"], quick=True)
    with pytest.raises(ValueError, match="provider"):
        make_row(family="conv", case="c", dtype="fp32", batch=1, provider="cudnn")
    with pytest.raises(ValueError, match="unknown kernel family"):
        kernels.load_family("attention")


def test_budget():
    assert not Budget(None).spent() and Budget(0.0).spent()
