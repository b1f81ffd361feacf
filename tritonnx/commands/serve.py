"""`tritonnx serve MODEL [MODEL ...]`: the models on Ray Serve behind the Open Inference Protocol.

One deployment per model (a file, or a zoo name exported on the fly), dynamic batching padded
to buckets, replicas and GPUs per replica, on a private local Ray instance (loopback only) or
a Ray cluster (``--address ray://HOST:PORT``). Prints the endpoints once every model answers
ready; Ctrl-C or SIGTERM stops it and ends every process it started. ``tritonnx serve bench``
is another verb (`serve_bench`). Everything here is checked before torch or Ray is imported.
"""
from __future__ import annotations

import re
import signal
import sys
import threading
from pathlib import Path

from tritonnx.commands.common import non_negative_int, positive_float, positive_int
from tritonnx.errors import Fail, InvalidArgument

RUNTIMES = ("tritonnx", "onnxruntime")
DEFAULTS = {"host": "127.0.0.1", "port": 8000, "replicas": 1, "gpus_per_replica": 0.0, "max_batch_size": 16,
            "batch_wait_ms": 5.0, "runtime": "tritonnx", "address": "local", "zoo_config": "paper"}
#: Keys a model's table (``[model.NAME]``) of the config file may set.
MODEL_KEYS = {"replicas", "gpus_per_replica", "cpus_per_replica", "max_batch_size", "batch_wait_ms", "runtime",
              "autoscaling_config", "max_ongoing_requests"}
_ADDRESS = re.compile(r"^(local|auto|ray://[^\s/:]+:\d{1,5})$")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise InvalidArgument(f"expected a number >= 0, got {text!r}")
    return value


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", prog="tritonnx serve",
        help="serve ONNX models on Ray Serve (KServe v2 HTTP, dynamic batching); `serve bench`: load test",
        description="Serve ONNX models (files or zoo names) on Ray Serve with the Open Inference Protocol "
        "(KServe v2 REST: /v2/models/NAME/infer, JSON and binary tensors) and dynamic batching. "
        "`tritonnx serve bench` is the load generator.",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=".onnx files or zoo names (or `models` in --config)")
    p.add_argument("--host", default=None, help="where the HTTP proxy listens (default 127.0.0.1)")
    p.add_argument("--port", type=non_negative_int, default=None, help="HTTP port (default 8000; 0: a free one)")
    p.add_argument("--replicas", type=positive_int, default=None, help="replicas per model (default 1)")
    p.add_argument("--gpus-per-replica", type=_non_negative_float, default=None,
                   help="GPUs each replica reserves; fractions share a GPU (default 0)")
    p.add_argument("--max-batch-size", type=positive_int, default=None,
                   help="largest dynamic batch in requests/rows (default 16)")
    p.add_argument("--batch-wait-ms", type=_non_negative_float, default=None,
                   help="how long a batch waits to fill (default 5)")
    p.add_argument("--runtime", choices=RUNTIMES, default=None, help="tritonnx (default) or onnxruntime")
    p.add_argument("--address", default=None,
                   help="local (a new private Ray instance, default), auto or ray://HOST:PORT (a cluster)")
    p.add_argument("--config", default=None, metavar="serve.toml",
                   help="settings, per-model options ([model.NAME]: replicas, autoscaling_config, ...) and "
                   "ray.init options ([ray]); flags win over the file")
    p.add_argument("--start-timeout-s", type=positive_float, default=600.0,
                   help="give up if the models are not ready after S seconds (default 600)")
    p.set_defaults(func=run)


def load_config(path: str) -> dict:
    """The TOML config file: top-level settings, ``models``, ``[model.NAME]`` and ``[ray]`` tables."""
    import tomllib

    file = Path(path)
    if not file.is_file():
        raise InvalidArgument(f"--config {path}: no such file")
    try:
        doc = tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"--config {path}: not valid TOML: {exc}") from None
    allowed = set(DEFAULTS) | {"models", "model", "ray"}
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise InvalidArgument(f"--config {path}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")
    models = doc.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise InvalidArgument(f"--config {path}: 'models' must be a list of strings")
    tables = doc.get("model", {})
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise InvalidArgument(f"--config {path}: [model.{name}] must be a table")
        bad = sorted(set(table) - MODEL_KEYS)
        if bad:
            raise InvalidArgument(f"--config {path}: [model.{name}] has unknown key {bad[0]!r} "
                                  f"(allowed: {', '.join(sorted(MODEL_KEYS))})")
        if "runtime" in table and table["runtime"] not in RUNTIMES:
            raise InvalidArgument(f"--config {path}: [model.{name}] runtime must be one of {', '.join(RUNTIMES)}")
    if not isinstance(doc.get("ray", {}), dict):
        raise InvalidArgument(f"--config {path}: [ray] must be a table")
    return doc


