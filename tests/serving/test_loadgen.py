"""The load generator (serve/loadgen.py) against a stub KServe v2 endpoint on 127.0.0.1.

The stub is a stdlib ThreadingHTTPServer in a thread, speaking the protocol through
`tritonnx.serve.protocol`; it fails every third request with a 400 and reports batch facts in
the response parameters, so the counts the generator reports can be checked exactly. Every
run is bounded in requests and seconds; no timing is asserted, only counts and bounds.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tritonclient.http.aio", reason="the serve extra (tritonclient[http]) is not installed")
psutil = pytest.importorskip("psutil", reason="the serve extra (psutil) is not installed")

from tritonnx.errors import InvalidArgument  # noqa: E402
from tritonnx.serve import loadgen  # noqa: E402

from .kserve_stub import MODEL, Stub  # noqa: E402


def _x():
    return {"x": np.random.default_rng(0).uniform(0.5, 1.5, (1, 3)).astype(np.float32)}


def test_counts_errors_and_batch_facts():
    with Stub(fail_every=3) as stub:
        result = loadgen.run_load(stub.url, MODEL, _x(), requests=30, concurrency=4, max_seconds=30, timeout_s=10)
        served = stub.count
    assert served == 30 and result.sent == 30 and result.stop == "requests"
    assert (result.ok, result.errors) == (20, 10)
    assert result.error_kinds == {"HTTP 400": 10}
    assert "refused" in result.error_messages["HTTP 400"]
    assert len(result.latencies_ms) == 20 and all(x > 0 for x in result.latencies_ms)
    # Requests 1, 5, 7, 11, ... (odd) ran "alone", even ones in a batch of 4: 10 of each among the 20 answered.
    assert result.batch_requests == {1: 10, 4: 10}
    assert result.first_ok_ms is not None and result.first_ok_ms <= result.wall_s * 1e3
    row = result.as_row()
    assert row["n"] == 20 and row["errors"] == 10 and row["ok"] == 20
    assert row["p50_ms"] == pytest.approx(float(np.quantile(result.latencies_ms, 0.5)))
    assert row["p90_ms"] is not None and row["p99_ms"] is None  # n=20: p90 (needs 10) yes, p99 (needs 100) no
    assert row["max_ms"] == max(result.latencies_ms)
    assert row["batch_mean"] == pytest.approx(2.5) and row["batch_max"] == 4
    assert row["batch_hist"] == {"1": 10, "4": 10}
    assert row["queue_p50_ms"] == 0.5 and row["run_p50_ms"] == 0.25
    assert row["outside_p50_ms"] == pytest.approx(row["p50_ms"] - 0.75)
    assert row["req_s"] == pytest.approx(20 / result.wall_s)
    json.dumps(row)


def test_answers_checked_against_expected():
    x = _x()
    with Stub() as stub:  # the stub answers y = 2 x
        good = loadgen.run_load(stub.url, MODEL, x, requests=12, max_seconds=30, expected={"y": 2 * x["x"]},
                                check_every=5)
        bad = loadgen.run_load(stub.url, MODEL, x, requests=3, max_seconds=30, expected={"y": 3 * x["x"]})
    assert (good.checked, good.max_rel_err) == (3, 0.0)  # answers 1, 6, 11
    assert bad.checked == 1 and bad.max_rel_err == pytest.approx(1 / 3)
    assert good.as_row()["max_rel_err"] == 0.0


def test_p99_needs_100_samples_and_json_tensors():
    with Stub() as stub:
        result = loadgen.run_load(stub.url, MODEL, _x(), requests=120, concurrency=2, max_seconds=60, timeout_s=10,
                                  binary=False, warmup=3)
        served = stub.count
    assert served == 123 and result.ok == 120 and result.errors == 0  # warm-up sent, not counted
    row = result.as_row()
    assert row["n"] == 120 and row["p99_ms"] is not None and row["p99_ms"] <= row["max_ms"]


def test_time_bound_stops_issuing():
    with Stub(delay_s=0.05) as stub:
        result = loadgen.run_load(stub.url, MODEL, _x(), requests=100_000, concurrency=2, max_seconds=0.5,
                                  timeout_s=5)
    assert result.stop == "time"
    assert 0 < result.sent < 100 and result.ok == result.sent
    assert result.wall_s < 0.5 + 5 + 1


def test_unknown_model_and_closed_port_are_counted_errors():
    with Stub() as stub:
        result = loadgen.run_load(stub.url, "nope", _x(), requests=5, concurrency=1, max_seconds=30, timeout_s=5)
        port = stub.server.server_address[1]
    assert (result.ok, result.errors, result.error_kinds) == (0, 5, {"HTTP 404": 5})
    assert result.req_s is None and result.as_row()["p50_ms"] is None
    closed = loadgen.run_load(f"http://127.0.0.1:{port}", MODEL, _x(), requests=3, concurrency=1, max_seconds=30,
                              timeout_s=5)
    assert closed.ok == 0 and closed.errors == 3 and sum(closed.error_kinds.values()) == 3


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://192.168.0.1:8000", "http://localhost:8000",
                                 "http://example.com:80", "https://127.0.0.1:8443", "http://[2001:db8::1]:8000",
                                 "http://0.0.0.0:8000"],
                         ids=["10/8", "192.168", "name-localhost", "name", "https", "ipv6-global", "any"])
def test_refuses_non_loopback(url):
    with pytest.raises(InvalidArgument, match="loopback|only http"):
        loadgen.run_load(url, MODEL, _x(), requests=1, max_seconds=1)


def test_loopback_forms():
    assert loadgen.loopback_url("127.0.0.1:8000") == ("127.0.0.1:8000", "http://127.0.0.1:8000")
    assert loadgen.loopback_url("http://[::1]:9000") == ("[::1]:9000", "http://[::1]:9000")


def test_ipv6_loopback():
    try:
        stub = Stub(host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    with stub:
        result = loadgen.run_load(stub.url, MODEL, _x(), requests=6, concurrency=2, max_seconds=30, timeout_s=10)
    assert stub.url.startswith("http://[::1]:") and (result.ok, result.errors) == (6, 0)


def test_first_success_and_bounds():
    with Stub(fail_every=1) as stub:  # every request fails: bounded by the timeout
        assert loadgen.first_success(stub.url, MODEL, _x(), timeout_s=0.5, interval_s=0.05) is None
    with Stub() as stub:
        assert loadgen.first_success(stub.url, MODEL, _x(), timeout_s=10) > 0
    with pytest.raises(InvalidArgument):
        loadgen.run_load("http://127.0.0.1:1", MODEL, _x(), requests=0)


def test_process_sampler_sees_children():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = loadgen.ProcessSampler(role=lambda cmd: "sleeper" if "time.sleep" in cmd else "other")
        before = sampler.snapshot()
        mine = [f for f in before if f.pid == child.pid]
        assert len(mine) == 1 and mine[0].role == "sleeper" and mine[0].rss_mib > 1
        assert loadgen.ProcessSampler.rss_by_role(before)["sleeper"] == mine[0].rss_mib
        assert loadgen.ProcessSampler.cpu_by_role(before, before)["sleeper"] == 0.0
    finally:
        child.kill()
        child.wait(timeout=10)
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE
