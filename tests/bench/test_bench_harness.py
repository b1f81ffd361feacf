import json

import onnx
import pytest
import torch

from bench_fakes import bench_args, fake_export
from tritonnx.bench import report
from tritonnx.bench.harness import BenchSettings, Harness, order_models, plan_rows
from tritonnx.bench.providers import CPU_DEFAULT_PROVIDERS, parse_providers
from tritonnx.commands import bench as bench_cmd
from tritonnx.errors import InvalidArgument

PROVIDERS = ["onnxruntime", "torch"]


def _settings(tmp_path, **kw):
    args = dict(models=["fake_mlp"], out=tmp_path / "res", config="tiny", batches=[1, 3],
                dtypes=["fp32"], providers=PROVIDERS, quick=True)
    args.update(kw)
    return BenchSettings(**args)


def _run(settings, zoo):
    return Harness(settings, zoo=zoo, export_fn=fake_export(zoo), device="cpu", progress=False,
                   log=lambda msg: None).run()


def test_provider_selection_and_order():
    assert parse_providers(None, on_gpu=False) == list(CPU_DEFAULT_PROVIDERS)
    assert "torch.compile" not in CPU_DEFAULT_PROVIDERS
    assert parse_providers(None, on_gpu=True)[-1] == "torch.compile"
    assert parse_providers("torch.compile,torch,tritonnx", on_gpu=True) == ["tritonnx", "torch", "torch.compile"]
    with pytest.raises(InvalidArgument, match="tritonnx-unfused"):
        parse_providers("tensorrt", on_gpu=True)


def test_model_order_and_plan():
    known = ["mlp", "resnet18", "lenet5", "char_lstm", "vgg16"]
    assert order_models(["all"], known) == ["lenet5", "vgg16", "resnet18", "char_lstm", "mlp"]
    with pytest.raises(InvalidArgument, match="nosuch"):
        order_models(["nosuch"], known)
    s = BenchSettings(models=["a", "b"], out=None, batches=[1, 64], dtypes=["fp16", "fp32"],
                      providers=["tritonnx", "onnxruntime", "torch.compile"])
    labels = [p.label() for p in plan_rows(s)]
    assert labels[:3] == ["a b1 fp16 tritonnx", "a b1 fp16 onnxruntime", "a b64 fp16 tritonnx"]
    assert all("torch.compile" in x for x in labels[-8:]) and len(labels) == 24


def test_sweep_rows_agreement_and_files(tmp_path, fake_zoo):
    result = _run(_settings(tmp_path, providers=PROVIDERS + ["tritonnx"]), fake_zoo)
    rows = {(r["batch"], r["provider"]): r for r in result.rows}
    assert len(rows) == 6 and result.not_run == []
    for batch in (1, 3):
        ort, eager = rows[batch, "onnxruntime"], rows[batch, "torch"]
        assert ort["status"] == eager["status"] == "ok"
        assert ort["speedup_vs_ort"] == 1.0 and eager["max_rel_err"] < 1e-5
        assert eager["timing"] == "cpu-wall" and eager["roofline"] is None
        assert eager["flops"] == 2 * batch * (8 * 16 + 16 * 4) + batch * (16 + 16 + 4)
        assert eager["input_shapes"] == {"input": [batch, 8]}
        assert rows[batch, "tritonnx"]["status"] in ("ok", "missing")
    assert fake_zoo.exports == 1  # one ONNX file for every provider and batch
    for name in (report.ROWS_FILE, report.ENV_FILE, report.TABLE_MD, report.TABLE_CSV, report.RESULTS_FILE):
        assert (result.out / name).exists()
    env = json.loads((result.out / report.ENV_FILE).read_text())
    assert env["device"] == "cpu" and env["torch"] == torch.__version__ and "commit" in env


def test_each_exported_file_is_parsed_once_for_all_its_batches(tmp_path, fake_zoo, monkeypatch):
    loads = []
    real_load = onnx.load
    monkeypatch.setattr(onnx, "load", lambda *a, **kw: loads.append(a[0]) or real_load(*a, **kw))
    result = _run(_settings(tmp_path, batches=[1, 2, 3], providers=["torch"]), fake_zoo)
    assert all(r["status"] == "ok" and r["flops"] for r in result.rows)
    assert len(loads) == 1  # inputs and the cost count of every batch come from one parse


