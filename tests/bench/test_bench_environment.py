"""The environment record reads the settings that really ran from the sessions' contexts (after
every fallback: sm<80 -> torch kernels, tf32 off, the interpreter), never recomputed defaults."""
from __future__ import annotations

import json

import pytest
import torch

from tritonnx.bench import environment
from tritonnx.bench.providers import TritonnxProvider, Workload
from tritonnx.runtime.context import build_context


class _FakeSession:
    """What `TritonnxProvider.prepare` reads of a session: its context and providers."""

    def __init__(self, ctx, providers):
        self.context = ctx
        self._providers = providers

    def get_providers(self):
        return list(self._providers)

    def fusion_report(self):
        raise RuntimeError("no report")

    def run_torch(self, names, feeds):
        return [next(iter(feeds.values()))]


def _facts(monkeypatch, ctx, providers, options):
    import tritonnx

    seen = {}

    def session(path, **kwargs):
        seen.update(kwargs)
        return _FakeSession(ctx, providers)

    monkeypatch.setattr(tritonnx, "InferenceSession", session)
    work = Workload(model="m", config="tiny", dtype="fp32", batch=1, onnx_path="m.onnx",
                    build_module=lambda: None, input_names=["x"], inputs=[torch.ones(1)],
                    device=ctx.device, options=options)
    provider = TritonnxProvider(fused=True)
    provider.prepare(work)
    return provider.facts(), seen


def test_old_gpu_fallback_and_tf32_come_from_the_context(monkeypatch):
    """A GPU older than sm_80 asked for Triton kernels with tf32 off: the row says what the
    context holds (torch kernels, tf32 off, no interpreter), and so does the environment."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    with pytest.warns(RuntimeWarning, match="sm_75"):
        ctx = build_context(torch.device("cuda"), {"kernels": "triton", "tf32": False})
    facts, seen = _facts(monkeypatch, ctx, ["CUDAExecutionProvider"], {"kernels": "triton", "tf32": False})
    assert seen["providers"][0] == "TritonExecutionProvider"  # asked for; the fallback is the session's
    assert facts == {"kernels": "torch", "session_providers": ["CUDAExecutionProvider"],
                     "interpreter": False, "tf32": False}
    rows = [{"status": "ok", "timing": "cuda-events", **facts},
            {"status": "ok", "timing": "cuda-events", "kernels": None, "tf32": False}]
    eff = environment.effective(rows)
    assert eff == {"kernels": "torch", "interpreter": False, "timing_labels": ["cuda-events"], "tf32": False}


def test_cpu_rows_claim_no_tf32_and_name_the_interpreter(monkeypatch, tmp_path):
    ctx = build_context(torch.device("cpu"), {"kernels": "triton"})
    facts, _ = _facts(monkeypatch, ctx, ["TritonExecutionProvider", "CPUExecutionProvider"], {"kernels": "triton"})
    assert facts["kernels"] == "triton" and facts["interpreter"] is True and facts["tf32"] is None
    (tmp_path / "env.json").write_text(json.dumps({"tf32": None, "kernels": None, "interpreter": None}))
    env = environment.record_effective(tmp_path, [{"status": "ok", "timing": "cpu-interpreter", **facts}])
    assert env["tf32"] is None and env["kernels"] == "triton" and env["interpreter"] is True
    assert json.loads((tmp_path / "env.json").read_text()) == env


def test_the_kernels_default_is_the_runtimes(monkeypatch):
    """No kernels option: Triton's provider is asked for exactly when the runtime's default
    (`runtime.context.default_kernels`, TRITONNX_KERNELS first) is "triton"."""
    ctx = build_context(torch.device("cpu"), {})
    for env, asked in (("triton", True), ("torch", False)):
        monkeypatch.setenv("TRITONNX_KERNELS", env)
        _, seen = _facts(monkeypatch, ctx, ["CPUExecutionProvider"], {})
        assert ("TritonExecutionProvider" in seen["providers"]) is asked, env
