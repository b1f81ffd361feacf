"""A bounded load generator for any KServe v2 (Open Inference Protocol) HTTP endpoint.

`run_load` sends one request's tensors to ``POST /v2/models/{name}/infer`` from `concurrency`
concurrent clients (tritonclient.http's asyncio client, binary tensors as tritonclient sends
them by default) until `requests` have been issued or `max_seconds` have passed, whichever
comes first, and reports what it saw: requests per second, latency statistics of the
successful requests (`tritonnx.bench.stats` rules: percentiles only where n supports them),
errors by kind, the batches the requests ran in (from the response's parameters, when the
server reports them) and the time to the first successful response.

Loopback only: `loopback_url` refuses any host but 127.0.0.0/8 and ::1 (names included: a
name may resolve anywhere). Every loop is bounded in count and in time. Plain Python, no Ray:
`ProcessSampler` reads resident memory and CPU time of server processes with psutil.
"""
from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable
from urllib.parse import urlsplit

import numpy as np

from tritonnx.errors import InvalidArgument

#: Response parameters a server may send with each answer (`serve`'s deployment does), and
#: what they mean: the run (batch) the request joined and the time it spent in the replica.
BATCH_PARAMETERS = ("batch_requests", "batch_rows", "batch_bucket", "queue_ms", "run_ms")
#: The most error kinds kept with a first message each (the rest are still counted).
MAX_ERROR_KINDS = 8


def loopback_url(url: str) -> tuple[str, str]:
    """Check that `url` is ``http://`` on a loopback IP; returns (``host:port``, normalised url).

    Raises:
        InvalidArgument: another scheme, a host name, or a non-loopback address.
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http":
        raise InvalidArgument(f"load generator: {url!r}: only http:// is supported, got {parts.scheme}://")
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidArgument(f"load generator: {url!r}: host {host!r} is not an IP address; traffic goes to "
                              "loopback only: use 127.0.0.1 or [::1]") from None
    if not address.is_loopback:
        raise InvalidArgument(f"load generator: {url!r}: {host} is not a loopback address; traffic goes to "
                              "127.0.0.1 or ::1 only")
    try:
        port = parts.port or 80
    except ValueError:
        raise InvalidArgument(f"load generator: {url!r}: bad port") from None
    hostport = f"[{host}]:{port}" if address.version == 6 else f"{host}:{port}"
    return hostport, f"http://{hostport}"


@dataclass
class LoadResult:
    """What one bounded load run saw. Latencies are of successful requests, in milliseconds."""

    url: str
    model: str
    concurrency: int
    requests: int  # the bound asked for
    max_seconds: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    error_messages: dict[str, str] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    first_ok_ms: float | None = None  # run start -> first successful response
    stop: str = ""  # "requests" (all issued) or "time" (max_seconds passed)
    batch_requests: Counter = field(default_factory=Counter)  # batch size -> requests that ran in one
    queue_ms: list[float] = field(default_factory=list)
    run_ms: list[float] = field(default_factory=list)
    outside_ms: list[float] = field(default_factory=list)  # latency - queue - run, per request
    client_cpu_s: float | None = None
    warmup: int = 0
    checked: int = 0  # answers compared with `expected`
    max_rel_err: float | None = None  # the largest `max_rel_err` of those answers

    @property
    def req_s(self) -> float | None:
        """Successful requests per second of wall time (first send to last answer)."""
        return self.ok / self.wall_s if self.wall_s > 0 and self.ok else None

    def as_row(self) -> dict:
        """Flat row columns (`tritonnx.bench.stats.Timing` rules for the latency statistics)."""
        from tritonnx.bench.stats import Timing, quantile

        row = {"url": self.url, "model": self.model, "concurrency": self.concurrency, "sent": self.sent,
               "ok": self.ok, "errors": self.errors, "error_kinds": dict(self.error_kinds),
               "error_messages": dict(self.error_messages), "wall_s": self.wall_s, "req_s": self.req_s,
               "first_ok_ms": self.first_ok_ms, "stop": self.stop, "requests_bound": self.requests,
               "max_seconds": self.max_seconds, "warmup": self.warmup, "client_cpu_s": self.client_cpu_s,
               "checked": self.checked, "max_rel_err": self.max_rel_err, "timing": "cpu-wall"}
        if self.latencies_ms:
            t = Timing.from_samples(self.latencies_ms, "cpu-wall", measured_s=self.wall_s)
            row.update({"p50_ms": t.median_ms, "p90_ms": t.p90_ms, "p99_ms": t.p99_ms, "min_ms": t.min_ms,
                        "max_ms": t.max_ms, "mean_ms": t.mean_ms, "n": t.n, "samples_ms": list(t.samples_ms)})
        else:
            row.update({"p50_ms": None, "p90_ms": None, "p99_ms": None, "min_ms": None, "max_ms": None,
                        "mean_ms": None, "n": 0, "samples_ms": []})
        sizes = self.batch_requests
        total = sum(sizes.values())
        row["batch_hist"] = {str(k): v for k, v in sorted(sizes.items())}
        row["batch_mean"] = sum(k * v for k, v in sizes.items()) / total if total else None
        row["batch_max"] = max(sizes) if sizes else None
        row["queue_p50_ms"] = quantile(self.queue_ms, 0.5) if self.queue_ms else None
        row["run_p50_ms"] = quantile(self.run_ms, 0.5) if self.run_ms else None
        # The time a request spent outside its run and queue (HTTP, proxy, routing, codec, client).
        row["outside_p50_ms"] = quantile(self.outside_ms, 0.5) if self.outside_ms else None
        return row


def _error_kind(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line message) of a failed request: ``HTTP 400``, ``timeout``, or the exception's type."""
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout", "no answer within the request timeout"
    status = getattr(exc, "status", None)
    status = status() if callable(status) else status
    message = getattr(exc, "message", None)
    message = message() if callable(message) else message
    text = " ".join(str(message or exc).split())[:200] or type(exc).__name__
    if status:
        return f"HTTP {status}", text
    return type(exc).__name__, text


