"""`tritonnx serve bench --servers ray` against `tritonnx serve`'s Ray Serve deployment (needs ray).

One private local Ray instance (temp dir inside the test's folder, small object store, no
dashboard), one runtime, one batch wait, 4 concurrent clients, 40 requests, at most 30 s of
load; the counts, the batch facts from the responses and the end of every process are checked.
"""
from __future__ import annotations

import json

import pytest

pytest.importorskip("ray", reason="the serve extra (ray[serve]) is not installed")
pytest.importorskip("tritonclient.http.aio", reason="the serve extra (tritonclient[http]) is not installed")
psutil = pytest.importorskip("psutil", reason="the serve extra (psutil) is not installed")
pytest.importorskip("onnxruntime", reason="the cpu extra (onnxruntime) is not installed")
api = pytest.importorskip("tritonnx.serve.api", reason="the Ray Serve deployment (tritonnx.serve.api) is not there")

from tritonnx.cli import main  # noqa: E402

from .models import matmul_relu  # noqa: E402

pytestmark = [pytest.mark.xdist_group("ray"), pytest.mark.timeout(300)]


def test_ray_rows_count_batches_and_stop(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # Ray's per-user files stay in the test's folder
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    model = matmul_relu(tmp_path / "mm.onnx")
    out = tmp_path / "res"
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    code = main(["serve", "bench", str(model), "--servers", "ray", "--runtimes", "onnxruntime", "--no-floor",
                 "--concurrency", "4", "--batch-wait-ms", "5", "--max-batch-size", "8", "--requests", "40",
                 "--warmup", "2", "--max-seconds", "30", "--start-timeout-s", "180", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    psutil.wait_procs([p for p in psutil.Process().children(recursive=True) if p.pid not in before], timeout=30)
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # Ray's processes ended
    (row,) = json.loads((out / "results.json").read_text())["rows"]
    assert (row["server"], row["runtime"], row["batch_wait_ms"], row["concurrency"]) == ("ray", "onnxruntime", 5, 4)
    assert (row["sent"], row["ok"], row["errors"]) == (40, 40, 0)
    assert sum(row["batch_hist"].values()) == 40 and 1 <= row["batch_max"] <= 4
    assert row["queue_p50_ms"] is not None and row["run_p50_ms"] is not None
    assert row["first_ok_s"] > 0 and row["rss_mib"] > 10
    assert row["checked"] == 1 and row["max_rel_err"] < 1e-5  # the served answer matches onnxruntime
    assert row["cpu_ms_per_request"].get("proxy", 0) > 0 and row["cpu_ms_per_request"].get("replica", 0) > 0
