"""`tritonnx serve bench` end to end without Ray: the one-process reference server and the floor.

A MatMul+Relu model (tests/serving/models.py), both runtimes, bounded loads (40 requests, at
most 20 s a row) on 127.0.0.1; the rows' counts, the files and the table's width are checked,
and that every server process started has ended. No timing is asserted.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("tritonclient.http.aio", reason="the serve extra (tritonclient[http]) is not installed")
psutil = pytest.importorskip("psutil", reason="the serve extra (psutil) is not installed")
pytest.importorskip("onnxruntime", reason="the cpu extra (onnxruntime) is not installed")

from tritonnx.cli import main  # noqa: E402
from tritonnx.commands.serve_bench import role_of  # noqa: E402

from .kserve_stub import MODEL, Stub  # noqa: E402
from .models import matmul_relu  # noqa: E402


def _children():
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_bare_server_and_floor_rows(tmp_path, capsys):
    model = matmul_relu(tmp_path / "mm.onnx")
    out = tmp_path / "res"
    before = _children()
    code = main(["serve", "bench", str(model), "--servers", "bare", "--concurrency", "1,4", "--requests", "40",
                 "--max-seconds", "20", "--max-batch-size", "4", "--warmup", "2", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert _children() <= before  # the reference servers ended
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len(results["env"]["load_average_start"]) == 3 and results["env"]["tritonclient"]
    assert all("samples_ms" not in r for r in rows)  # every latency is in rows.jsonl, not results.json
    served = [r for r in rows if r["server"] == "bare"]
    floors = [r for r in rows if r["server"].startswith("session b")]
    assert sorted((r["runtime"], r["concurrency"]) for r in served) == [
        ("onnxruntime", 1), ("onnxruntime", 4), ("tritonnx", 1), ("tritonnx", 4)]
    for r in served:
        assert (r["sent"], r["ok"], r["errors"], r["n"]) == (40, 40, 0, 40)
        assert r["batch_hist"] == {"1": 40}  # one request per run: the reference server does not batch
        assert r["p99_ms"] is None and r["p90_ms"] is not None  # n=40
        assert r["first_ok_s"] > 0 and r["rss_mib"] > 1
        assert r["cpu_ms_per_request"]["bare-server"] >= 0  # read (40 light requests may be under one 10 ms tick)
        assert r["outside_p50_ms"] is not None
        assert r["checked"] == 1 and r["max_rel_err"] < 1e-5  # answer 1 of 40 compared with onnxruntime
    assert sorted((r["runtime"], r["server"]) for r in floors) == [
        ("onnxruntime", "session b1"), ("onnxruntime", "session b4"), ("tritonnx", "session b1"),
        ("tritonnx", "session b4")]
    assert all(r["n"] >= 1 and r["req_s"] > 0 and r["max_rel_err"] < 1e-5 for r in floors)
    assert (out / "table.md").read_text().count("| bare ") == 4
    assert (out / "serve.png").stat().st_size > 1000
    assert len((out / "rows.jsonl").read_text().splitlines()) == 8
    table = printed.out
    assert "CPU times, not performance figures" in table
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "the rest (HTTP, codec, threads, client)" in table.replace("\n  ", " ")


def test_url_endpoint_rows(tmp_path, capsys):
    model = matmul_relu(tmp_path / "mm.onnx")
    with Stub(fail_every=5) as stub:
        code = main(["serve", "bench", str(model), "--url", stub.url, "--model-name", MODEL, "--no-floor",
                     "--concurrency", "1,3", "--requests", "25", "--warmup", "0", "--max-seconds", "20",
                     "--out", str(tmp_path / "res"), "--format", "json"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    rows = json.loads(printed.out)["rows"]
    assert [(r["server"], r["concurrency"], r["sent"], r["ok"], r["errors"]) for r in rows] == [
        ("url", 1, 25, 20, 5), ("url", 3, 25, 20, 5)]
    assert rows[0]["error_kinds"] == {"HTTP 400": 5} and "5 errors (HTTP 400: 5" in rows[0]["note"]
    assert rows[0]["rss_mib"] is None  # an endpoint this command did not start: no processes to read


@pytest.mark.parametrize("argv, message", [
    (["--url", "http://10.0.0.1:8000", "--model-name", "m"], "not a loopback address"),
    (["--url", "http://localhost:8000", "--model-name", "m"], "not an IP address"),
    (["--url", "http://127.0.0.1:8000"], "--url needs --model-name"),
    (["--concurrency", "0"], "--concurrency expects integers >= 1"),
    (["--runtimes", "tensorrt"], "--runtimes: unknown tensorrt"),
], ids=["remote", "name", "no-name", "concurrency", "runtime"])
def test_refusals_are_one_line(argv, message, capsys, tmp_path):
    code = main(["serve", "bench", "mlp", *argv, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tritonnx serve bench: error:") and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("cmdline, role", [
    ("ray::ProxyActor", "proxy"), ("ray::ServeReplica:tritonnx:mlp", "replica"),
    ("ray::ServeReplica:tritonnx:ingress", "ingress"), ("ray::ServeController", "controller"),
    ("/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --raylet_socket_name=x", "raylet"),
    ("/venv/lib/python3.11/site-packages/ray/core/src/ray/gcs/gcs_server --redis_address=", "gcs"),
    ("python -u /venv/lib/python3.11/site-packages/ray/dashboard/agent.py --node-ip-address=127.0.0.1", "ray-agent"),
    ("ray::IDLE", "idle-worker"), ("python -m tritonnx.serve.reference_server m.onnx", "bare-server"),
    ("sleep 10", "other"),
])
def test_process_roles(cmdline, role):
    assert role_of(cmdline) == role


def test_reference_server_listens_on_loopback_only_and_ends(tmp_path):
    import ipaddress

    import numpy as np

    from tritonnx.serve import loadgen, reference_server

    model = matmul_relu(tmp_path / "mm.onnx")
    proc, url = reference_server.spawn(model, "mm", runtime="onnxruntime", max_seconds=120, start_timeout_s=120)
    try:
        listening = [c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == psutil.CONN_LISTEN]
        assert listening and all(ipaddress.ip_address(a.ip).is_loopback for a in listening), listening
        x = {"x": np.random.default_rng(1).uniform(0.5, 1.5, (3, 8)).astype(np.float32)}
        result = loadgen.run_load(url, "mm", x, requests=5, max_seconds=30, timeout_s=10)
        assert (result.ok, result.errors) == (5, 0)
    finally:
        reference_server.stop(proc)
    assert proc.returncode is not None and not psutil.pid_exists(proc.pid)