def _number(value) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _batch_facts(response: dict, result: LoadResult, latency_ms: float) -> None:
    params = response.get("parameters") or {}
    if not isinstance(params, dict):
        return
    size = _number(params.get("batch_requests"))
    if size is not None and size >= 1:
        result.batch_requests[int(size)] += 1
    queue, run = _number(params.get("queue_ms")), _number(params.get("run_ms"))
    if queue is not None:
        result.queue_ms.append(queue)
    if run is not None:
        result.run_ms.append(run)
    if queue is not None and run is not None:
        result.outside_ms.append(latency_ms - queue - run)


def _client_inputs(inputs: dict[str, np.ndarray], binary: bool):
    import tritonclient.http.aio as httpclient

    from .protocol import datatype_of

    objs = []
    for name, array in inputs.items():
        array = np.ascontiguousarray(array)
        obj = httpclient.InferInput(name, list(array.shape), datatype_of(array))
        obj.set_data_from_numpy(array, binary_data=binary)
        objs.append(obj)
    return objs


def _check(answer, expected: dict[str, np.ndarray], result: LoadResult) -> None:
    from tritonnx.bench.stats import max_rel_err

    worst = 0.0
    for name, want in expected.items():
        got = answer.as_numpy(name)
        worst = max(worst, float("inf") if got is None or got.shape != want.shape else max_rel_err(got, want))
    result.checked += 1
    result.max_rel_err = worst if result.max_rel_err is None else max(result.max_rel_err, worst)


