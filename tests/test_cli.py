import subprocess
import sys

import pytest

import tritonnx
from tritonnx.cli import main


def test_version_flag(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"tritonnx {tritonnx.__version__}"


def test_console_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "tritonnx", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert tritonnx.__version__ in proc.stdout


def test_run_makes_random_inputs_of_every_torch_type(tmp_path, capsys):
    from onnx import TensorProto, helper, save

    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT8E4M3FN, [2, 3]) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", io[:1], io[1:]),
                              opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    save(model, str(tmp_path / "f8.onnx"))
    assert main(["run", str(tmp_path / "f8.onnx")]) == 0  # was a StopIteration traceback
    assert "float8_e4m3fn" in capsys.readouterr().out


# ---- one CLI: usage errors early, one line, no traceback ------------------------------------
def _embedding_model(path, vocab=50):
    """tokens[batch, seq] (int64) -> Gather(embedding[vocab, 4]) -> Relu: ids must stay < vocab."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    emb = numpy_helper.from_array(np.random.default_rng(0).standard_normal((vocab, 4)).astype(np.float32), "emb")
    nodes = [helper.make_node("Cast", ["tokens"], ["ids"], to=TensorProto.INT64),
             helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("Relu", ["e"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("tokens", TensorProto.INT32, ["batch", "seq"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])], [emb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    save(model, str(path))
    return path


def test_a_missing_model_is_answered_before_torch_is_imported(tmp_path):
    code = ("import sys; from tritonnx.cli import main; rc = main(['run', 'missing.onnx']); "
            "print(rc, 'torch' in sys.modules, 'onnx' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.stdout.split() == ["2", "False", "False"]
    assert proc.stderr == "tritonnx run: error: model file 'missing.onnx' does not exist\n"


@pytest.mark.parametrize("argv, message", [
    (["run", "m.onnx", "--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
    (["run", "m.onnx", "--iterations", "0"], "argument --iterations: expected an integer >= 1"),
    (["run", "m.onnx", "--duration", "nan"], "argument --duration: expected a number > 0"),
    (["run", "m.onnx", "--nosuch"], "unrecognized arguments: --nosuch"),
    (["run", "m.onnx", "-o", "no/such/dir/o.npz"], "the folder 'no/such/dir' does not exist"),
    (["run", "m.onnx", "--providers", "tensorrt"], "unknown provider 'tensorrt'"),
    (["run", "m.onnx", "--providers", "torch"], "torch rows need the model's torch module"),
    (["run", "m.onnx", "--shapes", "tokens:2xa"], "expected NAME:DxDx..."),
    (["run", "m.onnx", "--shapes", "nosuch:2x3"], "the model has no input 'nosuch'"),
    (["run", "m.onnx", "--shapes", "tokens:2x3x4"], "rank 3 given"),
    (["run", "m.onnx", "-i", "tokens=notes.npy"], "not a .npy file (no NumPy header"),
    (["run", "m.onnx", "--feeds", "notes.npy"], "not a .npz archive"),
    (["run", "m.onnx"], "symbolic dimension(s) seq: give its shape, e.g. --shapes tokens:1xN"),
    (["bench", "--kernels", "nosuch"], "--kernels: expected triton or torch, or kernel families (conv,rnn or all), got 'nosuch'"),
])
def test_usage_errors_are_one_line(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    _embedding_model(tmp_path / "m.onnx")
    (tmp_path / "notes.npy").write_text("a text file\n")  # was "pickled data"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "notes.npy"]


def test_run_prints_latency_what_ran_and_keeps_token_ids_in_the_embedding(tmp_path, capsys):
    path = _embedding_model(tmp_path / "m.onnx", vocab=7)
    assert main(["run", str(path), "--shapes", "tokens:2x300", "--iterations", "12", "--warmup", "1",
                 "--providers", "tritonnx,onnxruntime", "-o", str(tmp_path / "o.npz")]) == 0
    out = capsys.readouterr().out
    assert "random ids 0..6 (embedding 'emb': 7 rows)" in out
    header = next(line for line in out.splitlines() if line.startswith("provider"))
    assert header.split() == ["provider", "n", "min", "p50", "p90", "p99", "max", "mean", "items/s", "timing"]
    row = next(line for line in out.splitlines() if line.startswith("tritonnx "))
    cells = row.split()
    assert cells[1] == "12" and cells[5] == "-"  # n=12 supports p90, not p99
    assert cells[-1] == "wall" and "wall = CPU wall clock" in out
    assert "providers: CPUExecutionProvider; kernels: torch ops only" in out
    assert "max rel err vs onnxruntime" in out
    assert all(len(line) <= 100 for line in out.splitlines()[1:])  # the first names the (long) path


def test_run_with_feeds_from_an_npz(tmp_path, capsys):
    import numpy as np

    path = _embedding_model(tmp_path / "m.onnx")
    np.savez(tmp_path / "feeds.npz", tokens=np.array([[1, 2, 3]], np.int32))
    assert main(["run", str(path), "--feeds", str(tmp_path / "feeds.npz"), "--iterations", "1",
                 "-o", str(tmp_path / "o.npz")]) == 0
    out = capsys.readouterr().out
    assert "file" in out and "(3 warm-up runs, then 1 run or 3 s measured" in out  # "1 run", not "1 runs"
    assert np.load(tmp_path / "o.npz")["y"].shape == (1, 3, 4)


def test_warnings_are_one_line(tmp_path, capsys, monkeypatch):
    import warnings

    from tritonnx.commands import zoo as zoo_cmd

    real = zoo_cmd.run

    def noisy(args):
        warnings.warn("something to know\nover two lines", RuntimeWarning)
        return real(args)

    monkeypatch.setattr(zoo_cmd, "run", noisy)
    parser_main = main(["zoo", "mlp"])
    assert parser_main == 0
    assert capsys.readouterr().err == "tritonnx zoo: warning: something to know over two lines\n"


def test_an_internal_error_is_one_line(capsys, monkeypatch):
    from tritonnx.commands import zoo as zoo_cmd

    monkeypatch.delenv("TRITONNX_TRACEBACK", raising=False)
    monkeypatch.setattr(zoo_cmd, "run", lambda args: {}["boom"])
    assert main(["zoo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tritonnx zoo: error: KeyError: 'boom'") and err.count("\n") == 1


# ---- terminal tables fit 100 columns in every verb; --wide keeps every cell whole -----------
def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_zoo_fits_100_columns_and_wide_keeps_the_venues(capsys):
    assert main(["zoo"]) == 0
    narrow = capsys.readouterr().out
    assert _widest(narrow) <= 100 and "source[batch,src_seq] int64" in narrow  # wrapped, not cut
    assert main(["zoo", "--wide"]) == 0
    wide = capsys.readouterr().out
    assert _widest(wide) > 100 and "LeCun et al. 1998, Proc. IEEE" in wide
    assert main(["zoo", "seq2seq"]) == 0  # was a tabulate ValueError on '384,144,000'
    details = capsys.readouterr().out
    assert _widest(details) <= 100 and "384,144,000" in details


def _long_names_model(path):
    """Conv -> Relu -> MaxPool with 60-character node names (a fused group's name is their join)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32), "w")
    long = "/encoder/" + "block" * 10
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name=long + "/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name=long + "/Relu"),
             helper.make_node("MaxPool", ["r"], ["y"], name=long + "/MaxPool", kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    save(model, str(path))
    return path


def test_inspect_and_run_profile_fit_100_columns(tmp_path, capsys):
    path = _long_names_model(tmp_path / "m.onnx")
    assert main(["inspect", str(path), "--kernels", "torch"]) == 0
    out = capsys.readouterr().out
    assert _widest(out.split("\n", 1)[1]) <= 100 and "tritonnx::ConvReluPool" in out  # line 1 names the path
    assert main(["run", str(path), "--profile", "--iterations", "2", "--kernels", "torch"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()[1:]
    assert max(map(len, lines)) <= 100
    node_row = next(line for line in lines if "tritonnx::ConvReluPool" in line)
    assert node_row.startswith("/encoder/block") and "..." in node_row and "MaxPool " in node_row  # middle cut
    assert main(["run", str(path), "--profile", "--iterations", "2", "--kernels", "torch", "--wide"]) == 0
    assert "/encoder/" + "block" * 10 + "/Conv+" in capsys.readouterr().out


def test_kernels_list_fits_100_columns(capsys):
    assert main(["kernels"]) == 0
    out = capsys.readouterr().out
    assert _widest(out) <= 100 and "conv_relu_pool (conv_relu_pool_kernel)" in out
    assert main(["kernels", "--wide"]) == 0
    assert _widest(capsys.readouterr().out) > 100


def test_export_all_prints_a_line_per_model_when_not_a_terminal(tmp_path, capsys, monkeypatch):
    import tritonnx.export as export_pkg
    from tritonnx import zoo

    def fake_export_all(out_dir, *, on_done=None, progress=True, **kw):
        assert progress is False  # the CLI's own progress, not export_all's bar
        results = []
        for name in zoo.names():
            results.append(export_pkg.ExportResult(name=name, path=tmp_path / f"{name}_tiny_fp32.onnx", config="tiny",
                                                   dtype="fp32", opset=18, tolerance=1e-4, seconds=0.5, ok=True,
                                                   size_bytes=1000, max_rel_err=1e-7, max_abs_err=1e-8))
            on_done(results[-1])
        return results

    monkeypatch.setattr(export_pkg, "export_all", fake_export_all)
    assert main(["export", "--all", "--config", "tiny", "-o", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr()
    n = len(zoo.names())
    assert f"[1/{n}] mlp: ok, 0.5 s" in printed.err and printed.err.count("\n") == n
    assert f"{n}/{n} exported" in printed.out and _widest(printed.out) <= 100


def test_a_closed_pipe_ends_quietly(capsys, monkeypatch):
    from tritonnx.commands import zoo as zoo_cmd

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")  # `tritonnx zoo | head -1`

    monkeypatch.setattr(zoo_cmd, "run", closed)
    assert main(["zoo"]) == 141  # was "error: BrokenPipeError ... (an internal error ...)"
    assert capsys.readouterr().err == ""
