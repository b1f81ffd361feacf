"""The benchmark's CUDA paths (device-side timing, IOBinding on device pointers, peak memory,
roofline), run by `pytest -m gpu` on a lent machine before the long sweep spends its time."""
import pytest
import torch

from bench_fakes import FakeZoo, fake_export
from tritonnx.bench import devices
from tritonnx.bench.harness import BenchSettings, Harness

pytestmark = pytest.mark.gpu


def _ort_gpu() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def test_sweep_on_cuda(tmp_path):
    zoo = FakeZoo()
    settings = BenchSettings(models=["fake_mlp"], out=tmp_path / "res", config="tiny", batches=[1, 64],
                             dtypes=["fp16", "fp32"], providers=["tritonnx", "onnxruntime", "tritonnx-unfused", "torch"],
                             quick=True)
    result = Harness(settings, zoo=zoo, export_fn=fake_export(zoo), progress=False, log=lambda m: None).run()
    assert len(result.rows) == 16
    for row in result.rows:
        if row["provider"] == "onnxruntime" and not _ort_gpu():
            assert row["status"] == "missing" and "onnxruntime-gpu" in row["note"]
            continue
        assert row["status"] == "ok", (row["provider"], row["note"], row.get("traceback"))
        assert row["timing"] == "cuda-events" and row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
        assert row["compile_cold_s"] > 0 and row["compile_warm_s"] > 0
        assert row["peak_mem_mib"] is not None
        assert row["max_rel_err"] < (2e-2 if row["dtype"] == "fp16" else 1e-2)
        assert row["flops"] > 0 and row["bytes"] > 0
        assert row["device"] == torch.cuda.get_device_name(0)
        if devices.lookup(row["device"]) is not None:
            assert 0 < row["roofline"] < 1


@pytest.mark.skipif(not _ort_gpu(), reason="needs onnxruntime-gpu")
def test_ort_runner_binds_device_pointers():
    from onnx import TensorProto, helper

    from tritonnx.bench.ort import OrtRunner, timing_stream

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT16, ["N", 64]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT16, [64, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["N", 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    gen = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(16, 64, device="cuda", generator=gen, dtype=torch.float16)
    b = torch.randn(64, 32, device="cuda", generator=gen, dtype=torch.float16)
    torch.cuda.synchronize()
    # Everything on one non-default stream, onnxruntime's too (user_compute_stream): the in-place
    # write below is ordered before the next run. On torch's default stream (handle 0)
    # onnxruntime would run on a stream of its own and race the copy.
    with timing_stream(torch.device("cuda")) as stream:
        runner = OrtRunner(model, {"a": a, "b": b})
        assert runner.stream == stream.cuda_stream != 0
        (y,) = runner.outputs
        y.fill_(float("nan"))
        runner()
        torch.cuda.synchronize()
        assert y.device.type == "cuda" and runner.provider == "CUDAExecutionProvider"
        torch.testing.assert_close(y.float(), torch.relu(a.float() @ b.float()), rtol=2e-2, atol=2e-2)
        a.copy_(-a)  # the binding reads the tensor's memory, so a new value in place is seen
        runner()
        torch.cuda.synchronize()
        torch.testing.assert_close(y.float(), torch.relu(a.float() @ b.float()), rtol=2e-2, atol=2e-2)