async def _load(url: str, model: str, inputs: dict[str, np.ndarray], *, requests: int, concurrency: int,
                max_seconds: float, timeout_s: float, warmup: int, binary: bool,
                expected: dict[str, np.ndarray] | None = None, check_every: int = 100) -> LoadResult:
    import tritonclient.http.aio as httpclient

    hostport, url = loopback_url(url)
    result = LoadResult(url=url, model=model, concurrency=concurrency, requests=requests,
                        max_seconds=max_seconds, warmup=warmup)
    client = httpclient.InferenceServerClient(hostport, conn_limit=max(concurrency, 1), conn_timeout=timeout_s)
    objs = _client_inputs(inputs, binary)
    try:
        async def one():
            return await asyncio.wait_for(client.infer(model, objs), timeout_s)

        # Warm-up (not counted): bounded in count and by the same deadline.
        start = time.monotonic()
        deadline = start + max_seconds
        for _ in range(warmup):
            if time.monotonic() >= deadline:
                break
            try:
                await one()
            except Exception:  # noqa: BLE001 - a failing warm-up shows in the measured run
                pass

        issued = 0
        t0 = time.perf_counter()
        deadline = time.monotonic() + max_seconds
        last_done = t0

        async def worker() -> None:
            nonlocal issued, last_done
            while issued < requests and time.monotonic() < deadline:
                issued += 1
                sent = time.perf_counter()
                try:
                    answer = await one()
                except Exception as exc:  # noqa: BLE001 - every failure is counted by kind
                    kind, message = _error_kind(exc)
                    result.errors += 1
                    if kind in result.error_kinds or len(result.error_kinds) < MAX_ERROR_KINDS:
                        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
                        result.error_messages.setdefault(kind, message)
                    else:
                        result.error_kinds["other"] = result.error_kinds.get("other", 0) + 1
                else:
                    done = time.perf_counter()
                    result.ok += 1
                    latency = (done - sent) * 1e3
                    result.latencies_ms.append(latency)
                    if result.first_ok_ms is None:
                        result.first_ok_ms = (done - t0) * 1e3
                    _batch_facts(answer.get_response(), result, latency)
                    if expected is not None and (result.ok - 1) % check_every == 0:
                        _check(answer, expected, result)
                last_done = time.perf_counter()

        cpu0 = time.process_time()
        tasks = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        # Each worker stops issuing at the deadline; one more request timeout bounds the tail.
        _, pending = await asyncio.wait(tasks, timeout=max_seconds + timeout_s + 1.0)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        result.client_cpu_s = time.process_time() - cpu0
        result.sent = issued
        result.wall_s = last_done - t0
        result.stop = "requests" if issued >= requests else "time"
    finally:
        await client.close()
    return result


def run_load(url: str, model: str, inputs: dict[str, np.ndarray], *, requests: int = 1000, concurrency: int = 1,
             max_seconds: float = 10.0, timeout_s: float = 30.0, warmup: int = 0,
             binary: bool = True, expected: dict[str, np.ndarray] | None = None,
             check_every: int = 100) -> LoadResult:
    """Send `model` the tensors `inputs` until `requests` are issued or `max_seconds` pass.

    Args:
        url: ``http://127.0.0.1:PORT`` (or ``[::1]``); anything but loopback is refused.
        model: the model's name in ``/v2/models/{model}/infer``.
        inputs: one request's tensors by input name (numpy arrays, batch axis included).
        requests: at most this many requests are issued (errors included), >= 1.
        concurrency: clients sending at once (each waits for its answer before the next).
        max_seconds: no request is issued after this many seconds (> 0).
        timeout_s: one request's timeout (a timeout is counted as an error).
        warmup: requests sent first, one at a time, not counted (within `max_seconds`).
        binary: tensors in the binary extension (tritonclient's default) or as JSON.
        expected: outputs by name that the answers should carry: the 1st, then every
            `check_every`-th successful answer is compared (`bench.stats.max_rel_err`).
    Returns:
        A `LoadResult`.
    Raises:
        InvalidArgument: a non-loopback `url` or a bound out of range.
    """
    loopback_url(url)
    if requests < 1 or concurrency < 1:
        raise InvalidArgument(f"load generator: requests and concurrency must be >= 1, got {requests}, {concurrency}")
    if not (max_seconds > 0 and math.isfinite(max_seconds)) or not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise InvalidArgument(f"load generator: max_seconds and timeout_s must be finite and > 0, "
                              f"got {max_seconds}, {timeout_s}")
    return asyncio.run(_load(url, model, inputs, requests=requests, concurrency=concurrency,
                             max_seconds=max_seconds, timeout_s=timeout_s, warmup=max(0, int(warmup)),
                             binary=binary, expected=expected, check_every=max(1, int(check_every))))


