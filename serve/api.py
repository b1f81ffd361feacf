"""Start and stop a `tritonnx serve` deployment from Python (what the CLI and `serve bench` call).

    from tritonnx.serve import api
    with api.start(["lenet5.onnx"], port=0) as handle:     # a private local Ray instance
        print(handle.url, handle.models)                   # http://127.0.0.1:PORT ['lenet5']

Importing this module does not import Ray; `start` does (the ``serve`` extra). With
``address="local"`` the Ray instance is this process's own, kept on loopback
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: without it Ray 2.60 binds its servers to the
machine's other interface too), without the dashboard and usage stats; `ServeHandle.stop`
ends every process that `start` started.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

APP_NAME = "tritonnx"
#: Set in this process's environment before a local Ray starts (unless already set).
LOCAL_RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


class MissingExtra(ImportError):
    """Ray Serve is not installed (the ``serve`` extra)."""


def _import_ray():
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MissingExtra(f"tritonnx serve needs Ray Serve (the serve extra: pip install -e '.[serve]'): "
                           f"{exc}") from None
    return ray, serve


def _keep_ray_on_loopback() -> None:
    """Before a local Ray starts: its servers on loopback only, no usage stats.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` when it is imported (and its child processes
    when they start): set it first, and patch the constant where Ray is already imported.
    """
    for key, value in LOCAL_RAY_ENV.items():
        os.environ.setdefault(key, value)
    if os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] == "0":
        import sys

        constants = sys.modules.get("ray._private.ray_constants")
        if constants is not None:
            constants.ENABLE_RAY_CLUSTER = False


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (the kernel's choice)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def model_name(spec: str) -> str:
    """The URL name of a model given as a path or zoo name: the file stem or the name."""
    name = Path(spec).stem if spec.endswith(".onnx") or os.sep in spec else spec
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "model"


def resolve_models(models: list[str], names: list[str] | None, workdir_factory, zoo_config: str = "paper") -> list[dict]:
    """[{"name", "path"}] for ONNX paths and zoo names (exported into `workdir_factory()`)."""
    if not models:
        raise ValueError("no model given")
    if names is not None and len(names) != len(models):
        raise ValueError(f"{len(names)} names for {len(models)} models")
    out = []
    for i, spec in enumerate(models):
        spec = str(spec)
        name = names[i] if names is not None else model_name(spec)
        if name == "bench":
            raise ValueError("'bench' is not a model name (it is the `tritonnx serve bench` verb)")
        if Path(spec).is_file():
            path = str(Path(spec).resolve())
        else:
            import tritonnx.zoo

            if spec not in tritonnx.zoo.names():
                raise ValueError(f"{spec!r} is neither an ONNX file nor a zoo model")
            from tritonnx.export import export_model

            path = str(Path(workdir_factory()) / f"{spec}.onnx")
            export_model(spec, path, config=zoo_config)
        out.append({"name": name, "path": path})
    seen = [m["name"] for m in out]
    dup = sorted({n for n in seen if seen.count(n) > 1})
    if dup:
        raise ValueError(f"two models are named {dup[0]!r}; give them distinct files or names")
    return out


def is_local(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


@dataclass
class ServeHandle:
    """A running deployment: its URL and model names; `stop` ends what `start` started."""

    url: str
    models: list[str]
    pids: list[int]
    specs: list[dict] = field(repr=False)
    settings: dict = field(repr=False)
    owns_ray: bool = field(repr=False, default=True)
    disconnect: bool = field(repr=False, default=False)
    workdir: str | None = field(repr=False, default=None)
    _stopped: bool = field(repr=False, default=False)

    def reconfigure(self, *, batch_wait_ms: float | None = None, max_batch_size: int | None = None) -> None:
        """Change the batching of every model without a redeploy (Ray Serve user_config).

        `max_batch_size` may not exceed the one deployed (``max_ongoing_requests`` is fixed).
        """
        from .deployment import build_apps

        _, serve = _import_ray()
        if max_batch_size is not None and max_batch_size > self.settings["max_batch_size"]:
            raise ValueError(f"max_batch_size {max_batch_size} exceeds the deployed "
                             f"{self.settings['max_batch_size']} (redeploy for more)")
        specs = []
        for spec in self.specs:
            spec = dict(spec)
            spec["max_ongoing_requests"] = max(2 * int(spec.get("max_batch_size", self.settings["max_batch_size"])), 8)
            if batch_wait_ms is not None:
                spec["batch_wait_ms"] = batch_wait_ms
            if max_batch_size is not None:
                spec["max_batch_size"] = max_batch_size
            specs.append(spec)
        self.specs = specs
        serve.run_many(build_apps(specs, **self.settings), blocking=False)
        _wait_ready(self.url, self.models, 120.0)

    def stop(self) -> None:
        """Delete the app; shut Serve and Ray down if `start` started them; wait for the processes."""
        if self._stopped:
            return
        self._stopped = True
        try:
            ray, serve = _import_ray()
            if ray.is_initialized():
                if self.owns_ray:  # the whole private instance goes: no graceful Serve shutdown needed
                    ray.shutdown()
                else:
                    from .deployment import model_app_name

                    for name in self.models:
                        serve.delete(model_app_name(name))
                    serve.delete(APP_NAME)
                    if self.disconnect:
                        ray.shutdown()
        finally:
            _end_processes(self.pids)
            if self.workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ServeHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _end_processes(pids: list[int], timeout_s: float = 15.0) -> None:
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=5)


def _descendants() -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process().children(recursive=True)}


def _wait_ready(url: str, models: list[str], timeout_s: float) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout_s
    pending = [f"{url}/v2/health/ready"] + [f"{url}/v2/models/{m}/ready" for m in models]
    last = "no answer"
    while pending:
        try:
            with urllib.request.urlopen(pending[0], timeout=5) as r:
                if r.status == 200:
                    pending.pop(0)
                    continue
        except (urllib.error.URLError, OSError) as exc:
            last = _short(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{pending[0]} not ready after {timeout_s:g} s ({last})")
        time.sleep(0.25)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def start(models: list[str], *, names: list[str] | None = None, runtime: str = "tritonnx",
          max_batch_size: int = 16, batch_wait_ms: float = 5.0, host: str = "127.0.0.1", port: int = 8000,
          replicas: int = 1, gpus_per_replica: float = 0.0, address: str = "local",
          model_options: dict[str, dict] | None = None, ray_options: dict | None = None,
          zoo_config: str = "paper", start_timeout_s: float = 300.0) -> ServeHandle:
    """Deploy `models` on Ray Serve (one deployment each) behind the Open Inference Protocol.

    Args:
        models: ONNX paths or zoo names (exported on the fly with `zoo_config`).
        names: the models' URL names (default: file stem / zoo name).
        runtime: "tritonnx" (compiled, fused kernels) or "onnxruntime".
        max_batch_size: requests (rows) per run; bucket sizes 1, 2, 4, ... up to it.
        batch_wait_ms: how long a batch waits to fill.
        host, port: where Ray Serve's HTTP proxy listens (port 0: a free port).
        replicas, gpus_per_replica: per model (fractions let models share a GPU).
        address: "local" (a new Ray instance in this process), "auto" or "ray://HOST:PORT".
        model_options: per model name, settings that override the above for it
            (replicas, gpus_per_replica, cpus_per_replica, max_batch_size, batch_wait_ms,
            runtime, autoscaling_config, max_ongoing_requests).
        ray_options: extra ``ray.init`` keyword arguments.
    Returns:
        A `ServeHandle` (answers /v2/health/ready and each model's ready route).
    """
    if runtime not in ("tritonnx", "onnxruntime"):
        raise ValueError(f"runtime must be tritonnx or onnxruntime, got {runtime!r}")
    if max_batch_size < 1 or replicas < 1 or gpus_per_replica < 0 or batch_wait_ms < 0:
        raise ValueError("max_batch_size and replicas must be >= 1, gpus_per_replica and batch_wait_ms >= 0")
    if address == "local":
        _keep_ray_on_loopback()
    ray, serve = _import_ray()
    from . import deployment
    from tritonnx._version import __version__

    workdir: list[str] = []

    def make_workdir() -> str:
        if not workdir:
            workdir.append(tempfile.mkdtemp(prefix="tritonnx-serve-"))
        return workdir[0]

    owns_ray = address == "local" and not ray.is_initialized()
    disconnect = not owns_ray and not ray.is_initialized()
    before = _descendants()
    handle = None
    try:
        specs = resolve_models(list(models), names, make_workdir, zoo_config)
        for spec in specs:
            spec.setdefault("replicas", replicas)
            spec.setdefault("gpus_per_replica", gpus_per_replica)
            spec.update((model_options or {}).get(spec["name"], {}))
        if port == 0:
            port = free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
        if owns_ray:
            init = {"address": "local", "include_dashboard": False, "configure_logging": False,
                    "log_to_driver": False}
            init.update(ray_options or {})
            ray.init(**init)
        elif not ray.is_initialized():
            ray.init(address=address, **(ray_options or {}))
        wanted = max((float(s.get("gpus_per_replica", 0)) for s in specs), default=0.0)
        have = float(ray.cluster_resources().get("GPU", 0))
        if wanted > 0 and have == 0:
            raise ValueError(f"gpus_per_replica {wanted:g} asked for, but the Ray cluster ({address}) has no GPU")
        serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
        settings = {"max_batch_size": max_batch_size, "batch_wait_ms": batch_wait_ms, "runtime": runtime,
                    "version": __version__}
        serve.run_many(deployment.build_apps(specs, **settings), blocking=False)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
        handle = ServeHandle(url, [s["name"] for s in specs], sorted(_descendants() - before), specs,
                             settings, owns_ray, disconnect, workdir[0] if workdir else None)
        _wait_ready(url, handle.models, start_timeout_s)
        handle.pids = sorted(_descendants() - before)
        return handle
    except BaseException:
        if handle is None:
            handle = ServeHandle("", [], sorted(_descendants() - before), [], {}, owns_ray, disconnect,
                                 workdir[0] if workdir else None)
        handle.pids = sorted(set(handle.pids) | (_descendants() - before))
        handle.stop()
        raise
