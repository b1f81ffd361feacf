"""The Ray Serve layer: one deployment per model behind an Open Inference Protocol ingress.

The only module of `tritonnx.serve` that imports Ray (the ``serve`` extra). The core does the
protocol's work (`protocol`: the codec; `batching.ModelServer`: validation, bucketing, runs);
this module puts it on Ray Serve:

- `ModelDeployment` (one per model, ``--replicas`` replicas, ``--gpus-per-replica`` GPUs each):
  decodes and validates each request in its replica *before* it joins a batch (a bad request
  is answered 400 on its own), then ``@serve.batch`` gathers up to ``max_batch_size``
  requests for ``batch_wait_ms``; `ModelServer.run_batch` splits them into runs of equal
  non-batch dims, pads each up to its bucket (1, 2, 4, ... max), runs once and splits.
  ``max_ongoing_requests`` is twice the batch size (Serve's default of 5 would cap batches).
- Routes: each model is its own Serve application at ``/v2/models/{name}`` (metadata,
  ``/ready``, ``POST /infer``, also under ``/versions/{v}``), so Ray's proxy hands its requests
  straight to the model's replicas (through a separate ingress deployment, the extra hop cost
  about 7 ms of CPU a request on 2 cores, `tritonnx serve bench`); `Ingress` at ``/`` answers
  ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready`` and 404 for an unknown model or route.
  Every error is one line of JSON, never a traceback.
- Metrics (`ray.serve.metrics`, exported with Ray Serve's own on the Prometheus endpoint):
  ``tritonnx_requests`` / ``tritonnx_errors`` (counters by model and code),
  ``tritonnx_batch_requests`` (histogram: requests per run), ``tritonnx_queue_ms`` and
  ``tritonnx_run_ms`` (histograms by model).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

from ray import serve
from ray.serve import metrics
from starlette.requests import Request
from starlette.responses import Response

from .batching import ModelServer
from .protocol import HEADER, ProtocolError, decode_request, encode_response, error_body

def _inter_deployment_grpc_on_loopback() -> None:
    """Bind each replica's inter-deployment gRPC server to 127.0.0.1 on a loopback-only Ray.

    Ray Serve 2.60 binds it to ``[::]:0`` (all interfaces) whatever the node's IP
    (`ray.serve._private.replica`, ``_on_initialized``); the socket test saw one such port
    per replica. Where Ray was kept on loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, as
    `api.start` sets for a local instance, inherited by the replicas, which import this module
    before they start that server), the address is rewritten to 127.0.0.1. Nothing changes on
    a cluster, where other nodes must reach it.
    """
    if os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
        return
    try:
        from ray.serve._private import replica
    except ImportError:
        return
    original = getattr(replica, "add_port_to_grpc_server", None)
    if original is None or getattr(original, "loopback", False):
        return

    def add_port_to_grpc_server(server, address):
        if address.startswith("[::]:"):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return original(server, address)

    add_port_to_grpc_server.loopback = True
    replica.add_port_to_grpc_server = add_port_to_grpc_server


_inter_deployment_grpc_on_loopback()

_MS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500]
_MODEL_ROUTE = re.compile(r"^/v2/models/([^/]+)(?:/versions/[^/]+)?(/ready|/infer)?$")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def make_session(path: str, runtime: str):
    """An onnxruntime-style session on `path`: tritonnx's (default) or onnxruntime's (CPU/CUDA)."""
    if runtime == "onnxruntime":
        import onnxruntime

        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in onnxruntime.get_available_providers()]
        return onnxruntime.InferenceSession(path, providers=providers)
    if runtime != "tritonnx":
        raise ValueError(f"runtime must be tritonnx or onnxruntime, got {runtime!r}")
    import tritonnx

    return tritonnx.InferenceSession(path)


class ModelDeployment:
    """One model's replica: validation, dynamic batching and runs (see the module docstring).

    Args:
        name: the model's URL name.
        path: the ONNX file (on the node the replica runs on).
        runtime: "tritonnx" or "onnxruntime".
        max_batch_size: the most requests (and rows) one run takes.
        batch_wait_ms: how long a batch waits to fill.
    """

    def __init__(self, name: str, path: str, runtime: str, max_batch_size: int, batch_wait_ms: float) -> None:
        self.name = name
        self.runtime = runtime
        self.session = make_session(path, runtime)
        self.server = ModelServer(name, self.session, max_batch_size=max_batch_size,
                                  platform=f"onnx ({runtime})")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"run-{name}")
        self._set_batching(self.server.max_batch_size, batch_wait_ms)
        tags = ("model",)
        self.m_requests = metrics.Counter("tritonnx_requests", description="infer requests by model and code",
                                          tag_keys=("model", "code"))
        self.m_errors = metrics.Counter("tritonnx_errors", description="infer requests answered 4xx/5xx",
                                        tag_keys=("model", "code"))
        self.m_batch = metrics.Histogram("tritonnx_batch_requests", description="requests per model run",
                                         boundaries=[1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128], tag_keys=tags)
        self.m_queue = metrics.Histogram("tritonnx_queue_ms", description="enqueued to run start (ms)",
                                         boundaries=_MS_BUCKETS, tag_keys=tags)
        self.m_run = metrics.Histogram("tritonnx_run_ms", description="one model run, with concat/pad/split (ms)",
                                       boundaries=_MS_BUCKETS, tag_keys=tags)

    def _set_batching(self, max_batch_size: int, batch_wait_ms: float) -> None:
        self.batch_wait_ms = max(0.0, float(batch_wait_ms))
        self._batched.set_max_batch_size(max_batch_size)
        self._batched.set_batch_wait_timeout_s(self.batch_wait_ms / 1e3)

    def reconfigure(self, config: dict) -> None:
        """Ray Serve's user_config: ``{"max_batch_size": int, "batch_wait_ms": float}``, no redeploy."""
        size = int(config.get("max_batch_size") or self.server.max_batch_size)
        if size != self.server.max_batch_size and self.server.batchable:
            self.server = ModelServer(self.name, self.session, max_batch_size=size,
                                      platform=f"onnx ({self.runtime})")
        self._set_batching(self.server.max_batch_size, config.get("batch_wait_ms", self.batch_wait_ms))

    def metadata(self) -> dict:
        return self.server.metadata()

    def ready(self) -> bool:
        return True

    def _count(self, code: int) -> None:
        tags = {"model": self.name, "code": str(code)}
        self.m_requests.inc(1, tags=tags)
        if code >= 400:
            self.m_errors.inc(1, tags=tags)

    async def infer(self, body: bytes, header_length: str | None) -> tuple[int, bytes, int | None]:
        """One infer request: (HTTP status, body, Inference-Header-Content-Length or None)."""
        try:
            request = decode_request(body, header_length)
            valid = self.server.validate(request.inputs, request.outputs)
        except ProtocolError as exc:
            self._count(400)
            return 400, error_body(str(exc)), None
        try:
            result = await self._batched(valid)
            if isinstance(result, Exception):
                self._count(500)
                return 500, error_body(str(result)), None
            facts = result.pop(None)
            params = {"batch_requests": facts["requests"], "batch_rows": facts["rows"],
                      "batch_bucket": facts["bucket"], "queue_ms": facts["queue_s"] * 1e3,
                      "run_ms": facts["run_s"] * 1e3}
            wanted = request.outputs or self.server.output_names
            out, length = encode_response(self.name, {n: result[n] for n in wanted}, request=request,
                                          parameters=params)
        except Exception as exc:  # noqa: BLE001 - one line to the client, never a traceback
            self._count(500)
            return 500, error_body(f"model {self.name!r}: {type(exc).__name__}: {_one_line(exc)}"), None
        self._count(200)
        return 200, out, length

    async def __call__(self, request: Request) -> Response:
        """HTTP under ``/v2/models/{name}`` (its own application: no hop through the ingress)."""
        try:
            path = request.url.path.rstrip("/")
            match = _MODEL_ROUTE.match(path)
            if not match or match.group(1) != self.name:
                return _error(404, f"no route {request.method} {path}")
            tail = match.group(2)
            if tail == "/infer":
                if request.method != "POST":
                    return _error(405, f"{path} takes POST")
                status, out, length = await self.infer(await request.body(), request.headers.get(HEADER))
                return _answer(status, out, length)
            if request.method != "GET":
                return _error(405, f"{path} takes GET")
            if tail == "/ready":
                return Response(b"", status_code=200)
            return _json(200, self.server.metadata())
        except Exception as exc:  # noqa: BLE001 - one line to the client, never a traceback
            return _error(500, f"{type(exc).__name__}: {_one_line(exc)}")

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
    async def _batched(self, requests: list) -> list:
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._pool, self.server.run_batch, requests)
        seen = set()
        for result in results:
            if isinstance(result, dict):
                facts = result[None]
                run = (facts["rows"], facts["run_s"], facts["bucket"])
                if run not in seen:  # one observation per run, not per request
                    seen.add(run)
                    self.m_batch.observe(facts["requests"], tags={"model": self.name})
                    self.m_run.observe(facts["run_s"] * 1e3, tags={"model": self.name})
                self.m_queue.observe(facts["queue_s"] * 1e3, tags={"model": self.name})
        return results


