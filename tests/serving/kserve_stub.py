"""A stub KServe v2 endpoint on 127.0.0.1 for the load generator's tests (stdlib http.server)."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tritonnx.serve.protocol import HEADER, decode_request, encode_response, error_body

MODEL = "double"


class Stub:
    """A KServe v2 endpoint: y = 2 * x; every `fail_every`-th infer answers 400; `delay_s` per infer."""

    def __init__(self, fail_every: int = 0, delay_s: float = 0.0, host: str = "127.0.0.1"):
        self.fail_every, self.delay_s = fail_every, delay_s
        self.count = 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _send(self, status, body, header_length=None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if header_length is None
                                 else "application/octet-stream")
                if header_length is not None:
                    self.send_header(HEADER, str(header_length))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path in ("/v2/health/ready", "/v2/health/live"):
                    self._send(200, b"")
                else:
                    self._send(404, error_body(f"no route {self.path}"))

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != f"/v2/models/{MODEL}/infer":
                    self._send(404, error_body("unknown model"))
                    return
                with stub.lock:
                    stub.count += 1
                    n = stub.count
                if stub.delay_s:
                    threading.Event().wait(stub.delay_s)
                if stub.fail_every and n % stub.fail_every == 0:
                    self._send(400, error_body(f"request {n} refused"))
                    return
                request = decode_request(body, self.headers.get(HEADER))
                x = request.inputs["x"]
                params = {"batch_requests": 1 if n % 2 else 4, "batch_rows": 4, "batch_bucket": 4,
                          "queue_ms": 0.5, "run_ms": 0.25}
                out, length = encode_response(MODEL, {"y": 2 * x}, request=request, parameters=params)
                self._send(200, out, length)

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True
            request_queue_size = 64

        self.server = Server((host, 0), Handler)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
