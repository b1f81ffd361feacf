"""The GPU paths of the benchmark checked on the CPU (issue 20): one timing stream handed to
onnxruntime (item 3), kernel rows written per block and resumed (item 2), a sticky CUDA error
ending the sweep for a fresh process to resume (item 6), and the lease plan (issue 18)."""
from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench_fakes import FakeZoo, fake_export
from tritonnx.bench import gpu_plan, harness, kernels, report
from tritonnx.bench.harness import BenchSettings, Harness
from tritonnx.bench.kernels import STICKY_EXIT, StickyCudaError, make_row, run_families
from tritonnx.bench.ort import OrtRunner, timing_stream

REPO = Path(__file__).resolve().parents[2]


class _FakeStreams:
    """torch.cuda's stream calls with integer handles (0 = the default stream)."""

    def __init__(self, monkeypatch):
        self.current = self.Stream(handle=0)
        self.made = 0
        fake = self

        monkeypatch.setattr(torch.cuda, "Stream", lambda device=None: fake.new())
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: fake.current)

        @contextlib.contextmanager
        def stream(s):
            prev, fake.current = fake.current, s
            try:
                yield
            finally:
                fake.current = prev

        monkeypatch.setattr(torch.cuda, "stream", stream)

    class Stream:
        def __init__(self, handle):
            self.cuda_stream = handle

        def wait_stream(self, other):
            pass

    def new(self):
        self.made += 1
        return self.Stream(handle=1000 + self.made)


def _cuda_runner():
    runner = OrtRunner.__new__(OrtRunner)  # the CUDA options without a GPU
    runner.notes, runner.device_id, runner.tf32, runner.stream = [], 0, True, None
    return runner


def test_onnxruntime_gets_the_timing_stream(monkeypatch):
    streams = _FakeStreams(monkeypatch)
    harness_stream = None
    with timing_stream(torch.device("cuda")) as s:
        harness_stream = s
        runner = _cuda_runner()
        options = runner._cuda_options(torch, exhaustive=True, cuda_graph=True)
        # what onnxruntime computes on is what do_bench's events are recorded on
        assert options["user_compute_stream"] == str(s.cuda_stream) == str(torch.cuda.current_stream().cuda_stream)
        assert s.cuda_stream != 0 and runner.stream == s.cuda_stream and not runner.note
    assert torch.cuda.current_stream().cuda_stream == 0  # restored
    with timing_stream(torch.device("cuda")) as again:
        assert again is harness_stream and streams.made == 1  # one stream for every row
    default = _cuda_runner()
    assert default._cuda_options(torch, exhaustive=True, cuda_graph=True)["user_compute_stream"] == "0"
    assert "default stream" in default.note


def test_every_row_is_measured_inside_the_timing_stream(tmp_path, monkeypatch):
    inside = []

    @contextlib.contextmanager
    def recording(device):
        inside.append("enter")
        yield None
        inside.append("exit")

    real_time_fn = harness.time_fn

    def time_fn(fn, device, **kw):
        assert inside and inside[-1] == "enter", "timed outside the timing stream"
        return real_time_fn(fn, device, **kw)

    monkeypatch.setattr(harness, "timing_stream", recording)
    monkeypatch.setattr(harness, "time_fn", time_fn)
    zoo = FakeZoo()
    settings = BenchSettings(models=["fake_mlp"], out=tmp_path / "r", config="tiny", batches=[1],
                             dtypes=["fp32"], providers=["onnxruntime", "torch"], quick=True)
    result = Harness(settings, zoo=zoo, export_fn=fake_export(zoo), device="cpu", progress=False,
                     log=lambda m: None).run()
    assert [r["status"] for r in result.rows] == ["ok", "ok"] and inside == ["enter", "exit"] * 2


def test_a_sticky_cuda_error_stops_the_sweep_and_a_fresh_run_resumes(tmp_path, monkeypatch):
    zoo = FakeZoo()
    settings = BenchSettings(models=["fake_mlp"], out=tmp_path / "r", config="tiny", batches=[1, 2, 3],
                             dtypes=["fp32"], providers=["torch"], quick=True)
    real = harness.Harness.run_row

    def run_row(self, plan, deadline=None):
        row = real(self, plan, deadline)
        if plan.batch == 2:
            row.update(status="error", note="RuntimeError: CUDA error: an illegal memory access was encountered")
        return row

    monkeypatch.setattr(harness.Harness, "run_row", run_row)
    monkeypatch.setattr(harness.Harness, "_cuda_broken", lambda self: "AcceleratorError: illegal memory access")
    first = Harness(settings, zoo=zoo, export_fn=fake_export(zoo), device="cpu", progress=False,
                    log=lambda m: None).run()
    assert first.sticky and first.not_run == ["fake_mlp b3 fp32 torch"]
    rows = report.load_rows(settings.out)
    assert [(r["batch"], r["status"]) for r in rows] == [(1, "ok"), (2, "error")]
    assert "sticky CUDA error after this row" in rows[1]["note"]
    monkeypatch.setattr(harness.Harness, "run_row", real)
    monkeypatch.setattr(harness.Harness, "_cuda_broken", lambda self: None)
    second = Harness(settings, zoo=zoo, export_fn=fake_export(zoo), device="cpu", progress=False,
                     log=lambda m: None).run()
    assert not second.sticky and second.ran == 1  # the row after it ran, not recorded as an error
    assert [(r["batch"], r["status"]) for r in report.load_rows(settings.out)] == [(1, "ok"), (2, "error"), (3, "ok")]


def _family(monkeypatch, cases, *, fail_at=None, interrupt_at=None, seen=None):
    import types

    def benchmark(*, dtypes, quick, time_budget=None, done=frozenset(), emit=None):
        rows = []
        for case in cases:
            if (case, "fp16", 1) in done:
                continue
            if seen is not None:
                seen.append(case)
            if case == interrupt_at:
                raise KeyboardInterrupt  # `timeout -s INT` at the family's share
            block = [make_row(family="conv", case=case, dtype="fp16", batch=1, provider=p,
                              timing=None if case == fail_at else (1.0, 0.9, 1.1), note="")
                     for p in ("tritonnx", "torch")]
            kernels.finish_block(block, rows, emit)
        return rows

    module = types.ModuleType("tritonnx.bench.kernels.conv")
    module.benchmark = benchmark
    monkeypatch.setitem(sys.modules, module.__name__, module)


def test_kernel_rows_are_written_per_block_and_a_rerun_resumes(monkeypatch):
    written, seen = [], []
    _family(monkeypatch, ["a", "b", "c"], interrupt_at="c", seen=seen)
    with pytest.raises(KeyboardInterrupt):
        run_families(["conv"], dtypes=["fp16"], quick=True, on_row=written.append)
    assert [(r["case"], r["provider"]) for r in written] == [("a", "tritonnx"), ("a", "torch"),
                                                                 ("b", "tritonnx"), ("b", "torch")]
    assert all(r["device"] == "cpu" for r in written)
    done = frozenset(("conv", r["case"], r["dtype"], r["batch"]) for r in written)
    _family(monkeypatch, ["a", "b", "c"], seen=seen)
    rows, messages = run_families(["conv"], dtypes=["fp16"], quick=True, on_row=written.append, done=done)
    assert seen == ["a", "b", "c", "c"] and [r["case"] for r in rows] == ["c", "c"]


def test_a_block_that_breaks_the_cuda_context_ends_the_family(monkeypatch):
    written = []
    _family(monkeypatch, ["a", "b", "c"], fail_at="b")
    monkeypatch.setattr(kernels.framework, "cuda_broken", lambda: "AcceleratorError: an illegal memory access")
    with pytest.raises(StickyCudaError, match="conv b: sticky CUDA error"):
        run_families(["conv"], dtypes=["fp16"], quick=True, on_row=written.append)
    assert [r["case"] for r in written] == ["a", "a", "b", "b"]  # the culprit recorded, c retried later


