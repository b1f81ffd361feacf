"""What a result set records about where and how it was produced (DESIGN.md, Benchmark rules)."""
from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _nvidia_smi(query: str) -> str | None:
    try:
        proc = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else None


def utc_stamp() -> str:
    """UTC time for folder names: 20261125T121500Z."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def collect(argv: list[str] | None = None, *, tf32: bool = True, kernels: str | None = None,
            sampling: dict | None = None) -> dict:
    """The environment of this run: device, driver, versions, commit, command, settings.

    Only what is known before any row ran: `kernels` is what the command asked for (None: the
    runtime's default). What really ran (the sessions' effective kernels after every fallback,
    whether Triton's interpreter ran, tf32 as the sessions' contexts hold it) is added by
    `record_effective` from the rows, never guessed here. `tf32` is recorded on a GPU only (a
    CPU has no tf32).
    """
    import torch

    on_gpu = torch.cuda.is_available()
    ort_version, ort_providers = None, None
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
        ort_providers = onnxruntime.get_available_providers()
    except ImportError:
        pass
    status = _git("status", "--porcelain", "--untracked-files=no")
    env = {
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if on_gpu else "cpu",
        "gpu": on_gpu,
        "driver": _nvidia_smi("driver_version") if on_gpu else None,
        "cuda": torch.version.cuda,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "triton": _version("triton"),
        "onnx": _version("onnx"),
        "onnxscript": _version("onnxscript"),
        "onnxruntime": ort_version,
        "onnxruntime_providers": ort_providers,
        "numpy": _version("numpy"),
        "tritonnx": _version("tritonnx"),
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(status) if status is not None else None,
        "command": shlex.join(argv if argv is not None else ["tritonnx", *sys.argv[1:]]),
        "tf32": tf32 if on_gpu else None,
        "kernels_requested": kernels or os.environ.get("TRITONNX_KERNELS") or None,
        "kernels": None,  # what ran: filled from the rows by record_effective
        "interpreter": None,
        "triton_interpret": os.environ.get("TRITON_INTERPRET"),
        "timing": "cuda-events (per-run CUDA events)" if on_gpu else
        "cpu-wall (CPU times, not performance figures; rows under Triton's interpreter say cpu-interpreter)",
        "sampling": sampling,
    }
    return env


def effective(rows: list[dict]) -> dict:
    """What the rows say really ran, as the tritonnx sessions' contexts reported it (the
    effective settings after every fallback, `bench.providers`): their kernels (one value, or a
    sorted list when rows differ; None when no tritonnx row ran), whether any row ran under
    Triton's interpreter, and, when rows on a GPU say so, tf32 (one value or a sorted list;
    absent otherwise, so `collect`'s GPU-only value stays)."""
    ran = [r for r in rows if r.get("status") == "ok" and r.get("kernels")]
    kernels = sorted({r["kernels"] for r in ran})
    out = {
        "kernels": (kernels[0] if len(kernels) == 1 else kernels) if kernels else None,
        "interpreter": any(r.get("interpreter") for r in ran) if ran else None,
        "timing_labels": sorted({r["timing"] for r in rows if r.get("timing")}),
    }
    tf32 = sorted({r["tf32"] for r in ran if r.get("tf32") is not None})
    if tf32:
        out["tf32"] = tf32[0] if len(tf32) == 1 else tf32
    return out


def record_effective(out: Path, rows: list[dict]) -> dict:
    """Add `effective(rows)` to ``out/env.json``; returns the updated environment."""
    import json

    path = Path(out) / "env.json"
    env = json.loads(path.read_text(encoding="utf-8"))
    env.update(effective(rows))
    path.write_text(json.dumps(env, indent=1), encoding="utf-8")
    return env


def record(out: Path, env: dict) -> dict:
    """Write `env` as ``out/env.json``; a folder that has one already gets this command added.

    Raises:
        InvalidArgument: the folder holds results of another device (sets are never merged).
    """
    import json

    from tritonnx.errors import InvalidArgument

    out = Path(out)
    path = out / "env.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("device") != env["device"]:
            raise InvalidArgument(
                f"result set {out} was measured on {old.get('device')!r}, this is {env['device']!r}: "
                "one result set per device, never merged; use a new --out"
            )
        old.setdefault("commands", [old.get("command")])
        old["commands"].append(env["command"])
        env = old
    else:
        env = dict(env, commands=[env["command"]])
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(env, indent=1), encoding="utf-8")
    return env
