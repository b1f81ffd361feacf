"""`tritonnx bench` on ONNX files (trtexec's --shapes, random feeds in range, --feeds), the timing
rules, what env.json says, the readable outputs and `--compare`."""
import csv
import io
import json
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from bench_fakes import FakeZoo, fake_export
from tritonnx.bench import environment, feeds, report, stats
from tritonnx.bench.harness import BenchSettings, FileModel, Harness
from tritonnx.cli import main
from tritonnx.errors import InvalidArgument

VOCAB = 11


def _token_model(path, vocab=VOCAB):
    """tokens[batch, seq] int64 -> Unsqueeze -> Squeeze -> Gather(emb[vocab, 4]) -> Relu."""
    emb = numpy_helper.from_array(np.random.default_rng(0).standard_normal((vocab, 4)).astype(np.float32), "emb")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    nodes = [helper.make_node("Unsqueeze", ["tokens", "axes"], ["u"]),
             helper.make_node("Squeeze", ["u", "axes"], ["ids"]),
             helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("Relu", ["e"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])], [emb, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    save(model, str(path))
    return model


# feeds ---------------------------------------------------------------------------------------
def test_parse_shapes_in_trtexecs_syntax():
    assert feeds.parse_shapes("input:8x3x224x224,tokens:8x32") == {"input": [8, 3, 224, 224], "tokens": [8, 32]}
    assert feeds.parse_shapes("a:b:2x3,scalar:") == {"a:b": [2, 3], "scalar": []}
    for bad in ("input", "input:8x", "input:8,3", ":8"):
        with pytest.raises(InvalidArgument, match="NAME:DxDx"):
            feeds.parse_shapes(bad)


def test_token_ids_stay_inside_the_embedding_table(tmp_path):
    model = _token_model(tmp_path / "t.onnx")
    assert feeds.index_ranges(model) == {"tokens": (VOCAB, "embedding 'emb': 11 rows")}
    values, sources = feeds.random_feeds(model, shapes={"tokens": [4, 500]}, seed=3)
    assert values["tokens"].dtype == np.int64 and values["tokens"].shape == (4, 500)
    assert values["tokens"].min() >= 0 and values["tokens"].max() == VOCAB - 1
    assert sources["tokens"].startswith("random ids 0..10")
    with pytest.raises(InvalidArgument, match=r"symbolic dimension\(s\) seq: give its shape, e.g. --shapes tokens:2xN"):
        feeds.random_feeds(model, batch=2)
    assert feeds.random_feeds(model, batch=2, dims={"seq": 5})[0]["tokens"].shape == (2, 5)


def test_metadata_vocab_size_bounds_ids_the_graph_does_not(tmp_path):
    graph = helper.make_graph([helper.make_node("Identity", ["ids"], ["y"])], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT32, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {"vocab_size": "3"})
    values, sources = feeds.random_feeds(model, seed=0)
    assert values["ids"].max() <= 2 and "metadata vocab_size=3" in sources["ids"]


def test_fixed_dims_are_checked_against_shapes(tmp_path):
    model = _token_model(tmp_path / "t.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 7
    with pytest.raises(InvalidArgument, match="dimension 1 is fixed at 7 in the model, got 8"):
        feeds.random_feeds(model, shapes={"tokens": [2, 8]})
    assert feeds.fixed_batch(model, {}) is None and feeds.fixed_batch(model, {"tokens": [3, 7]}) == 3


def test_a_dimension_name_shared_by_inputs_takes_the_value_shapes_or_feeds_give():
    # tokens[batch, seq] int64 and bias[batch, 4]: --shapes tokens:4x9 makes bias [4, 4] (was [1, 4],
    # the bench row labelled batch 1).
    graph = helper.make_graph(
        [helper.make_node("Cast", ["tokens"], ["t"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["t"], ["s"], keepdims=1), helper.make_node("Add", ["s", "bias"], ["y"])],
        "g", [helper.make_tensor_value_info("tokens", TensorProto.INT64, ["batch", "seq"]),
              helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    values, _ = feeds.random_feeds(model, shapes={"tokens": [4, 9]}, batch=1, seed=0)
    assert values["tokens"].shape == (4, 9) and values["bias"].shape == (4, 4)
    assert feeds.fixed_batch(model, {"tokens": [4, 9]}) == 4 and feeds.fixed_batch(model, {}) is None
    real = {"tokens": np.ones((2, 7), np.int64)}
    values, sources = feeds.random_feeds(model, batch=1, seed=0, given=real)
    assert values["bias"].shape == (2, 4) and sources["tokens"] == "file"
    assert feeds.fixed_batch(model, {}, real) == 2
    values, _ = feeds.random_feeds(model, shapes={"tokens": [4, 9]}, dims={"batch": 3}, seed=0)
    assert values["bias"].shape == (3, 4)  # an explicit --dim wins


# statistics ----------------------------------------------------------------------------------
@pytest.mark.parametrize("q, n", [(0.5, 1), (0.9, 10), (0.99, 100), (0.2, 5), (0.8, 5), (0.999, 1000)])
def test_percentile_needs_enough_samples(q, n):
    assert stats.percentile_min_n(q) == n
    assert stats.supported_quantile([1.0] * (n - 1), q) is None if n > 1 else True
    assert stats.supported_quantile([1.0] * n, q) == 1.0


def test_outliers_are_counted_not_dropped():
    xs = [1.0] * 20 + [1.1] * 20 + [50.0]
    t = stats.Timing.from_samples(xs, "cpu-wall")
    assert t.outliers == 1 and t.n == 41 and t.max_ms == 50.0 and t.mean_ms > 2.0
    row = t.as_row()
    assert row["n"] == 41 and row["p99_ms"] is None and row["p90_ms"] is not None and len(row["samples_ms"]) == 41


def test_measure_stops_at_samples_or_time_whichever_first():
    calls = []
    t = stats.measure(lambda: calls.append(1), None, warmup=2, min_samples=7, min_time=60.0)
    assert (t.n, t.stop, len(calls)) == (7, "samples", 9)
    import time

    t = stats.measure(lambda: time.sleep(0.02), None, warmup=0, min_samples=10_000, min_time=0.05)
    assert t.stop == "time" and 2 <= t.n < 10 and t.measured_s >= 0.05
    assert t.rule == {"warmup": 0, "min_samples": 10_000, "min_time_s": 0.05}


# the harness on files ------------------------------------------------------------------------
def test_a_file_gets_every_provider_row_and_torch_rows_say_why_not(tmp_path):
    path = tmp_path / "tok.onnx"
    _token_model(path)
    s = BenchSettings(models=["tok.onnx"], out=tmp_path / "res", batches=[2, 3], dtypes=["fp32"],
                      providers=["tritonnx", "onnxruntime", "torch"], quick=True, shapes={},
                      files={"tok.onnx": FileModel("tok.onnx", path, "fp32", (5,), str(path), ("tokens",))})
    s.shapes = {"tokens": [5, 9]}
    result = Harness(s, device="cpu", progress=False, log=lambda m: None).run()
    rows = {r["provider"]: r for r in result.rows}
    assert set(rows) == {"tritonnx", "onnxruntime", "torch"}
    assert rows["torch"]["status"] == "missing" and "an ONNX file has no torch module" in rows["torch"]["note"]
    for name in ("tritonnx", "onnxruntime"):
        row = rows[name]
        assert row["status"] == "ok", row["note"]
        assert (row["config"], row["batch"], row["input_shapes"]) == ("file", 5, {"tokens": [5, 9]})
        assert row["timing"] == "cpu-wall" and row["n"] >= 1 and row["source"] == str(path)
    assert rows["tritonnx"]["max_rel_err"] == 0.0 and rows["tritonnx"]["kernels"] in ("triton", "torch")
    env = json.loads((result.out / report.ENV_FILE).read_text())
    assert env["tf32"] is None and env["interpreter"] is False  # a CPU, and no fused node ran
    assert env["kernels"] == rows["tritonnx"]["kernels"] and env["sampling"]["min_samples"] >= 1


def test_torch_kernels_chosen_by_the_user_give_no_provider_warning(tmp_path):
    import warnings

    path = tmp_path / "tok.onnx"
    _token_model(path)
    s = BenchSettings(models=["tok.onnx"], out=tmp_path / "res", batches=[2], dtypes=["fp32"],
                      providers=["tritonnx"], quick=True, shapes={"tokens": [2, 3]}, kernels="torch",
                      files={"tok.onnx": FileModel("tok.onnx", path, "fp32", (2,), str(path), ("tokens",))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # was "Specified provider 'TritonExecutionProvider' cannot run here"
        result = Harness(s, device="cpu", progress=False, log=lambda m: None).run()
    assert [(r["status"], r["kernels"]) for r in result.rows] == [("ok", "torch")]


def test_cli_bench_on_a_file_and_a_zoo_name(tmp_path, capsys):
    path = tmp_path / "tok.onnx"
    _token_model(path)
    np.savez(tmp_path / "real.npz", tokens=np.array([[1, 2, 3]], np.int64))
    out = tmp_path / "res"
    assert main(["bench", "--models", f"{path},mlp", "--providers", "tritonnx,onnxruntime,torch",
                 "--feeds", str(tmp_path / "real.npz"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    rows = json.loads((out / report.RESULTS_FILE).read_text())["rows"]
    keys = {(r["model"], r["provider"]): r for r in rows}
    assert keys["tok.onnx", "tritonnx"]["input_shapes"] == {"tokens": [1, 3]}  # the real feeds
    assert keys["tok.onnx", "torch"]["status"] == "missing" and keys["mlp", "torch"]["status"] == "ok"
    assert all(len(line) <= report.WIDTH for line in printed.out.splitlines())
    assert "[1/6] tok.onnx b1 fp32 tritonnx: median" in printed.err  # not a terminal: a line per row
    table_csv = list(csv.DictReader(io.StringIO((out / report.TABLE_CSV).read_text())))
    assert all(r["timing"] in ("cpu-wall", "") for r in table_csv) and "n" in table_csv[0]


@pytest.mark.parametrize("argv, message", [
    (["bench", "--models", "nosuch.onnx"], "--models: ONNX file 'nosuch.onnx' does not exist"),
    (["bench", "--models", "mlp", "--shapes", "x:1"], "--shapes and --feeds are for ONNX files"),
    (["bench", "--models", "tok.onnx", "--shapes", "nope:1x2"], "no ONNX file in --models has an input 'nope'"),
    (["bench", "--out", "no/such/x"], "the folder 'no/such' does not exist"),
    (["bench", "--kernel-bench", "nosuch"], "--kernel-bench: unknown family nosuch"),
    (["bench", "--compare", "a.json"], "expected 2 arguments"),
    (["bench", "--compare", "a.json", "b.json"], "--compare a.json: no such file or folder"),
    (["bench", "--compare", "tok.onnx", "tok.onnx"], "not a tritonnx bench result set"),
    (["bench", "--seed", "-3"], "argument --seed: expected an integer >= 0"),
    (["bench", "--models", "mlp", "--opset", "3"], "unsupported opset 3; the exporter supports 17..20"),
])
def test_bench_usage_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    _token_model(tmp_path / "tok.onnx")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.onnx"]


def test_feeds_whose_names_match_no_input_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _token_model(tmp_path / "tok.onnx")
    np.savez(tmp_path / "bad.npz", tokenz=np.zeros((1, 3), np.int64))
    assert main(["bench", "--models", "tok.onnx", "--feeds", "bad.npz", "--shapes", "tokens:1x3"]) == 2
    err = capsys.readouterr().err  # was: random tokens, silently
    assert "--feeds: array 'tokenz' names no input of an ONNX file in --models; theirs: tok.onnx: tokens" in err
    assert main(["run", "tok.onnx", "--feeds", "bad.npz", "--shapes", "tokens:1x3"]) == 2
    assert "--feeds bad.npz: array 'tokenz' names no input of the model; its inputs: ['tokens']" in \
        capsys.readouterr().err  # was "--input tokenz: ..." (a flag not given), after the session


def test_a_batch_the_file_fixes_is_a_warning_line_when_batch_says_otherwise(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _token_model(tmp_path / "tok.onnx")
    seen = {}

    def stop(settings, **kw):  # the settings are what this test checks; no row needs to run
        seen["files"] = settings.files
        raise KeyboardInterrupt

    monkeypatch.setattr("tritonnx.bench.harness.Harness", stop)
    assert main(["bench", "--models", "tok.onnx", "--shapes", "tokens:4x9", "--batch", "1,2"]) == 130
    err = capsys.readouterr().err
    assert ("tritonnx bench: warning: --batch 1,2 does not apply to tok.onnx: its batch is 4 (fixed by the file, "
            "--shapes or --feeds); its rows are batch 4 only\n") in err
    assert seen["files"]["tok.onnx"].batches == (4,)


def test_an_existing_file_without_the_onnx_suffix_is_read_as_a_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a model\n")
    assert main(["bench", "--models", "notes.txt"]) == 2  # was "unknown model(s) notes.txt: the zoo has ..."
    err = capsys.readouterr().err
    assert err == "tritonnx bench: error: --models notes.txt: not an ONNX model (DecodeError)\n", err


# readable outputs ----------------------------------------------------------------------------
def _row(model, provider, median, timing="cpu-wall", **kw):
    row = {"model": model, "config": "tiny", "batch": 1, "dtype": "fp32", "provider": provider, "status": "ok",
           "note": "", "median_ms": median, "n": 5, "timing": timing, "max_rel_err": 1e-6}
    row.update(kw)
    return row


def test_only_rows_that_ran_under_the_interpreter_say_so_in_every_format():
    rows = report.derive([_row("lenet5", "tritonnx", 9.0, timing="cpu-interpreter", interpreter=True),
                          _row("lenet5", "onnxruntime", 1.0), _row("lenet5", "torch", 2.0)])
    table = report.render(rows, "table")
    line = {ln.split()[1]: ln for ln in table.splitlines() if ln.startswith("lenet5")}
    assert "interp" in line["tritonnx"] and "interp" not in line["onnxruntime"] and "wall" in line["torch"]
    assert "| cpu-interpreter |" in report.render(rows, "markdown")
    parsed = {r["provider"]: r["timing"] for r in csv.DictReader(io.StringIO(report.render(rows, "csv")))}
    assert parsed == {"tritonnx": "cpu-interpreter", "onnxruntime": "cpu-wall", "torch": "cpu-wall"}


def test_terminal_table_fits_100_columns_and_wide_shows_all():
    rows = report.derive([_row(f"model_{i}", p, 1.0 + i, note="providers: CPUExecutionProvider; fused 3, declined 1")
                          for i in range(3) for p in ("tritonnx", "onnxruntime", "tritonnx-unfused", "torch")])
    table = report.render(rows, "table")
    assert all(len(line) <= 100 for line in table.splitlines())
    assert "config tiny; dtype fp32; batch 1" in table  # uniform columns move to the title line
    sampled = report.render(rows, "table", env={"sampling": {"warmup": 1, "min_samples": 5, "min_time_s": 2.0}})
    assert "n: 1 warm-up run(s), then 5 samples or 2.0 s measured per row, whichever first" in \
        " ".join(sampled.split())  # the minimums are stated beside every row's n
    assert all(len(line) <= 100 for line in sampled.splitlines())
    wide = report.render(rows, "table", wide=True)
    header = next(line for line in wide.splitlines() if line.startswith("model"))
    assert "peak MiB" in header and "roofline" in header and "outliers" in header


def test_chart_has_a_panel_per_dtype_and_batch(tmp_path):
    rows = report.derive([_row("lenet5", "tritonnx", 1.0, timing="cpu-interpreter", interpreter=True),
                          _row("lenet5", "onnxruntime", 2.0, note="CPUExecutionProvider"),
                          _row("lenet5", "onnxruntime", 2.0, batch=4), _row("lenet5", "torch", 3.0, batch=4)])
    path = report.write_chart(rows, tmp_path / "s.png", {"device": "cpu", "time_utc": "2026-12-03T00:00:00"})
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert report._ort_provider(rows, "fp32", 1) == "CPUExecutionProvider"


def test_compare_two_result_sets(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, scale in ((a, 1.0), (b, 2.0)):
        rows = [_row("lenet5", "tritonnx", 1.0 * scale), _row("lenet5", "onnxruntime", 3.0)]
        if folder == b:
            rows.append(_row("mlp", "torch", 1.0))
        report.write_all(folder, {"device": "cpu", "commit": folder.name * 8, "time_utc": "t"}, rows)
    assert main(["bench", "--compare", str(a), str(b / report.RESULTS_FILE)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("lenet5") and "tritonnx" in ln)
    assert "2.00x" in line
    assert "only in B" in out and "geomean B/A over 2 matched rows: 1.41x" in out
    assert main(["bench", "--compare", str(a), str(b), "--format", "csv"]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert float(next(r for r in parsed if r["provider"] == "tritonnx")["ratio"]) == 2.0


def test_compare_leaves_rows_of_different_timing_out_of_the_geomean(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    report.write_all(a, {"device": "cpu", "time_utc": "t"}, [_row("lenet5", "tritonnx", 1.0),
                                                            _row("mlp", "tritonnx", 1.0)])
    report.write_all(b, {"device": "cpu", "time_utc": "t"}, [_row("lenet5", "tritonnx", 500.0, timing="cpu-interpreter"),
                                                            _row("mlp", "tritonnx", 2.0)])
    assert main(["bench", "--compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("lenet5"))
    assert "500.00x" in line and "timing differs" in line  # shown, marked
    header = next(ln for ln in out.splitlines() if ln.startswith("model"))
    assert ("A timing" in header) == ("B timing" in header) and ("A vs ORT" in header) == ("B vs ORT" in header)
    assert "geomean B/A over 1 matched rows: 2x (1 row(s) whose timing labels differ left out)" in " ".join(out.split())


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    lines = []
    p = report.Progress(2, "row", log=lines.append, stream=io.StringIO())
    p.start("a")
    p.done("a", "median 1 ms")
    p.close()
    assert lines == ["[1/2] a: median 1 ms"] and p.bar is None


def test_environment_claims_no_tf32_on_a_cpu_and_reads_kernels_from_rows(tmp_path):
    env = environment.collect(["tritonnx", "bench"], tf32=True, kernels="triton")
    assert env["tf32"] is None and env["kernels"] is None and env["kernels_requested"] == "triton"
    eff = environment.effective([{"status": "ok", "kernels": "torch", "interpreter": False, "timing": "cpu-wall"},
                                 {"status": "ok", "kernels": "triton", "interpreter": True, "timing": "cpu-interpreter"}])
    assert eff == {"kernels": ["torch", "triton"], "interpreter": True,
                   "timing_labels": ["cpu-interpreter", "cpu-wall"]}


def test_a_fused_file_under_the_interpreter_in_a_fresh_process(tmp_path):
    """A fresh `tritonnx bench` process (nothing imported yet): the fused row runs its Triton
    kernel under the interpreter (triton must not be imported before TRITON_INTERPRET is set:
    the compile counter once did) and is the only row labelled cpu-interpreter."""
    import subprocess

    from onnx import parser

    w = ", ".join(f"{v:.4f}" for v in np.random.default_rng(1).standard_normal(2 * 1 * 3 * 3))
    model = parser.parse_model(f"""
    <ir_version: 8, opset_import: ["" : 18]>
    net (float[batch, 1, 6, 6] x) => (float[batch, 2, 3, 3] y)
    <float[2, 1, 3, 3] w = {{{w}}}, float[2] b = {{0.1, -0.2}}>
    {{ c = Conv<pads=[1, 1, 1, 1]>(x, w, b)
       r = Relu(c)
       y = MaxPool<kernel_shape=[2, 2], strides=[2, 2]>(r) }}
    """)
    save(model, str(tmp_path / "conv.onnx"))
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("TRITON_INTERPRET", "TRITONNX_KERNELS")}
    proc = subprocess.run([sys.executable, "-m", "tritonnx", "bench", "--models", str(tmp_path / "conv.onnx"),
                           "--providers", "tritonnx,tritonnx-unfused", "--kernels", "triton", "--out",
                           str(tmp_path / "res"), "--format", "json", "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = {r["provider"]: r for r in json.loads(proc.stdout)["rows"]}
    assert rows["tritonnx"]["status"] == "ok", rows["tritonnx"]["note"]
    assert rows["tritonnx"]["timing"] == "cpu-interpreter" and rows["tritonnx"]["interpreter"] is True
    assert rows["tritonnx-unfused"]["timing"] == "cpu-wall"
    env_json = json.loads((tmp_path / "res" / report.ENV_FILE).read_text())
    assert env_json["interpreter"] is True and env_json["kernels"] == "triton"
