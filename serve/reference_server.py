"""A one-process reference endpoint for `tritonnx serve bench`: what HTTP and the codec cost.

The same `ModelServer` (validation, the KServe v2 codec) and the same session as the Ray Serve
deployment, behind Python's stdlib ``ThreadingHTTPServer`` on 127.0.0.1, one request per run
(no batching, runs serialised by a lock as in one replica). It is a measuring stick for the
benchmark, not a server to deploy: loopback only, a bounded lifetime (``--max-seconds``), and
`spawn`/`stop` start and end it as a child process.

    python -m tritonnx.serve.reference_server MODEL.onnx --name NAME --runtime onnxruntime
    # prints "READY http://127.0.0.1:PORT" once it answers
"""
from __future__ import annotations

import argparse
import json
import os
import select
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .batching import ModelServer
from .protocol import HEADER, ProtocolError, decode_request, encode_response, error_body


def _session(path: str, runtime: str):
    if runtime == "onnxruntime":
        import onnxruntime

        return onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    import tritonnx

    return tritonnx.InferenceSession(path)


def make_server(model: ModelServer, port: int = 0) -> ThreadingHTTPServer:
    """A ThreadingHTTPServer on 127.0.0.1:`port` answering the protocol's routes for `model`."""
    lock = threading.Lock()
    infer_path = f"/v2/models/{model.name}/infer"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one answer, one segment: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes, header_length: int | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if header_length is None else "application/octet-stream")
            if header_length is not None:
                self.send_header(HEADER, str(header_length))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path in ("/v2/health/live", "/v2/health/ready", f"/v2/models/{model.name}/ready"):
                self._send(200, b"")
            elif self.path == f"/v2/models/{model.name}":
                self._send(200, json.dumps(model.metadata()).encode())
            else:
                self._send(404, error_body(f"no route {self.path}"))

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != infer_path:
                self._send(404, error_body(f"unknown model or route {self.path}"))
                return
            try:
                request = decode_request(body, self.headers.get(HEADER))
                valid = model.validate(request.inputs, request.outputs)
            except ProtocolError as exc:
                self._send(400, error_body(str(exc)))
                return
            with lock:
                (result,) = model.run_batch([valid])
            if isinstance(result, Exception):
                self._send(500, error_body(str(result)))
                return
            facts = result.pop(None)
            wanted = request.outputs or model.output_names
            params = {"batch_requests": facts["requests"], "batch_rows": facts["rows"],
                      "batch_bucket": facts["bucket"], "queue_ms": facts["queue_s"] * 1e3,
                      "run_ms": facts["run_s"] * 1e3}
            out, length = encode_response(model.name, {n: result[n] for n in wanted}, request=request,
                                          parameters=params)
            self._send(200, out, length)

    return _Server(("127.0.0.1", port), Handler)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops connects beyond it (1 s SYN retries)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tritonnx.serve.reference_server")
    p.add_argument("model")
    p.add_argument("--name", required=True)
    p.add_argument("--runtime", choices=("tritonnx", "onnxruntime"), default="tritonnx")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--max-seconds", type=float, default=600.0, help="the server ends after this long")
    args = p.parse_args(argv)
    server = make_server(ModelServer(args.name, _session(args.model, args.runtime), max_batch_size=1), args.port)
    timer = threading.Timer(args.max_seconds, server.shutdown)
    timer.daemon = True
    timer.start()
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        timer.cancel()
        server.server_close()
    return 0


def spawn(path: str | Path, name: str, *, runtime: str, max_seconds: float = 600.0,
          start_timeout_s: float = 120.0) -> tuple[subprocess.Popen, str]:
    """Start the reference server as a child process; returns (process, url) once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "tritonnx.serve.reference_server", str(path), "--name", name,
                             "--runtime", runtime, "--max-seconds", str(max_seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + start_timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                return proc, line.split()[1]
            if not line and proc.poll() is not None:
                break
        elif proc.poll() is not None:
            break
    stop(proc)
    raise RuntimeError(f"reference server for {path} did not start within {start_timeout_s:g} s "
                       f"(exit {proc.returncode})")


def stop(proc: subprocess.Popen) -> None:
    """End the child (SIGTERM, then SIGKILL after 10 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main())
