import pytest
import torch

from tritonnx.runtime.context import build_context, supported_kernels


@pytest.fixture
def fake_gpu(monkeypatch):
    def use(capability, name):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)

    return use


def test_pre_ampere_gpu_gets_one_warning_and_the_torch_path(fake_gpu):
    fake_gpu((7, 5), "Tesla T4")
    with pytest.warns(RuntimeWarning, match=r"Tesla T4 is sm_75; .*need sm_80 or newer.*torch references"):
        ctx = build_context(torch.device("cuda", 0), {"kernels": "triton"})
    assert ctx.kernels == "torch"


@pytest.mark.parametrize("capability", [(8, 0), (8, 9), (9, 0)], ids=["sm_80", "sm_89", "sm_90"])
def test_supported_gpus_keep_the_triton_kernels(fake_gpu, capability, recwarn):
    fake_gpu(capability, "some GPU")
    assert supported_kernels(torch.device("cuda", 0), "triton") == "triton"
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_cpu_and_torch_mode_are_left_alone(fake_gpu):
    fake_gpu((7, 0), "Tesla V100")
    assert supported_kernels(torch.device("cpu"), "triton") == "triton"  # the interpreter
    assert supported_kernels(torch.device("cuda", 0), "torch") == "torch"