def first_success(url: str, model: str, inputs: dict[str, np.ndarray], *, timeout_s: float = 60.0,
                  interval_s: float = 0.1) -> float | None:
    """Seconds until ``infer`` first succeeds (retrying every `interval_s`), or None after `timeout_s`."""
    hostport, _ = loopback_url(url)

    async def probe() -> float | None:
        import tritonclient.http.aio as httpclient

        t0 = time.monotonic()
        client = httpclient.InferenceServerClient(hostport, conn_limit=1, conn_timeout=min(timeout_s, 10.0))
        objs = _client_inputs(inputs, True)
        try:
            while time.monotonic() - t0 < timeout_s:
                try:
                    await asyncio.wait_for(client.infer(model, objs), min(timeout_s, 10.0))
                    return time.monotonic() - t0
                except Exception:  # noqa: BLE001 - not up yet: retry until the bound
                    await asyncio.sleep(interval_s)
            return None
        finally:
            await client.close()

    return asyncio.run(probe())


@dataclass(frozen=True)
class ProcessFacts:
    pid: int
    role: str
    rss_mib: float
    cpu_s: float  # user + system


class ProcessSampler:
    """Resident memory and CPU time of server processes, grouped by role (psutil).

    Args:
        root: the process whose descendants are the servers (default: this process).
        include_root: count `root` itself.
        role: cmdline (one string) -> role name (default: the executable's base name).
    """

    def __init__(self, root: int | None = None, *, include_root: bool = False,
                 role: Callable[[str], str] | None = None, pids: Iterable[int] | None = None) -> None:
        import os

        self.root = os.getpid() if root is None else root
        self.include_root = include_root
        self.role = role or (lambda cmd: (cmd.split() or ["?"])[0].rsplit("/", 1)[-1])
        self.pids = list(pids) if pids is not None else None

    def snapshot(self) -> list[ProcessFacts]:
        import psutil

        if self.pids is not None:
            procs = []
            for pid in self.pids:
                try:
                    procs.append(psutil.Process(pid))
                except psutil.Error:
                    continue
        else:
            try:
                root = psutil.Process(self.root)
                procs = root.children(recursive=True) + ([root] if self.include_root else [])
            except psutil.Error:
                return []
        facts = []
        for proc in procs:
            try:
                with proc.oneshot():
                    cmd = " ".join(proc.cmdline()) or proc.name()
                    cpu = proc.cpu_times()
                    facts.append(ProcessFacts(proc.pid, self.role(cmd), proc.memory_info().rss / 2**20,
                                              cpu.user + cpu.system))
            except psutil.Error:  # ended meanwhile
                continue
        return facts

    @staticmethod
    def rss_by_role(facts: list[ProcessFacts]) -> dict[str, float]:
        out: dict[str, float] = {}
        for f in facts:
            out[f.role] = out.get(f.role, 0.0) + f.rss_mib
        return out

    @staticmethod
    def cpu_by_role(before: list[ProcessFacts], after: list[ProcessFacts]) -> dict[str, float]:
        """CPU seconds each role spent between two snapshots (processes in both)."""
        first = {f.pid: f for f in before}
        out: dict[str, float] = {}
        for f in after:
            if f.pid in first:
                out[f.role] = out.get(f.role, 0.0) + max(0.0, f.cpu_s - first[f.pid].cpu_s)
        return out
