"""onnxruntime as a benchmark provider, at its best, fed torch tensors in place.

On a CUDA device: the CUDA execution provider with full graph optimisation,
``cudnn_conv_algo_search=EXHAUSTIVE``, torch's current stream as its compute stream
(``user_compute_stream``), IOBinding on the torch tensors' device
pointers for inputs and outputs, and CUDA graphs when onnxruntime accepts them for the model
(it refuses graphs with nodes on the CPU provider; the runner then falls back and says so in
`note`). On the CPU: the CPU execution provider, numpy views of the torch tensors.

The current stream must not be torch's default stream: its handle is 0, which onnxruntime takes
for "no stream given", so it would run on a stream of its own and end each run in a sync (its
rows would time synchronous wall time while tritonnx rows time device time). The benchmark
runs every provider inside `timing_stream`: one non-default torch stream, handed to onnxruntime
and timed on (issue 20, item 3).

onnxruntime is imported lazily; without it the error names the extra to install.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


def import_onnxruntime():
    """The onnxruntime module, or RuntimeError naming the extra that provides it."""
    try:
        import torch  # noqa: F401 - first: loads the CUDA/cuDNN libraries onnxruntime-gpu links against
        import onnxruntime
    except ImportError:
        raise RuntimeError(
            "onnxruntime is not installed: install tritonnx[gpu] (onnxruntime-gpu) on a GPU "
            "machine or tritonnx[cpu] (onnxruntime) on a CPU one"
        ) from None
    return onnxruntime


def _model_bytes(model) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, (str, Path)):
        return Path(model).read_bytes()
    return model.SerializeToString()


def _numpy_dtype(tensor):
    from tritonnx.runtime.dtypes import numpy_dtype_of_torch

    dtype = numpy_dtype_of_torch(tensor.dtype)
    if dtype is None:
        raise RuntimeError(f"onnxruntime IOBinding: no numpy element type for {tensor.dtype}")
    return dtype


_TIMING_STREAMS: dict = {}


@contextlib.contextmanager
def timing_stream(device):
    """Make one non-default torch stream of `device` (the same one on every call) current:
    onnxruntime gets it as its compute stream and the timing runs on it. No-op off CUDA."""
    if getattr(device, "type", device) != "cuda":
        yield None
        return
    import torch

    key = str(device)
    if key not in _TIMING_STREAMS:
        _TIMING_STREAMS[key] = torch.cuda.Stream(device=device)
    stream = _TIMING_STREAMS[key]
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        yield stream
    torch.cuda.current_stream(device).wait_stream(stream)


def session_options(ort, *, optimize: bool = True):
    so = ort.SessionOptions()
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    so.log_severity_level = 3
    return so


def _fp16_recurrent(data: bytes) -> bool:
    import onnx

    model = onnx.load_from_string(data)
    has_fp16_input = any(
        i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16 for i in model.graph.input
    ) or any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    return has_fp16_input and any(n.op_type in ("LSTM", "GRU", "RNN") for n in model.graph.node)


def cpu_session(model):
    """A CPU-provider session with full optimisation (the reference and the no-GPU provider).

    onnxruntime 1.32's CPU provider crashes (segfault) opening an fp16 model with LSTM/GRU/RNN
    nodes at ORT_ENABLE_ALL (seen with the zoo's rnn_lm, gru_lm, lstm_lm, bilstm_speech);
    EXTENDED opens them, so those models get EXTENDED.
    """
    ort = import_onnxruntime()
    data = _model_bytes(model)
    options = session_options(ort)
    if _fp16_recurrent(data):
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class OrtRunner:
    """Runs one model on onnxruntime with fixed torch feeds; ``runner()`` is what gets timed.

    Args:
        model: `onnx.ModelProto`, bytes or path.
        feeds: input name -> torch tensor; their device picks the provider.
        cuda_graph: try CUDA graphs (CUDA provider only).
        exhaustive: ``cudnn_conv_algo_search=EXHAUSTIVE`` (else DEFAULT).
        tf32: onnxruntime's ``use_tf32`` (its default is on, as is ours).
    Attributes:
        outputs: list of torch tensors, one per model output, filled by each call.
        provider: the execution provider that runs it.
        note: what was enabled or refused (e.g. "cuda graph refused: ...").
        stream: the CUDA stream handle given as ``user_compute_stream`` (None on the CPU).
    """

    def __init__(self, model, feeds: dict, *, cuda_graph: bool = True, exhaustive: bool = True,
                 tf32: bool = True):
        import torch

        self.ort = import_onnxruntime()
        self.model = _model_bytes(model)
        self.feeds = {k: v.contiguous() for k, v in feeds.items()}
        devices = {t.device.type for t in self.feeds.values()}
        self.on_cuda = devices == {"cuda"}
        self.device_type = "cuda" if self.on_cuda else "cpu"
        self.notes: list[str] = []
        self.tf32 = tf32
        self.device_id = 0
        self.stream = None
        if self.on_cuda:
            available = self.ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise RuntimeError(
                    f"onnxruntime has no CUDAExecutionProvider (available: {', '.join(available)}): "
                    "onnxruntime-gpu is not installed"
                )
            self.device_id = next(iter(self.feeds.values())).device.index or 0
        elif devices != {"cpu"}:
            raise RuntimeError(f"onnxruntime runner: feeds on {sorted(devices)}: expected all on one CUDA device or the CPU")
        self._build(cuda_graph, exhaustive, torch)

    @property
    def note(self) -> str:
        return "; ".join(self.notes)

    def _cuda_options(self, torch, exhaustive: bool, cuda_graph: bool) -> dict:
        self.stream = int(torch.cuda.current_stream().cuda_stream)
        if self.stream == 0 and "default stream" not in self.note:
            self.notes.append("on torch's default stream: onnxruntime runs on a stream of its own and syncs "
                              "each run (use timing_stream)")
        return {
            "device_id": str(self.device_id),
            "cudnn_conv_algo_search": "EXHAUSTIVE" if exhaustive else "DEFAULT",
            "user_compute_stream": str(self.stream),
            "enable_cuda_graph": "1" if cuda_graph else "0",
            "use_tf32": "1" if self.tf32 else "0",
        }

    def _session(self, torch, exhaustive: bool, cuda_graph: bool):
        if not self.on_cuda:
            return cpu_session(self.model)
        providers = [("CUDAExecutionProvider", self._cuda_options(torch, exhaustive, cuda_graph))]
        if not cuda_graph:
            providers.append("CPUExecutionProvider")
        return self.ort.InferenceSession(self.model, session_options(self.ort), providers=providers)

    def _bind(self, sess):
        """IOBinding of every input and output on the torch tensors' memory (no copies)."""
        binding = sess.io_binding()
        for name, t in self.feeds.items():
            binding.bind_input(name, self.device_type, self.device_id, _numpy_dtype(t), tuple(t.shape), t.data_ptr())
        for name, t in zip(self.output_names, self.outputs):
            binding.bind_output(name, self.device_type, self.device_id, _numpy_dtype(t), tuple(t.shape), t.data_ptr())
        return binding

    def _build(self, cuda_graph: bool, exhaustive: bool, torch) -> None:
        # Output shapes come from one plain run (IOBinding needs them to bind torch buffers).
        plain = self._session(torch, exhaustive, cuda_graph=False)
        self.provider = plain.get_providers()[0]
        if self.on_cuda and self.provider != "CUDAExecutionProvider":
            # onnxruntime falls back to the CPU with only a logged warning when the CUDA
            # provider's libraries do not load: never time that as the GPU baseline.
            raise RuntimeError(
                f"onnxruntime's CUDAExecutionProvider did not load (the session runs on {self.provider}): "
                "its CUDA/cuDNN libraries were not found; import torch first or call onnxruntime.preload_dlls()"
            )
        self.output_names = [o.name for o in plain.get_outputs()]
        host = {k: v.detach().cpu().numpy() for k, v in self.feeds.items()}
        first = plain.run(self.output_names, host)
        device = f"cuda:{self.device_id}" if self.on_cuda else "cpu"
        self.outputs = [torch.from_numpy(np.array(a, copy=True)).to(device) for a in first]
        self.sess, self.binding = plain, None
        if self.on_cuda and cuda_graph:
            try:
                sess = self._session(torch, exhaustive, cuda_graph=True)
                binding = self._bind(sess)
                sess.run_with_iobinding(binding)  # warm-up + capture
                sess.run_with_iobinding(binding)
                torch.cuda.synchronize()
                self.sess, self.binding = sess, binding
                self.notes.append("cuda graph")
            except Exception as exc:  # onnxruntime raises its own Fail/RuntimeException types
                self.notes.append(f"cuda graph refused: {str(exc).splitlines()[0][:120]}")
        if self.binding is None:
            self.binding = self._bind(self.sess)
            self.sess.run_with_iobinding(self.binding)
        if self.on_cuda:
            self.notes.append("EXHAUSTIVE conv search" if exhaustive else "default conv search")

    def __call__(self):
        """One run into the bound output tensors; returns them (`outputs`)."""
        self.sess.run_with_iobinding(self.binding)
        return self.outputs
