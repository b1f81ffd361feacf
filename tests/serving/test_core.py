"""The serving core without Ray: the KServe v2 codec, validation, batching and bucketing."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from tritonnx.serve.batching import ModelServer, buckets, bucket_for
from tritonnx.serve.protocol import ProtocolError, decode_request, encode_response

from .models import FEATURES, matmul_relu


class NodeArg:
    def __init__(self, name, type, shape):
        self.name, self.type, self.shape = name, type, shape


class RecordingSession:
    """y = 2 * x, recording the batch of each run."""

    def __init__(self, shape=("batch", 3)):
        self.shape = list(shape)
        self.calls = []

    def get_inputs(self):
        return [NodeArg("x", "tensor(float)", self.shape)]

    def get_outputs(self):
        return [NodeArg("y", "tensor(float)", self.shape)]

    def run(self, names, feeds):
        self.calls.append(feeds["x"].shape)
        return [feeds["x"] * 2]


def _x(rows, seed, cols=3):
    return np.random.default_rng(seed).uniform(0.5, 1.5, (rows, cols)).astype(np.float32)


def test_buckets():
    assert buckets(16) == [1, 2, 4, 8, 16] and buckets(12) == [1, 2, 4, 8, 12] and buckets(1) == [1]
    assert [bucket_for(n, buckets(16)) for n in (1, 2, 3, 5, 9, 16)] == [1, 2, 4, 8, 16, 16]


def test_json_round_trip_every_datatype():
    for datatype, values in [("FP32", [1.5, -2.0]), ("FP16", [0.5, 1.0]), ("FP64", [1e-300, 2.0]),
                             ("INT8", [-3, 4]), ("INT64", [2**40, -1]), ("UINT8", [0, 255]),
                             ("BOOL", [True, False]), ("BYTES", ["ab", "c"])]:
        body = json.dumps({"id": "r1", "inputs": [{"name": "t", "datatype": datatype, "shape": [2, 1],
                                                   "data": values}]}).encode()
        request = decode_request(body)
        array = request.inputs["t"]
        assert array.shape == (2, 1)
        out, header = encode_response("m", {"t": array}, request=request)
        assert header is None
        doc = json.loads(out)
        assert doc["id"] == "r1" and doc["outputs"][0]["datatype"] == datatype
        assert doc["outputs"][0]["data"] == values


def test_binary_extension_round_trip():
    x = _x(2, 0)
    words = [b"hi", b"there!"]
    raw_b = b"".join(struct.pack("<I", len(w)) + w for w in words)
    head = json.dumps({"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [2, 3], "parameters": {"binary_data_size": x.nbytes}},
        {"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": len(raw_b)}}],
        "parameters": {"binary_data_output": True}}).encode()
    request = decode_request(head + x.tobytes() + raw_b, header_length=len(head))
    np.testing.assert_array_equal(request.inputs["x"], x)
    assert list(request.inputs["s"]) == words
    body, header = encode_response("m", {"y": x, "s": request.inputs["s"]}, request=request)
    doc = json.loads(body[:header])
    assert doc["outputs"][0]["parameters"]["binary_data_size"] == x.nbytes
    np.testing.assert_array_equal(np.frombuffer(body[header:header + x.nbytes], np.float32).reshape(2, 3), x)
    assert body[header + x.nbytes:] == raw_b


@pytest.mark.parametrize("body, match", [
    (b"{not json", "malformed JSON"),
    (b"[]", "must be a JSON object"),
    (b'{"inputs": []}', "no 'inputs'"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 3], "data": [1, 2]}]}', "needs 6 elements"),
    (b'{"inputs": [{"name": "x", "datatype": "FP99", "shape": [1], "data": [1]}]}', "datatype 'FP99'"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": [1]}]}', "non-negative"),
    (b'{"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1.5]}]}', "integers"),
], ids=["json", "array", "no-inputs", "count", "datatype", "shape", "int-data"])
def test_malformed_requests_are_one_line_errors(body, match):
    with pytest.raises(ProtocolError, match=match) as info:
        decode_request(body)
    assert "\n" not in str(info.value)


def test_validation_names_dtypes_ranks_dims():
    server = ModelServer("m", RecordingSession(("batch", 3)), max_batch_size=4)
    cases = [({"z": _x(1, 0)}, "no input 'z'"), ({}, "input 'x' is missing"),
             ({"x": _x(1, 0).astype(np.float64)}, "expects FP32, got FP64"),
             ({"x": np.ones((1, 3, 1), np.float32)}, "expects rank 2"),
             ({"x": _x(1, 0, cols=4)}, "expects dim 1 = 3"),
             ({"x": _x(5, 0)}, "exceeds max_batch_size 4")]
    for inputs, match in cases:
        with pytest.raises(ProtocolError, match=match):
            server.validate(inputs)
    with pytest.raises(ProtocolError, match="no output 'q'"):
        server.validate({"x": _x(1, 0)}, ["q"])


def test_batching_pads_to_buckets_and_splits():
    session = RecordingSession()
    server = ModelServer("m", session, max_batch_size=8)
    xs = [_x(n, i) for i, n in enumerate([1, 2, 2])]  # 5 rows -> bucket 8
    results = server.run_batch([server.validate({"x": x}) for x in xs])
    assert session.calls == [(8, 3)]
    for x, result in zip(xs, results):
        np.testing.assert_array_equal(result["y"], x * 2)
        assert result[None]["requests"] == 3 and result[None]["rows"] == 5 and result[None]["bucket"] == 8
    session.calls.clear()
    xs = [_x(4, 0), _x(3, 1), _x(2, 2)]  # 9 rows > 8: two runs, 7 -> 8 and 2 -> 2
    results = server.run_batch([server.validate({"x": x}) for x in xs])
    assert session.calls == [(8, 3), (2, 3)]
    for x, result in zip(xs, results):
        np.testing.assert_array_equal(result["y"], x * 2)


def test_other_non_batch_dims_run_in_their_own_batch():
    session = RecordingSession(("batch", "seq"))
    server = ModelServer("m", session, max_batch_size=8)
    xs = [_x(1, 0, cols=3), _x(1, 1, cols=5), _x(1, 2, cols=3)]
    results = server.run_batch([server.validate({"x": x}) for x in xs])
    assert sorted(session.calls) == [(1, 5), (2, 3)]
    for x, result in zip(xs, results):
        np.testing.assert_array_equal(result["y"], x * 2)


def test_a_failing_run_answers_only_its_requests():
    class Failing(RecordingSession):
        def run(self, names, feeds):
            if feeds["x"].shape[1] == 5:
                raise RuntimeError("boom\nsecond line")
            return super().run(names, feeds)

    server = ModelServer("m", Failing(("batch", "seq")), max_batch_size=8)
    results = server.run_batch([server.validate({"x": _x(1, 0, cols=5)}), server.validate({"x": _x(1, 1)})])
    assert "boom second line" in str(results[0]) and "\n" not in str(results[0])
    np.testing.assert_array_equal(results[1]["y"], _x(1, 1) * 2)


def test_unbatchable_model_runs_each_request_alone():
    session = RecordingSession((2, 3))
    server = ModelServer("m", session, max_batch_size=8)
    assert not server.batchable and server.metadata()["parameters"]["max_batch_size"] == 0
    server.run_batch([server.validate({"x": _x(2, 0)}), server.validate({"x": _x(2, 1)})])
    assert session.calls == [(2, 3), (2, 3)]


def test_tritonnx_session_matches_onnxruntime(tmp_path):
    import onnxruntime as ort

    import tritonnx

    path = matmul_relu(tmp_path / "m.onnx")
    server = ModelServer("m", tritonnx.InferenceSession(str(path)), max_batch_size=4)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = [_x(n, i, cols=FEATURES) for i, n in enumerate([1, 2])]
    meta = server.metadata()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, FEATURES]}]
    for x, result in zip(xs, server.run_batch([server.validate({"x": x}) for x in xs])):
        np.testing.assert_allclose(result["y"], ref.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_buckets_reuse_cuda_graphs(tmp_path):
    """On a GPU: batches of 3, 5, 3, 7, 1 rows run as buckets 4, 8, 4, 8, 1: three graphs."""
    import tritonnx

    path = matmul_relu(tmp_path / "m.onnx")
    session = tritonnx.InferenceSession(str(path), providers=["CUDAExecutionProvider"], cuda_graphs=True)
    server = ModelServer("m", session, max_batch_size=8)
    for seed, rows in enumerate([3, 5, 3, 7, 1]):
        requests = [server.validate({"x": _x(1, seed * 10 + i, cols=FEATURES)}) for i in range(rows)]
        server.run_batch(requests)
    batches = sorted(sig[0][1][0] for sig in session._executor.captured_signatures)
    assert batches == [1, 4, 8]
