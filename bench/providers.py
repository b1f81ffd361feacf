"""The benchmark's providers: what runs one workload, each on the same ONNX file or module.

- ``tritonnx``: `tritonnx.InferenceSession` with fusion on (our Triton kernels for the fused nodes).
- ``tritonnx-unfused``: the same session with fusion off (``fusion=False``): what fusion gives.
- ``onnxruntime``: onnxruntime at its best (`bench.ort.OrtRunner`): CUDA provider, EXHAUSTIVE
  conv search, IOBinding, CUDA graphs where accepted; the CPU provider when there is no GPU.
- ``torch``: the torch module the file was exported from, same weights, eager.
- ``torch.compile``: that module under ``torch.compile(mode="max-autotune")`` (GPU only by default).

Each provider's `prepare(work)` returns a callable that runs the model once on the workload's
feeds (already on the device) and returns the outputs as a list of torch tensors; `missing`
says why a provider cannot run here (the row then says so), None when it can.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tritonnx import dtype_names
from tritonnx.errors import InvalidArgument

ALL_PROVIDERS = ("tritonnx", "onnxruntime", "tritonnx-unfused", "torch", "torch.compile")
#: Defaults: every provider on a GPU; no torch.compile on the CPU (its compiles are the slow part).
GPU_DEFAULT_PROVIDERS = ALL_PROVIDERS
CPU_DEFAULT_PROVIDERS = ("tritonnx", "tritonnx-unfused", "onnxruntime", "torch")
#: The provider the speed-up column divides by, and whose output is the agreement reference.
BASELINE = "onnxruntime"


@dataclass
class Workload:
    """One (model, config, dtype, batch) to run: the ONNX file, the module, the feeds."""

    model: str
    config: str
    dtype: str
    batch: int
    onnx_path: Path
    build_module: Callable[[], object]  # -> torch.nn.Module (fp32, eval) with the exported weights
    input_names: list[str]
    inputs: list  # torch tensors on `device`, in `input_names` order, in the row's dtype
    device: object  # torch.device
    seq_len: int | None = None
    options: dict = field(default_factory=dict)

    @property
    def feeds(self) -> dict:
        return dict(zip(self.input_names, self.inputs))


def flatten_outputs(out) -> list:
    """A module's output (tensor, tuple, list, nested) as a flat list of tensors, in order."""
    if isinstance(out, (tuple, list)):
        flat = []
        for item in out:
            flat.extend(flatten_outputs(item))
        return flat
    if isinstance(out, dict):
        return flatten_outputs(list(out.values()))
    return [out]


def torch_dtype(dtype: str):
    """The torch dtype of a dtype name (the one table: `tritonnx.dtype_names`)."""
    return dtype_names.torch_dtype(dtype)


class Provider:
    """Base: a named way to run a workload."""

    name = ""
    #: How peak memory is read: "torch" (the caching allocator's peak) or "device" (free memory drop).
    memory = "torch"

    def missing(self, device) -> str | None:
        return None

    def prepare(self, work: Workload) -> Callable[[], list]:
        raise NotImplementedError

    def note(self) -> str:
        return ""

    def facts(self) -> dict:
        """What really ran, for the row (after `prepare`): e.g. the session's effective kernels."""
        return {}

    def host_overhead(self, runs: int) -> dict:
        """The row's host-overhead columns (`HOST_KEYS`), measured after the timing; {} when the
        provider cannot split a run into its ops and the rest."""
        return {}


#: Row keys of the host overhead (tritonnx rows): medians over profiled runs of the run's wall
#: time, its ops' time (kernels' device time on a GPU, the ops' wall time on the CPU), host =
#: wall - ops, the steps per run, host per step in µs, and whether the run walked a plan.
HOST_KEYS = ("profiled_wall_ms", "ops_ms", "host_ms", "steps", "host_us_step", "planned")