def _json(status: int, doc) -> Response:
    return Response(json.dumps(doc).encode(), status_code=status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return Response(error_body(message), status_code=status, media_type="application/json")


def _answer(status: int, out: bytes, length: int | None) -> Response:
    headers = {HEADER: str(length)} if length is not None else None
    return Response(out, status_code=status, headers=headers,
                    media_type="application/json" if length is None else "application/octet-stream")


class Ingress:
    """The routes outside any model (``/v2``, health) and 404s; a model's own routes are served by
    its application (``/v2/models/{name}``), which Ray Serve's proxy picks by longest prefix.
    """

    def __init__(self, models: list[str], version: str = "") -> None:
        self.names = list(models)
        self.version = version
        self._handles: dict = {}
        self._metadata: dict[str, dict] = {}

    @property
    def models(self) -> dict:
        for name in self.names:
            if name not in self._handles:
                self._handles[name] = serve.get_app_handle(model_app_name(name))
        return self._handles

    async def _model_ready(self, name: str, timeout_s: float = 5.0) -> bool:
        try:
            return bool(await asyncio.wait_for(self.models[name].ready.remote(), timeout_s))
        except Exception:  # noqa: BLE001 - not ready, whatever the reason
            return False

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except Exception as exc:  # noqa: BLE001 - one line to the client, never a traceback
            return _error(503 if "Actor" in type(exc).__name__ or "Unavailable" in type(exc).__name__ else 500,
                          f"{type(exc).__name__}: {_one_line(exc)}")

    async def _route(self, request: Request) -> Response:
        path = request.url.path.rstrip("/") or "/"
        method = request.method
        if method == "GET" and path == "/v2":
            return _json(200, {"name": "tritonnx", "version": self.version,
                               "extensions": ["binary_tensor_data"]})
        if method == "GET" and path == "/v2/health/live":
            return Response(b"", status_code=200)
        if method == "GET" and path == "/v2/health/ready":
            ready = await asyncio.gather(*(self._model_ready(n) for n in self.names))
            return Response(b"", status_code=200 if all(ready) else 503)
        match = _MODEL_ROUTE.match(path)
        if not match:
            return _error(404, f"no route {method} {path}")
        name, tail = match.group(1), match.group(2)
        if name not in self.names:
            return _error(404, f"unknown model {name!r} (models: {sorted(self.names)})")
        handle = self.models[name]
        if tail == "/infer":
            if method != "POST":
                return _error(405, f"{path} takes POST")
            body = await request.body()
            return _answer(*await handle.infer.remote(body, request.headers.get(HEADER)))
        if method != "GET":
            return _error(405, f"{path} takes GET")
        if tail == "/ready":
            return Response(b"", status_code=200 if await self._model_ready(name) else 503)
        if name not in self._metadata:
            self._metadata[name] = await handle.metadata.remote()
        return _json(200, self._metadata[name])


def model_app_name(name: str) -> str:
    """The Serve application of one model (its replicas are ``ServeReplica:<this>:<name>``)."""
    return f"tritonnx-{name}"


def build_apps(models: list[dict], *, max_batch_size: int, batch_wait_ms: float, runtime: str,
               version: str = "", app_name: str = "tritonnx") -> list:
    """The Serve applications: one per model at ``/v2/models/{name}``, and the ingress at ``/``.

    Args:
        models: one dict per model: ``name``, ``path`` and optional per-model settings:
            ``replicas``, ``gpus_per_replica``, ``cpus_per_replica``, ``max_batch_size``,
            ``batch_wait_ms``, ``runtime``, ``autoscaling_config`` (Ray Serve's dict; replaces
            ``replicas``), ``max_ongoing_requests``.
    Returns:
        ``serve.RunTarget``s for ``serve.run_many`` (the models first, the ingress last).
    """
    targets = []
    for spec in models:
        size = int(spec.get("max_batch_size", max_batch_size))
        wait = float(spec.get("batch_wait_ms", batch_wait_ms))
        options = {
            "name": spec["name"],
            "max_ongoing_requests": int(spec.get("max_ongoing_requests", max(2 * size, 8))),
            "ray_actor_options": {"num_cpus": float(spec.get("cpus_per_replica", 0)),
                                  "num_gpus": float(spec.get("gpus_per_replica", 0))},
            "user_config": {"max_batch_size": size, "batch_wait_ms": wait},
            "health_check_period_s": 2, "health_check_timeout_s": 30,
            "graceful_shutdown_timeout_s": 2, "graceful_shutdown_wait_loop_s": 0.5,
        }
        if spec.get("autoscaling_config"):
            options["autoscaling_config"] = dict(spec["autoscaling_config"])
        else:
            options["num_replicas"] = int(spec.get("replicas", 1))
        deployment = serve.deployment(ModelDeployment).options(**options)
        app = deployment.bind(spec["name"], str(spec["path"]), spec.get("runtime", runtime), size, wait)
        targets.append(serve.RunTarget(app, name=model_app_name(spec["name"]),
                                       route_prefix=f"/v2/models/{spec['name']}"))
    ingress = serve.deployment(Ingress).options(name="ingress", max_ongoing_requests=256,
                                                ray_actor_options={"num_cpus": 0},
                                                graceful_shutdown_timeout_s=2)
    targets.append(serve.RunTarget(ingress.bind([s["name"] for s in models], version), name=app_name,
                                   route_prefix="/"))
    return targets
