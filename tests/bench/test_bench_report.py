import csv
import io
import json

from tritonnx.bench import report


def _row(model, provider, median, batch=1, dtype="fp16", **kw):
    row = {"model": model, "config": "paper", "batch": batch, "dtype": dtype, "provider": provider,
           "status": "ok", "note": "", "median_ms": median, "p20_ms": median, "p80_ms": median,
           "timing": "cuda-events", "max_rel_err": 1e-3, "roofline": 0.25}
    row.update(kw)
    return row


ROWS = [
    _row("lenet5", "tritonnx", 1.0), _row("lenet5", "onnxruntime", 2.0), _row("lenet5", "torch.compile", 1.5),
    _row("vgg16", "tritonnx", 4.0), _row("vgg16", "onnxruntime", 2.0),
    _row("vgg16", "tritonnx-unfused", None, status="missing", note="no runtime"),
]


def test_derive_speedup_and_throughput():
    rows = {(r["model"], r["provider"]): r for r in report.derive(ROWS)}
    assert rows["lenet5", "tritonnx"]["speedup_vs_ort"] == 2.0
    assert rows["vgg16", "tritonnx"]["speedup_vs_ort"] == 0.5
    assert rows["lenet5", "onnxruntime"]["speedup_vs_ort"] == 1.0
    assert rows["lenet5", "tritonnx"]["throughput"] == 1000.0
    assert rows["vgg16", "tritonnx-unfused"]["speedup_vs_ort"] is None


def test_summary_geomean_slowest_and_torch_compile():
    (line,) = report.summary(report.derive(ROWS))
    assert "geomean 1x over 2 models" in line and "slowest vgg16 0.5x" in line
    assert "vs torch.compile geomean 1.5x" in line
    assert ">= 1.5x geomean NOT met, no model slower NOT met, >= torch.compile met" in line


def test_render_formats():
    rows = report.derive(ROWS)
    table = report.render(rows, "table")
    assert "MISSING: no runtime" in table and "2.00x" in table and "25.0%" in report.render(rows, "table", wide=True)
    assert all(len(line) <= report.WIDTH for line in table.splitlines())
    assert report.CPU_BANNER not in table
    md = report.render(rows, "markdown", env={"device": "NVIDIA H100 80GB HBM3", "commit": "abc", "command": "tritonnx bench"})
    assert "| model" in md and "NVIDIA H100 80GB HBM3" in md and "`abc`" in md
    parsed = list(csv.DictReader(io.StringIO(report.render(rows, "csv"))))
    assert len(parsed) == len(ROWS) and parsed[0]["model"] == "lenet5"
    assert len(json.loads(report.render(rows, "json"))["rows"]) == len(ROWS)


def test_cpu_rows_carry_the_banner():
    rows = report.derive([_row("mlp", "torch", 1.0, timing="cpu-wall", roofline=None)])
    assert report.CPU_BANNER in report.render(rows, "table")
    assert report.CPU_BANNER in report.render(rows, "markdown")
    assert "no roofline" in report.render(rows, "table", wide=True)


def test_append_load_and_write_all(tmp_path):
    for row in ROWS:
        report.append_row(tmp_path, row)
    with open(tmp_path / report.ROWS_FILE, "a") as f:
        f.write('{"truncated": ')  # a killed run's last line
    rows = report.load_rows(tmp_path)
    assert len(rows) == len(ROWS)
    written = report.write_all(tmp_path, {"device": "x", "command": "c"}, rows, ["vgg16 b64 fp16 torch"])
    assert set(written) == {"json", "markdown", "csv", "png"}
    assert written["png"].read_bytes()[:4] == b"\x89PNG"
    results = json.loads(written["json"].read_text())
    assert results["not_run"] == ["vgg16 b64 fp16 torch"] and len(results["summary"]) == 1


def test_long_notes_short_in_terminal_whole_and_escaped_in_markdown():
    note = "x" * 150 + " a|b"
    rows = report.derive([_row("lenet5", "tritonnx", 1.0, note=note)])
    assert "x" * 97 + "..." in report.render(rows, "table", wide=True)
    narrow = report.render(rows, "table")
    assert "xxx..." in narrow and all(len(line) <= report.WIDTH for line in narrow.splitlines())
    assert "a\\|b" in report.render(rows, "markdown")


def test_small_speedups_are_not_rounded_to_zero():
    assert report._fmt("speedup_vs_ort", 1.7e-05) == "1.7e-05x"
    assert report._fmt("speedup_vs_ort", 0.004) == "0.004x"
    assert report._fmt("speedup_vs_ort", 0.5) == "0.50x"


def test_tables_name_the_model_config():
    rows = [_row("lenet5", "tritonnx", 1.0, config="tiny"), _row("lenet5", "onnxruntime", 2.0, config="tiny")]
    assert "| config " in report.render(rows, "markdown").splitlines()[0]
    assert "| tiny " in report.render(rows, "markdown")
    assert report.render(rows, "csv").splitlines()[0].startswith("model,config,batch")