def test_a_family_stopped_by_its_budget_is_partial(monkeypatch):
    import time
    import types

    def benchmark(*, dtypes, quick, time_budget=None):
        time.sleep(0.05)  # past its budget: it stopped before its last case
        return []

    module = types.ModuleType("tritonnx.bench.kernels.rnn")
    module.benchmark = benchmark
    monkeypatch.setitem(sys.modules, module.__name__, module)
    partial: list = []
    _, messages = run_families(["rnn"], dtypes=["fp16"], quick=True, time_budget=0.01, partial=partial)
    assert partial == ["rnn"] and "partial" in messages[0]
    _, messages = run_families(["rnn"], dtypes=["fp16"], quick=True, time_budget=0.0, partial=partial)
    assert messages == ["rnn: not run: time budget spent"] and partial == ["rnn", "rnn"]
    _, messages = run_families(["rnn"], dtypes=["fp16"], quick=True, time_budget=None, partial=partial)
    assert messages == ["rnn: 0 rows"] and len(partial) == 2


def test_cuda_broken_reports_the_sticky_error(monkeypatch):
    assert kernels.cuda_broken() is None  # no CUDA here
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def sync():
        raise RuntimeError("CUDA error: an illegal memory access was encountered\nCUDA kernel errors ...")

    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    assert kernels.cuda_broken() == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert STICKY_EXIT == 75


def test_the_plan_fits_and_names_real_steps():
    out = subprocess.run(["bash", str(REPO / "bench" / "on_gpu.sh"), "--plan"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}, timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert gpu_plan.plan_seconds() <= gpu_plan.LIMIT_S and f"total: ~{gpu_plan.plan_seconds()} s" in text
    commands = [ln.split("command: ")[1] for ln in text.splitlines() if "command: " in ln]
    assert len(commands) == len(gpu_plan.CALLS) == 6
    script = (REPO / "bench" / "on_gpu.sh").read_text()
    known = script.split('ALL_STEPS="')[1].split('"')[0].split(",")
    for command in commands:
        steps = command.split("--steps ")[1].split()[0].split(",")
        assert set(steps) <= set(known), steps
    first = commands[0].split("--steps ")[1].split()[0].split(",")
    assert first.index("barrier") < first.index("graphs") < first.index("smoke") < first.index("kernels") \
        < first.index("models") < first.index("gather")
    last = commands[-1].split("--steps ")[1].split()[0].split(",")
    assert last.index("ort") < last.index("models-ort") < last.index("models-fp32") < last.index("compile")
    assert [c.carry[0] for c in gpu_plan.CALLS[1:]] == [f".ortparts/part-0{i}" for i in range(5)]
    for later, _ in gpu_plan.LATER_STEPS:
        assert later in known and later in text
    # every call's payload printed and within the limit; the lease's preparation named first
    assert text.count(" of 64.0 MiB: fits") == len(gpu_plan.CALLS) and "DOES NOT FIT" not in text
    assert text.splitlines()[0].startswith("before the lease, here: bench/prepare_triton_cache.sh")


def test_each_call_carries_what_fits_and_returns_at_most_8_files(tmp_path):
    """Measured here: the tree as the device copies it (git ls-files -co --exclude-standard), each
    carried path where it is prepared, else its expected size; call 1 carries the prebuilt cache."""
    assert gpu_plan.CALLS[0].carry == (".triton-cache",) and "cache" in gpu_plan.CALLS[0].steps.split(",")
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"], capture_output=True,
                            text=True, check=True).stdout.split()
    sizes = gpu_plan.payload(REPO)
    assert sizes[0]["tree"] == sum((REPO / n).lstat().st_size for n in listed if (REPO / n).exists())
    for call, p in zip(gpu_plan.CALLS, sizes):
        assert p["fits"] and p["total"] <= 64 * 2**20 and [c for c, _, _ in p["carry"]] == list(call.carry)
        for carried, size, measured in p["carry"]:
            if not measured:
                assert size == gpu_plan.expected_bytes(carried) > 0 or carried.endswith(".sha256")
    script = (REPO / "bench" / "on_gpu.sh").read_text()
    copied = script.split("for f in table.md")[1].split(";")[0].split()
    assert ("summary.txt", "state.tgz", "table.md", *copied) == gpu_plan.RETURNED
    assert len(gpu_plan.RETURNED) <= gpu_plan.RETURN_FILES
    # a cache that grew past the limit: the plan says so and exits 1
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("x\n")
    (repo / ".gitignore").write_text("/.triton-cache/\n")
    (repo / ".triton-cache" / "ab").mkdir(parents=True)
    with open(repo / ".triton-cache" / "ab" / "k.cubin", "wb") as f:
        f.truncate(64 * 2**20)  # sparse: its size, not its disk
    big = gpu_plan.payload(repo)
    assert not big[0]["fits"] and big[0]["tree"] == len("x\n") + len("/.triton-cache/\n")
    assert all(p["fits"] for p in big[1:])
    assert gpu_plan.main(["plan", "--repo", str(repo)]) == 1