def settings(args) -> dict:
    """Flags over the config file over the defaults, checked (no heavy import)."""
    doc = load_config(args.config) if args.config else {}
    out = {}
    for key, default in DEFAULTS.items():
        flag = getattr(args, key, None)
        out[key] = flag if flag is not None else doc.get(key, default)
    if out["runtime"] not in RUNTIMES:
        raise InvalidArgument(f"runtime must be one of {', '.join(RUNTIMES)}, got {out['runtime']!r}")
    if not _ADDRESS.match(str(out["address"])):
        raise InvalidArgument(f"--address must be local, auto or ray://HOST:PORT, got {out['address']!r}")
    if not (isinstance(out["port"], int) and 0 <= out["port"] <= 65535):
        raise InvalidArgument(f"--port must be 0..65535, got {out['port']!r}")
    if out["zoo_config"] not in ("tiny", "paper"):
        raise InvalidArgument(f"zoo_config must be tiny or paper, got {out['zoo_config']!r}")
    out["models"] = list(args.models) or list(doc.get("models", []))
    if not out["models"]:
        raise InvalidArgument("no MODEL given (an .onnx file or a zoo name, or `models` in --config)")
    if "bench" in out["models"]:
        raise InvalidArgument("'bench' is a verb: `tritonnx serve bench ...` (before any other argument)")
    for model in out["models"]:
        if (model.endswith(".onnx") or "/" in model) and not Path(model).is_file():
            raise InvalidArgument(f"model {model}: no such file")
    out["model_options"] = doc.get("model", {})
    out["ray_options"] = doc.get("ray", {})
    return out


def run(args) -> int:
    opts = settings(args)
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # pydantic's, inside Ray Serve
    for name in ("ray", "ray.serve"):  # Ray Serve resets its logger's level: a filter stays
        logging.getLogger(name).addFilter(lambda record: record.levelno >= logging.WARNING)
    from tritonnx.serve import api

    local_host = api.is_local(opts["host"])
    if not local_host:
        print(f"tritonnx serve: warning: the HTTP proxy listens on {opts['host']}, not only on loopback",
              file=sys.stderr)
    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    handle = None
    previous = {}
    try:
        try:
            handle = api.start(opts["models"], runtime=opts["runtime"], max_batch_size=opts["max_batch_size"],
                               batch_wait_ms=opts["batch_wait_ms"], host=opts["host"], port=opts["port"],
                               replicas=opts["replicas"], gpus_per_replica=opts["gpus_per_replica"],
                               address=opts["address"], model_options=opts["model_options"],
                               ray_options=opts["ray_options"], zoo_config=opts["zoo_config"],
                               start_timeout_s=args.start_timeout_s)
        except api.MissingExtra as exc:
            raise InvalidArgument(str(exc)) from None
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        except TimeoutError as exc:
            raise Fail(f"not ready: {exc} (--start-timeout-s {args.start_timeout_s:g})") from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
        width = max(len(m) for m in handle.models)
        print(f"tritonnx serve: {len(handle.models)} model(s) ready on {handle.url} (Ray Serve, "
              f"runtime {opts['runtime']}, max batch {opts['max_batch_size']}, wait {opts['batch_wait_ms']:g} ms, "
              f"Ray {opts['address']})")
        for spec in handle.specs:
            name = spec["name"]
            print(f"  {name:<{width}}  POST {handle.url}/v2/models/{name}/infer   ({spec['path']})")
        print(f"  health  GET {handle.url}/v2/health/ready   metrics: Ray's Prometheus endpoint (tritonnx_*)")
        print("Ctrl-C or SIGTERM stops.", flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        if handle is not None:
            handle.stop()
            print("tritonnx serve: stopped", flush=True)
    return 0