class TritonnxProvider(Provider):
    """`tritonnx.InferenceSession` on the workload's device, fused or not."""

    def __init__(self, fused: bool = True):
        self.fused = fused
        self.name = "tritonnx" if fused else "tritonnx-unfused"
        self._note = ""
        self._session = None
        self._compiles0 = (0, 0)

    def missing(self, device) -> str | None:
        try:
            importlib.import_module("tritonnx.runtime")
            from tritonnx import InferenceSession  # noqa: F401
        except (ImportError, AttributeError) as exc:
            return f"tritonnx runtime not available: {exc}"
        return None

    def prepare(self, work: Workload) -> Callable[[], list]:
        import tritonnx
        import tritonnx.triton_kernels  # noqa: F401 - sets TRITON_INTERPRET on a CPU before anything imports triton

        device = work.device
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" else \
            ["CPUExecutionProvider"]
        # Triton's provider is asked for unless the torch references were chosen (no warning that
        # it cannot run for a choice the user made; a fallback, e.g. an old GPU, still warns).
        from tritonnx.runtime.context import default_kernels

        kernels = work.options.get("kernels") or default_kernels(device)
        if kernels != "torch":
            providers.insert(0, "TritonExecutionProvider")
        from tritonnx.bench.triton_cache import count_compiles

        self._compiles0 = count_compiles()
        sess = tritonnx.InferenceSession(str(work.onnx_path), providers=providers, fusion=self.fused,
                                         **work.options)
        self._session = sess
        feeds = work.feeds
        self._feeds = feeds
        self._note = ""
        ctx = sess.context
        eps = sess.get_providers()
        # The effective settings, after every fallback (e.g. "torch" on a GPU older than sm_80).
        self._facts = {
            "kernels": ctx.kernels, "session_providers": eps,
            "interpreter": bool(ctx.interpret and "TritonExecutionProvider" in eps),
            "tf32": ctx.tf32 if ctx.is_cuda else None,  # a GPU setting: a CPU row claims nothing
        }
        try:
            self._note = "providers: " + ",".join(eps)
            fusion = sess.fusion_report()
            if self.fused:
                self._note += f"; fused {len(fusion.fused)}, declined {len(fusion.declined)}"
        except Exception:  # noqa: BLE001 - a note only
            pass
        if hasattr(sess, "run_torch"):
            def run():
                return flatten_outputs(sess.run_torch(None, feeds))
            return run

        import numpy as np
        import torch

        host = {k: v.detach().cpu().numpy() for k, v in feeds.items()}
        self._note += "; numpy feeds (host copies)"

        def run_numpy():
            return [torch.from_numpy(np.asarray(a)) for a in sess.run(None, host)]
        return run_numpy

    def note(self) -> str:
        """Providers and fusion; CUDA-graph captures and eager fallbacks (with the reason) and the
        Triton compiles since `prepare` (issue 20, items 4 and 5)."""
        parts = [self._note] if self._note else []
        executor = getattr(self._session, "_executor", None)
        if executor is not None and getattr(executor, "graph_backend", None) is not None:
            fallbacks = getattr(executor, "graph_fallbacks", {})
            parts.append(f"cuda graphs: {len(executor.captured_signatures)} captured")
            for reason in dict.fromkeys(fallbacks.values()):
                parts.append(f"EAGER FALLBACK (capture failed): {reason[:160]}")
        from tritonnx.bench.triton_cache import count_compiles

        hits, misses = count_compiles()
        hits, misses = hits - self._compiles0[0], misses - self._compiles0[1]
        if hits or misses:
            parts.append(f"triton: {misses} compiles, {hits} from the cache")
        return "; ".join(parts)

    def facts(self) -> dict:
        return dict(getattr(self, "_facts", {}))

    def host_overhead(self, runs: int) -> dict:
        """`runs` profiled runs (`InferenceSession.run_profiled`, on the signature's plan): the
        run of median host time (lower median), so its wall, ops and host (= wall - ops) ms agree;
        host µs per step = host / steps."""
        sess, feeds = self._session, getattr(self, "_feeds", None)
        if sess is None or feeds is None or not hasattr(sess, "run_profiled"):
            return {}
        profiles = sorted((sess.run_profiled(None, feeds)[1] for _ in range(max(runs, 1))),
                          key=lambda p: p.host_ms)
        mid = profiles[(len(profiles) - 1) // 2]
        return {"profiled_wall_ms": mid.wall_ms, "ops_ms": mid.ops_ms, "host_ms": mid.host_ms, "steps": mid.steps,
                "host_us_step": mid.host_us_per_step if mid.steps else None, "planned": mid.planned}


class OnnxruntimeProvider(Provider):
    name = "onnxruntime"
    memory = "device"

    def __init__(self):
        self._note = ""

    def missing(self, device) -> str | None:
        try:
            import onnxruntime as ort
        except ImportError:
            return "onnxruntime not installed (tritonnx[gpu] on a GPU machine, tritonnx[cpu] on a CPU one)"
        if device.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
            return (f"onnxruntime-gpu missing: onnxruntime {ort.__version__} has only "
                    f"{', '.join(ort.get_available_providers())}")
        return None

    def prepare(self, work: Workload) -> Callable[[], list]:
        from tritonnx.bench.ort import OrtRunner

        runner = OrtRunner(work.onnx_path, work.feeds, tf32=work.options.get("tf32", True))
        self._note = f"{runner.provider}" + (f"; {runner.note}" if runner.note else "")
        return runner

    def note(self) -> str:
        return self._note


class TorchProvider(Provider):
    """The exported module itself, same weights, eager or under torch.compile."""

    def __init__(self, compiled: bool = False):
        self.compiled = compiled
        self.name = "torch.compile" if compiled else "torch"

    def missing(self, device) -> str | None:
        if self.compiled:
            import torch

            if not hasattr(torch, "compile"):
                return "torch.compile not in this torch"
        return None

    def prepare(self, work: Workload) -> Callable[[], list]:
        import torch

        module = work.build_module()
        float_dtype = torch_dtype(work.dtype)
        module = module.to(device=work.device, dtype=float_dtype).eval()
        if self.compiled:
            module = torch.compile(module, mode="max-autotune")
        inputs = list(work.inputs)

        def run():
            with torch.inference_mode():
                return flatten_outputs(module(*inputs))
        return run

    def note(self) -> str:
        return "mode=max-autotune" if self.compiled else ""


def make_provider(name: str) -> Provider:
    """A fresh provider by its CLI name; unknown names raise InvalidArgument listing the valid ones."""
    if name == "tritonnx":
        return TritonnxProvider(fused=True)
    if name == "tritonnx-unfused":
        return TritonnxProvider(fused=False)
    if name == "onnxruntime":
        return OnnxruntimeProvider()
    if name == "torch":
        return TorchProvider(compiled=False)
    if name == "torch.compile":
        return TorchProvider(compiled=True)
    raise InvalidArgument(f"unknown provider {name!r}: expected one of {', '.join(ALL_PROVIDERS)}")


def default_providers(on_gpu: bool) -> list[str]:
    return list(GPU_DEFAULT_PROVIDERS if on_gpu else CPU_DEFAULT_PROVIDERS)


def parse_providers(text: str | None, *, on_gpu: bool) -> list[str]:
    """'--providers' value -> ordered provider names (DESIGN order: torch.compile last)."""
    if not text:
        return default_providers(on_gpu)
    if text == "all":
        return list(ALL_PROVIDERS)
    names = [p.strip() for p in text.split(",") if p.strip()]
    for name in names:
        make_provider(name)  # validates
    return [p for p in ALL_PROVIDERS if p in names]
