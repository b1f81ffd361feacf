"""`executor.CudaGraphs` against a stand-in for torch.cuda (no GPU here): the capture runs on the
session's device in "thread_local" mode, and a failed capture gives the caller its stream back
(torch.cuda.graph's __exit__ does not when capture_end raises)."""
import contextlib

import pytest
import torch

from tritonnx.runtime import executor


class _FakeCuda:
    """Records the current stream and device the way torch.cuda keeps them per thread."""

    def __init__(self, fail_capture_end: bool):
        self.stream = "caller-stream"
        self.devices = []
        self.modes = []
        self.fail = fail_capture_end

    def install(self, monkeypatch):
        fake = self

        class Graph:
            def replay(self):
                fake.devices.append(("replay", fake.devices[-1][1] if fake.devices else None))

        class GraphContext:
            def __init__(self, graph, capture_error_mode="global"):
                fake.modes.append(capture_error_mode)

            def __enter__(self):
                self.prev = fake.stream
                fake.stream = "capture-stream"

            def __exit__(self, *exc):
                if fake.fail:  # capture_end raises: torch never restores the stream
                    raise RuntimeError("CUDA error: operation failed due to a previous error during capture")
                fake.stream = self.prev

        @contextlib.contextmanager
        def device(dev):
            fake.devices.append(("enter", str(dev)))
            yield

        def set_stream(stream):
            fake.stream = stream

        monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
        monkeypatch.setattr(torch.cuda, "graph", GraphContext)
        monkeypatch.setattr(torch.cuda, "device", device)
        monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: fake.stream)
        monkeypatch.setattr(torch.cuda, "set_stream", set_stream)
        return self


def test_capture_on_the_session_device_thread_local(monkeypatch):
    fake = _FakeCuda(fail_capture_end=False).install(monkeypatch)
    backend = executor.CudaGraphs(torch.device("cuda", 1))
    seen = []
    graph, outs = backend.capture(lambda: seen.append(fake.stream) or ["y"])
    assert outs == ["y"] and seen == ["capture-stream"]
    assert fake.modes == ["thread_local"] and ("enter", "cuda:1") in fake.devices
    assert fake.stream == "caller-stream"
    backend.replay(graph)
    assert fake.devices[-2:] == [("enter", "cuda:1"), ("replay", "cuda:1")]


def test_failed_capture_gives_the_caller_its_stream_back(monkeypatch):
    fake = _FakeCuda(fail_capture_end=True).install(monkeypatch)
    backend = executor.CudaGraphs(torch.device("cuda", 0))

    def sync_in_capture():
        raise RuntimeError("CUDA error: operation not permitted when stream is capturing")

    with pytest.raises(RuntimeError, match="previous error during capture"):
        backend.capture(sync_in_capture)
    assert fake.stream == "caller-stream"  # the eager fallback runs on the caller's stream
