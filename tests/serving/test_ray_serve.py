"""`tritonnx serve` on a real local Ray Serve instance, through `tritonclient.http` (needs ray).

One server, one test (pytest-xdist 3.8 split this module's tests across workers despite
its xdist_group, and each worker started its own server: 2 x 30 s): the CLI in a child process (a zoo model exported on the fly, tiny
config, and a hand-built third-party graph), Ray on a private temp dir and HOME, no dashboard, a
128 MiB object store, usage stats off, loopback only. Traffic goes to 127.0.0.1 only; loads are
bounded in count and time. The teardown sends SIGTERM and checks that every process the server
started has ended.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray", reason="the serve extra (ray[serve]) is not installed")
httpclient = pytest.importorskip("tritonclient.http", reason="the serve extra (tritonclient[http]) is not installed")
psutil = pytest.importorskip("psutil", reason="the serve extra (psutil) is not installed")
ort = pytest.importorskip("onnxruntime", reason="the cpu extra (onnxruntime) is not installed")

from tritonclient.utils import InferenceServerException  # noqa: E402

from tests.tolerances import atol, rtol  # noqa: E402

from .models import FEATURES, matmul_relu  # noqa: E402

pytestmark = [pytest.mark.xdist_group("ray_serve"), pytest.mark.timeout(300)]  # one worker, one server

ZOO = "lenet5"
THIRD = "thirdparty"
MAX_BATCH = 8
START_TIMEOUT_S = 240


class Server:
    def __init__(self, proc, url, tmp):
        self.proc, self.url, self.tmp = proc, url, tmp
        self.host = url.split("//", 1)[1]

    def started(self) -> list:
        """Every live process under the CLI process (Ray's included)."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def client(self, concurrency: int = 1):
        return httpclient.InferenceServerClient(self.host, concurrency=concurrency, network_timeout=60,
                                                connection_timeout=30)


def _read_until_ready(proc, deadline) -> tuple[str, dict]:
    """The URL and the model files the CLI prints once ready (a thread reads its stdout)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in iter(proc.stdout.readline, "")], daemon=True).start()
    seen = []
    while time.monotonic() < deadline and (proc.poll() is None or not lines.empty()):
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        seen.append(line)
        if line.startswith("Ctrl-C or SIGTERM stops."):
            head = next(x for x in seen if "ready on http://" in x)
            files = {x.split()[0]: x.rsplit("(", 1)[1].rstrip(")\n") for x in seen if "/infer" in x}
            return head.split("ready on ", 1)[1].split()[0], files
    raise RuntimeError(f"tritonnx serve did not get ready (exit {proc.poll()}): {''.join(seen)[-2000:]}")


@pytest.fixture()
def server():
    tmp = Path(tempfile.mkdtemp(prefix="tsv", dir="/tmp"))  # short: Ray's AF_UNIX paths <= 107 bytes
    third = matmul_relu(tmp / f"{THIRD}.onnx", seed=3)
    (tmp / "home").mkdir()
    config = tmp / "serve.toml"
    metrics_port = _free_port()
    config.write_text(f'zoo_config = "tiny"\n[ray]\n_temp_dir = "{tmp / "r"}"\n'
                      f"object_store_memory = {128 << 20}\n_metrics_export_port = {metrics_port}\n")
    env = dict(os.environ, HOME=str(tmp / "home"), RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               TRITONNX_KERNELS="torch", RAY_metrics_report_interval_ms="1000")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tritonnx", "serve", ZOO, str(third), "--port", str(port),
                             "--max-batch-size", str(MAX_BATCH), "--batch-wait-ms", "20", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=open(tmp / "stderr.txt", "w"), text=True, env=env,
                            cwd=tmp)
    try:
        url, files = _read_until_ready(proc, time.monotonic() + START_TIMEOUT_S)
        srv = Server(proc, url, tmp)
        srv.zoo_path = Path(files[ZOO])
        assert srv.zoo_path.is_file() and srv.zoo_path.suffix == ".onnx"
        srv.third_path = third
        srv.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        yield srv
        started = srv.started()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (tmp / "stderr.txt").read_text()[-2000:]
        _, alive = psutil.wait_procs(started, timeout=30)
        assert not alive, f"left running after SIGTERM: {[(p.pid, _cmd(p)) for p in alive]}"
    finally:
        if proc.poll() is None:
            for child in Server(proc, "http://x", tmp).started():
                child.kill()
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
        shutil.rmtree(tmp, ignore_errors=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmd(proc) -> str:
    try:
        return " ".join(proc.cmdline())[:120]
    except psutil.Error:
        return "?"


def _inputs(path: Path, rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs():
        shape = [rows if not isinstance(d, int) else d for d in arg.shape]
        feeds[arg.name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    return feeds


def _reference(path: Path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _infer(client, model, feeds, binary=True):
    inputs = []
    for name, array in feeds.items():
        tensor = httpclient.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return client.infer(model, inputs)


def _post(url, body: bytes, headers=None):
    request = urllib.request.Request(url, data=body, method="POST", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_health_and_metadata(server):
    client = server.client()
    assert client.is_server_live() and client.is_server_ready()
    for model in (ZOO, THIRD):
        assert client.is_model_ready(model)
        meta = client.get_model_metadata(model)
        assert meta["name"] == model and meta["inputs"] and meta["outputs"]
        assert meta["inputs"][0]["shape"][0] == -1 and meta["parameters"]["max_batch_size"] == MAX_BATCH
    third = client.get_model_metadata(THIRD)
    assert third["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, FEATURES]}]


def check_answers_match_onnxruntime(server, model, binary):
    path = server.zoo_path if model == ZOO else server.third_path
    client = server.client()
    for rows, seed in ((1, 1), (3, 2)):
        feeds = _inputs(path, rows, seed)
        result = _infer(client, model, feeds, binary=binary)
        for name, want in _reference(path, feeds).items():
            got = result.as_numpy(name)
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_allclose(got, want, rtol=rtol("fp32") * 100, atol=atol("fp32", 64))
        params = result.get_response()["parameters"]
        assert params["batch_rows"] >= rows and params["batch_bucket"] >= params["batch_rows"]


def _load(server, model, path, requests, concurrency, bad_at=()):
    """`requests` infers from `concurrency` threads (bounded); (index, result or exception)."""
    client = server.client(concurrency)
    feeds = [_inputs(path, 1 + i % 2, 100 + i) for i in range(requests)]
    for i in bad_at:
        feeds[i] = {"x": np.ones((1, FEATURES + 1), np.float32)}

    def one(i):
        try:
            return i, _infer(client, model, feeds[i])
        except InferenceServerException as exc:
            return i, exc

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(requests), timeout=120)), feeds


def check_concurrent_load_batches_without_errors(server):
    results, feeds = _load(server, THIRD, server.third_path, requests=48, concurrency=16)
    errors = [r for _, r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    batches = []
    for i, result in results:
        np.testing.assert_allclose(result.as_numpy("y"), _reference(server.third_path, feeds[i])["y"],
                                   rtol=rtol("fp32") * 100, atol=atol("fp32", FEATURES))
        batches.append(result.get_response()["parameters"]["batch_requests"])
    assert max(batches) > 1, batches
    assert max(batches) <= MAX_BATCH


def check_a_bad_request_among_good_ones_gets_its_own_400(server):
    results, feeds = _load(server, THIRD, server.third_path, requests=16, concurrency=8, bad_at=(5,))
    for i, result in results:
        if i == 5:
            assert isinstance(result, InferenceServerException) and result.status() == "400"
            assert "expects dim 1 = 8" in result.message() and "\n" not in result.message()
        else:
            assert not isinstance(result, Exception), result


def check_malformed_bodies_are_one_line_400s(server):
    url = f"{server.url}/v2/models/{THIRD}/infer"
    cases = [b"{not json", json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, FEATURES],
                                                   "data": [1.0] * (FEATURES - 1)}]}).encode(),
             json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, FEATURES],
                                     "parameters": {"binary_data_size": 4 * FEATURES}}]}).encode(),
             json.dumps({"inputs": "x"}).encode()]
    for body in cases:
        status, answer = _post(url, body)
        assert status == 400, (body, answer)
        message = json.loads(answer)["error"]
        assert message and "\n" not in message and "Traceback" not in message


def check_unknown_model_and_route_are_404(server):
    status, answer = _post(f"{server.url}/v2/models/nope/infer", b"{}")
    assert status == 404 and "unknown model 'nope'" in json.loads(answer)["error"]
    with pytest.raises(InferenceServerException) as info:
        server.client().get_model_metadata("nope")
    assert info.value.status() == "404"
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{server.url}/v3/what", timeout=30)
    assert info.value.code == 404


def check_every_started_process_listens_on_loopback_only(server):
    listening = []
    for proc in [psutil.Process(server.proc.pid), *server.started()]:
        try:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    listening.append((proc.pid, _cmd(proc), conn.laddr.ip, conn.laddr.port))
        except psutil.NoSuchProcess:
            continue
    assert listening, "no listening socket seen"
    assert any(port == int(server.url.rsplit(":", 1)[1]) for *_, port in listening)

    def loopback(ip):
        addr = ip_address(ip.split("%")[0])
        return addr.is_loopback or (getattr(addr, "ipv4_mapped", None) is not None and addr.ipv4_mapped.is_loopback)

    outside = [item for item in listening if not loopback(item[2])]
    assert not outside, f"listening beyond loopback: {outside}"


def check_a_killed_replica_is_restarted_and_serves_again(server):
    replicas = [p for p in server.started() if f"ServeReplica:tritonnx-{THIRD}:{THIRD}" in _cmd(p)]
    assert len(replicas) == 1, [_cmd(p) for p in server.started()]
    replicas[0].kill()
    replicas[0].wait(timeout=30)
    feeds = _inputs(server.third_path, 2, 7)
    deadline, last = time.monotonic() + 90, None
    while time.monotonic() < deadline:
        try:
            result = _infer(server.client(), THIRD, feeds)
            break
        except InferenceServerException as exc:
            last = exc
            assert "Traceback" not in exc.message()
            time.sleep(0.5)
    else:
        pytest.fail(f"no answer within 90 s of the replica's death: {last}")
    np.testing.assert_allclose(result.as_numpy("y"), _reference(server.third_path, feeds)["y"],
                               rtol=rtol("fp32") * 100, atol=atol("fp32", FEATURES))
    new = [p for p in server.started() if f"ServeReplica:tritonnx-{THIRD}:{THIRD}" in _cmd(p)]
    assert new and new[0].pid != replicas[0].pid


def test_usage_errors_are_one_line_before_torch_or_ray():
    code = ("import sys; from tritonnx.cli import main; rc = main(sys.argv[1:]); "
            "print(rc, 'torch' in sys.modules, 'ray' in sys.modules)")
    for argv, needle in [(["serve"], "no MODEL"), (["serve", "x.onnx"], "no such file"),
                         (["serve", "m.onnx", "--runtime", "tf"], "invalid choice"),
                         (["serve", "mlp", "--address", "10.0.0.1:6379"], "--address"),
                         (["serve", "mlp", "--port", "70000"], "--port"),
                         (["serve", "mlp", "--config", "missing.toml"], "no such file")]:
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60)
        assert done.stdout.split() == ["2", "False", "False"], (argv, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("tritonnx serve: error:") and needle in lines[0], lines


def check_per_model_metrics_reach_prometheus(server):
    feeds = _inputs(server.third_path, 1, 11)
    _infer(server.client(), THIRD, feeds)
    _post(f"{server.url}/v2/models/{THIRD}/infer", b"{oops")
    wanted = ["tritonnx_requests", "tritonnx_errors", "tritonnx_batch_requests", "tritonnx_queue_ms",
              "tritonnx_run_ms"]
    deadline, text = time.monotonic() + 45, ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(server.metrics_url, timeout=30) as r:
            text = r.read().decode()
        mine = [line for line in text.splitlines() if f'model="{THIRD}"' in line]
        if all(any(w in line for line in mine) for w in wanted):
            break
        time.sleep(1)
    missing = [w for w in wanted if not any(w in line and f'model="{THIRD}"' in line for line in text.splitlines())]
    assert not missing, f"not on {server.metrics_url}: {missing}"
    assert any("tritonnx_errors" in line and 'code="400"' in line for line in text.splitlines())


def test_serve_end_to_end(server):
    """Every check against the one server, in order (the replica kill last but one)."""
    check_health_and_metadata(server)
    for model in (ZOO, THIRD):
        for binary in (True, False):
            check_answers_match_onnxruntime(server, model, binary)
    check_concurrent_load_batches_without_errors(server)
    check_a_bad_request_among_good_ones_gets_its_own_400(server)
    check_malformed_bodies_are_one_line_400s(server)
    check_unknown_model_and_route_are_404(server)
    check_every_started_process_listens_on_loopback_only(server)
    check_per_model_metrics_reach_prometheus(server)
    check_a_killed_replica_is_restarted_and_serves_again(server)
    check_answers_match_onnxruntime(server, THIRD, True)
