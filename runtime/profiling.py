"""``SessionOptions.enable_profiling``: onnxruntime's chrome-trace JSON, written by `end_profiling`.

The file is what onnxruntime writes (seen with onnxruntime 1.32): a JSON list of complete
events (``"ph": "X"``, ``ts``/``dur`` in microseconds from the session's start, ``pid``/``tid``),
``cat: "Session"`` for the phases (``model_loading_uri`` or ``model_loading_array``,
``session_initialization``, ``model_run``, ``SequentialExecutor::Execute``) and
``cat: "Node"`` for each node run, named ``<node>_kernel_time`` with ``args`` ``op_name``,
``provider``, ``node_index`` and tritonnx's ``kernel`` (which kernel ran it). It opens in
Perfetto (ui.perfetto.dev) and chrome://tracing. Node times are measured one by one (CUDA
events on a GPU, wall time on the CPU) and laid end to end from the run's start.
"""
from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime


class Profiler:
    """Collects a session's events; `write` saves them as ``<prefix>_<local time>.json``."""

    def __init__(self, prefix: str = "onnxruntime_profile_") -> None:
        self.prefix = prefix or "onnxruntime_profile_"
        self.start_ns = time.time_ns()
        self._t0 = time.perf_counter_ns()
        self._events: list[dict] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def now_us(self) -> float:
        """Microseconds since the profiler started."""
        return (time.perf_counter_ns() - self._t0) / 1e3

    def event(self, name: str, start_us: float, dur_us: float, cat: str = "Session", args: dict | None = None) -> None:
        with self._lock:
            self._events.append({"cat": cat, "pid": self._pid, "tid": threading.get_native_id(),
                                 "dur": int(round(dur_us)), "ts": int(round(start_us)), "ph": "X",
                                 "name": name, "args": dict(args or {})})

    def run(self, start_us: float, end_us: float, rows, provider_of) -> None:
        """One run: its phases and one event per profiled node (`rows`: executor `ProfileRow`s)."""
        ts = start_us
        for i, row in enumerate(rows):
            dur = row.ms * 1e3
            self.event(f"{row.node}_kernel_time", ts, dur, cat="Node",
                       args={"op_name": row.op_type, "provider": provider_of(row), "kernel": row.kernel,
                             "node_index": str(i)})
            ts += dur
        self.event("SequentialExecutor::Execute", start_us, end_us - start_us)
        self.event("model_run", start_us, end_us - start_us)

    def write(self) -> str:
        """Write the events; return the file's path (as onnxruntime's ``end_profiling``)."""
        path = f"{self.prefix}_{datetime.now():%Y-%m-%d_%H-%M-%S}.json"
        with self._lock:
            events = sorted(self._events, key=lambda e: e["ts"])
        with open(path, "w", encoding="utf-8") as f:
            json.dump(events, f)
        return path