def test_the_torch_module_is_built_once_per_model_and_each_row_gets_its_own_copy(tmp_path, fake_zoo, monkeypatch):
    entry = fake_zoo.get("fake_mlp")
    built, modules = [], []
    real_build = type(entry).build
    monkeypatch.setattr(type(entry), "build", lambda self, *a, **kw: built.append(1) or real_build(self, *a, **kw))
    harness = Harness(_settings(tmp_path, batches=[1, 2, 3], providers=["torch"]), zoo=fake_zoo,
                      export_fn=fake_export(fake_zoo), device="cpu", progress=False, log=lambda msg: None)
    real_module = harness._module
    monkeypatch.setattr(harness, "_module", lambda model: modules.append(real_module(model)) or modules[-1])
    result = harness.run()
    assert all(r["status"] == "ok" and r["max_rel_err"] < 1e-5 for r in result.rows)
    assert len(built) == 2  # the export's, then one for the three torch rows (was one per row)
    assert len(modules) == 3 and len({id(m) for m in modules}) == 3

def test_fp16_rows_use_an_fp16_model(tmp_path, fake_zoo):
    result = _run(_settings(tmp_path, dtypes=["fp16"], batches=[2]), fake_zoo)
    ort = next(r for r in result.rows if r["provider"] == "onnxruntime")
    assert ort["status"] == "ok" and "fp16" in ort["reference"]
    assert (tmp_path / "res" / "models" / "fake_mlp_tiny_fp16.onnx").exists()


def test_resume_redoes_nothing_and_budget_lists_what_did_not_run(tmp_path, fake_zoo):
    s = _settings(tmp_path, time_budget=1e-9)
    first = _run(s, fake_zoo)
    assert first.ran == 0 and len(first.not_run) == 4  # the budget is checked before each row
    assert first.not_run[0] == "fake_mlp b1 fp32 onnxruntime"
    assert json.loads((s.out / report.RESULTS_FILE).read_text())["not_run"] == first.not_run
    s.time_budget = None
    second = _run(s, fake_zoo)
    assert second.ran == 4 and second.not_run == []
    third = _run(s, fake_zoo)
    assert third.ran == 0 and len(third.rows) == 4
    env = json.loads((s.out / report.ENV_FILE).read_text())
    assert len(env["commands"]) == 3


def test_result_set_of_another_device_is_refused(tmp_path, fake_zoo):
    s = _settings(tmp_path)
    s.out.mkdir(parents=True)
    (s.out / report.ENV_FILE).write_text(json.dumps({"device": "NVIDIA H100 80GB HBM3"}))
    with pytest.raises(InvalidArgument, match="one result set per device"):
        _run(s, fake_zoo)


def test_failures_are_visible_rows(tmp_path, fake_zoo):
    result = _run(_settings(tmp_path, models=["broken", "fake_mlp"], batches=[1]), fake_zoo)
    broken = [r for r in result.rows if r["model"] == "broken"]
    assert [r["status"] for r in broken] == ["error", "error"]
    assert broken[0]["note"] == "export failed: RuntimeError: cannot export 'broken'"
    assert all(r["status"] == "ok" for r in result.rows if r["model"] == "fake_mlp")
    assert "ERROR: export failed" in report.render(result.rows)


def test_cli_defaults_per_machine(tmp_path):
    known = ["mlp", "lenet5", "char_lstm", "vgg16"]  # a CPU default missing from the zoo is left out
    cpu = bench_cmd.settings_from_args(bench_args(out=str(tmp_path)), on_gpu=False, known_models=known)
    assert (cpu.config, cpu.batches, cpu.dtypes) == ("tiny", [1], ["fp32"])
    assert cpu.models == ["mlp", "lenet5", "char_lstm"] and "torch.compile" not in cpu.providers
    gpu = bench_cmd.settings_from_args(bench_args(), on_gpu=True, known_models=known)
    assert (gpu.config, gpu.batches, gpu.dtypes) == ("paper", [1, 64], ["fp16", "fp32"])
    assert gpu.models == ["lenet5", "vgg16", "char_lstm", "mlp"] and gpu.providers[-1] == "torch.compile"
    assert gpu.out.parent.name == "bench-results"