def test_phases_put_a_cnn_and_a_recurrent_model_first_and_list_what_did_not_run(tmp_path):
    import tritonnx.zoo

    sweep = gpu_plan.sweep(gpu_plan.PHASES[0], dry_run=False)
    assert sweep.models[:2] == ["lenet5", "char_lstm"] and sorted(sweep.models) == sorted(tritonnx.zoo.names())
    assert sweep.dtypes == ["fp16"] and sweep.batches == [1, 64] and sweep.config == "paper"
    assert sweep.providers == ["tritonnx", "tritonnx-unfused", "torch"]
    assert [p.name for p in gpu_plan.PHASES] == ["models", "models-ort", "models-fp32", "compile"]
    assert gpu_plan.PHASES[-1].providers == ("torch.compile",) and gpu_plan.PHASES[-1].per_row_cap
    first = gpu_plan.planned_rows(sweep)[:6]
    assert [(r.model, r.batch, r.provider) for r in first] == [
        ("lenet5", 1, "tritonnx"), ("lenet5", 1, "tritonnx-unfused"), ("lenet5", 1, "torch"),
        ("lenet5", 64, "tritonnx"), ("lenet5", 64, "tritonnx-unfused"), ("lenet5", 64, "torch")]
    out = tmp_path / "results"
    out.mkdir()
    report.append_row(out, {"model": "mlp", "config": "tiny", "batch": 1, "dtype": "fp32", "provider": "torch",
                            "status": "ok"})
    missing = gpu_plan.not_run(out, dry_run=True)
    assert "not run: mlp b1 fp32 tritonnx (models)" in missing
    assert not any(line.startswith("not run: mlp b1 fp32 torch (") for line in missing)  # the row that ran
    assert gpu_plan.main(["not-run", str(out), "--dry-run"]) == 0
    assert (out / "not_run.txt").read_text().splitlines() == missing


def test_a_tritonnx_row_note_names_captures_fallbacks_and_compiles(monkeypatch):
    """Issue 20, items 4 and 5: a failed capture is in the row (not only a warning), and so are the
    row's Triton compiles and cache hits (the counts since the provider's `prepare`)."""
    import types

    from tritonnx.bench import providers, triton_cache

    reason = "RuntimeError: operation not permitted when stream is capturing"
    executor = types.SimpleNamespace(graph_backend=object(), captured_signatures={("x", (2, 4)): 1},
                                     graph_fallbacks={("x", (3, 4)): reason, ("x", (5, 4)): reason})
    provider = providers.TritonnxProvider()
    provider._note, provider._session, provider._compiles0 = "fused: 2 of 2", types.SimpleNamespace(
        _executor=executor), (1, 2)
    monkeypatch.setattr(triton_cache, "count_compiles", lambda: (4, 9))
    assert provider.note() == (f"fused: 2 of 2; cuda graphs: 1 captured; EAGER FALLBACK (capture failed): {reason}; "
                               "triton: 7 compiles, 3 from the cache")
    executor.graph_backend = None  # eager session (CPU): no graph part; no compile: no triton part
    monkeypatch.setattr(triton_cache, "count_compiles", lambda: (1, 2))
    assert provider.note() == "fused: 2 of 2"
