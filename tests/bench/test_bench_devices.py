import pytest

from tritonnx.bench import devices
from tritonnx.errors import InvalidArgument


@pytest.mark.parametrize(
    "torch_name, spec_name",
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA GH200 480GB", "GH200"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100 SXM 40GB"),
        ("NVIDIA A100-PCIE-40GB", "A100 PCIe 40GB"),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", "L40S"),
        ("Tesla T4", "T4"),
    ],
)
def test_lookup_by_torch_name(torch_name, spec_name):
    assert devices.lookup(torch_name).name == spec_name


@pytest.mark.parametrize("name", ["cpu", "NVIDIA GeForce GTX 1080", "", None, "NVIDIA L40"])
def test_unknown_device_has_no_roofline(name):
    assert devices.lookup(name) is None
    assert devices.roofline_fraction(1e9, 1e6, 1.0, "fp16", device_name=name or "cpu") is None


def test_roofline_fraction_compute_and_memory_bound():
    h100 = devices.lookup("NVIDIA H100 80GB HBM3")
    # 989.4 TFLOP/s fp16: 989.4e9 FLOPs take 1 ms at peak.
    assert devices.roofline_fraction(989.4e9, 1.0, 2.0, "fp16", device_name="NVIDIA H100 80GB HBM3") == pytest.approx(0.5)
    # 3.35 TB/s: 3.35e9 bytes take 1 ms.
    assert devices.roofline_fraction(1.0, 3.35e9, 1.0, "fp32", device_name="NVIDIA H100 80GB HBM3") == pytest.approx(1.0)
    assert h100.peak_flops("fp32", tf32=True) == pytest.approx(494.7e12)
    assert h100.peak_flops("float32", tf32=False) == pytest.approx(67e12)
    assert devices.roofline_fraction(None, 1.0, 1.0, "fp16", device_name="NVIDIA H200") is None
    assert devices.roofline_fraction(1.0, 1.0, None, "fp16", device_name="NVIDIA H200") is None


def test_canonical_dtype():
    assert [devices.canonical_dtype(x) for x in ("float32", "FP16", "bfloat16")] == ["fp32", "fp16", "bf16"]
    with pytest.raises(InvalidArgument, match="fp32, fp16, bf16"):
        devices.canonical_dtype("int8")