@pytest.mark.parametrize("kw, match", [
    (dict(batch="1,x"), "integers"), (dict(batch="0"), "positive"), (dict(dtype="int8"), "fp32, fp16, bf16"),
    (dict(dtype="bf16"), "kernel dtype"), (dict(resume="/nonexistent/dir"), "no such result folder"),
    (dict(models="lenet5,nosuch"), "nosuch"), (dict(time_budget=-1.0), "positive"),
])
def test_cli_bad_arguments(kw, match):
    with pytest.raises(InvalidArgument, match=match):
        bench_cmd.settings_from_args(bench_args(**kw), on_gpu=False, known_models=["lenet5"])


def test_kernels_without_gpu_say_so(tmp_path, capsys):
    from tritonnx.cli import main

    assert main(["bench", "--kernel-bench", "conv,rnn", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "conv:" in err and "rnn:" in err
    assert main(["bench", "--kernel-bench", "nosuch", "--out", str(tmp_path)]) == 2
    # DESIGN.md's spelling: --kernels with family names is --kernel-bench
    assert main(["bench", "--kernels", "conv,rnn", "--out", str(tmp_path / "k")]) == 0
    err = capsys.readouterr().err
    assert "conv:" in err and "rnn:" in err
    assert main(["bench", "--kernels", "conv", "--kernel-bench", "rnn", "--out", str(tmp_path)]) == 2


def test_cli_end_to_end_with_the_real_zoo(tmp_path, capsys):
    """`tritonnx bench` as `make bench` runs it, on the smallest zoo model: real export, runtime
    and onnxruntime; JSON on stdout."""
    from tritonnx.cli import main

    out = tmp_path / "res"
    rc = main(["bench", "--models", "mlp", "--providers", "tritonnx,onnxruntime,torch", "--out", str(out),
               "--format", "json", "--no-progress"])
    assert rc == 0
    printed = json.loads(capsys.readouterr().out)
    rows = {r["provider"]: r for r in printed["rows"]}
    assert set(rows) == {"tritonnx", "onnxruntime", "torch"}
    assert rows["onnxruntime"]["status"] == "ok" and rows["torch"]["max_rel_err"] < 1e-4
    assert rows["tritonnx"]["status"] == "ok", rows["tritonnx"]["note"]
    assert rows["tritonnx"]["max_rel_err"] < 1e-4 and rows["tritonnx"]["config"] == "tiny"
    assert (out / "models" / "mlp_tiny_fp32.onnx").exists()
    mine = rows["tritonnx"]  # host overhead: host = wall - ops of one profiled run, per step = host / steps
    assert mine["planned"] is True and mine["steps"] >= 2 and mine["profiled_wall_ms"] > 0
    assert mine["host_ms"] == pytest.approx(mine["profiled_wall_ms"] - mine["ops_ms"], abs=1e-9)
    assert 0 <= mine["ops_ms"] <= mine["profiled_wall_ms"]
    assert mine["host_us_step"] == pytest.approx(mine["host_ms"] * 1e3 / mine["steps"])
    assert rows["onnxruntime"]["host_ms"] is None and rows["torch"]["steps"] is None
    header = (out / report.TABLE_CSV).read_text().splitlines()[0].split(",")
    assert {"host_ms", "steps", "host_us_step", "planned"} <= set(header)
    assert "host µs/step" in (out / report.TABLE_MD).read_text()
    table = report.render(printed["rows"], "table")
    assert "host µs/step" in table and max(map(len, table.splitlines())) <= report.WIDTH


def test_resume_retries_rows_of_a_missing_provider(tmp_path, fake_zoo, monkeypatch):
    from tritonnx.bench import providers

    s = _settings(tmp_path, batches=[1])
    monkeypatch.setattr(providers.TorchProvider, "missing", lambda self, device: "no torch today")
    first = _run(s, fake_zoo)
    assert {r["provider"]: r["status"] for r in first.rows} == {"onnxruntime": "ok", "torch": "missing"}
    monkeypatch.undo()
    second = _run(s, fake_zoo)
    assert second.ran == 1
    assert {r["provider"]: r["status"] for r in second.rows} == {"onnxruntime": "ok", "torch": "ok"}


def test_interrupt_keeps_finished_rows_and_writes_the_files(tmp_path, fake_zoo, monkeypatch):
    from tritonnx.bench import providers

    def interrupted(self, work):
        raise KeyboardInterrupt

    monkeypatch.setattr(providers.TorchProvider, "prepare", interrupted)
    s = _settings(tmp_path, batches=[1])
    with pytest.raises(KeyboardInterrupt):
        _run(s, fake_zoo)
    results = json.loads((s.out / report.RESULTS_FILE).read_text())
    assert [r["provider"] for r in results["rows"]] == ["onnxruntime"]
    assert results["not_run"] == ["fake_mlp b1 fp32 torch"]


def test_a_row_killed_twice_is_recorded_as_an_error_not_retried_forever(tmp_path, fake_zoo, monkeypatch):
    """A row that hangs (killed by the time cap) is tried once more, then recorded, so that
    `--resume` calls on a lent GPU are not all spent on it."""
    from tritonnx.bench import harness, providers

    def interrupted(self, work):
        raise KeyboardInterrupt

    s = _settings(tmp_path, batches=[1])
    monkeypatch.setattr(providers.TorchProvider, "prepare", interrupted)
    for attempt in (1, 2):
        with pytest.raises(KeyboardInterrupt):
            _run(s, fake_zoo)
        marker = json.loads((s.out / harness.INFLIGHT_FILE).read_text())
        assert marker == {"key": ["fake_mlp", "tiny", 1, "fp32", "torch"], "attempts": attempt}
    monkeypatch.undo()
    third = _run(s, fake_zoo)
    assert third.ran == 0 and not third.not_run
    rows = {r["provider"]: r for r in third.rows}
    assert rows["onnxruntime"]["status"] == "ok"
    assert rows["torch"]["status"] == "error" and "killed while running, 2 times" in rows["torch"]["note"]
    assert not (s.out / harness.INFLIGHT_FILE).exists()


def test_a_row_killed_once_runs_again_first(tmp_path, fake_zoo, monkeypatch):
    from tritonnx.bench import harness, providers

    def interrupted(self, work):
        raise KeyboardInterrupt

    s = _settings(tmp_path, batches=[1])
    monkeypatch.setattr(providers.TorchProvider, "prepare", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(s, fake_zoo)
    monkeypatch.undo()
    second = _run(s, fake_zoo)
    assert second.ran == 1
    assert {r["provider"]: r["status"] for r in second.rows} == {"onnxruntime": "ok", "torch": "ok"}
    assert not (s.out / harness.INFLIGHT_FILE).exists()


def test_cli_help_names_the_cpu_models():
    from tritonnx.bench.harness import CPU_DEFAULT_MODELS
    from tritonnx.cli import build_parser

    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["bench"].format_help().split())
    assert ",".join(CPU_DEFAULT_MODELS) in help_text


def test_cpu_sessions_run_the_triton_kernels_without_touching_the_environment(monkeypatch):
    import os

    monkeypatch.delenv("TRITONNX_KERNELS", raising=False)
    cpu = bench_cmd.settings_from_args(bench_args(), on_gpu=False, known_models=["mlp"])
    assert cpu.kernels == "triton" and "TRITONNX_KERNELS" not in os.environ
    monkeypatch.setenv("TRITONNX_KERNELS", "torch")
    assert bench_cmd.settings_from_args(bench_args(), on_gpu=False, known_models=["mlp"]).kernels is None
    assert bench_cmd.settings_from_args(bench_args(), on_gpu=True, known_models=["mlp"]).kernels is None
