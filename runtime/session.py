"""`InferenceSession`: onnxruntime's API over the tritonnx compiler and executor.

    sess = InferenceSession("model.onnx", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": x})                     # numpy in, numpy out
    (y,) = sess.run_torch(None, {"x": x_on_device})     # torch in, torch out, no host copy

Creation: load and check the model (`loader`), apply the session's dimension overrides, then
the compile stage (`tritonnx.runtime.compiler`: plugins, opset conversion, passes, check,
`Executor`). Every feed is validated before anything is launched.
"""
from __future__ import annotations

import dataclasses
import enum
import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import onnx
import torch

from tritonnx.errors import InvalidArgument, NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.context import CONFIG_KEYS, KEYWORDS, ExecContext, build_context, parse_setting
from tritonnx.runtime.executor import Executor, Profile, ProfileRow
from tritonnx.runtime.loader import load_model
from tritonnx.runtime.registry import CUSTOM_DOMAIN

TRITON_EP = "TritonExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
PROVIDERS = (TRITON_EP, CUDA_EP, CPU_EP)
#: onnxruntime's other execution providers: listed in a provider list, they are skipped with a
#: warning (as onnxruntime does for a provider it lacks); any other name is an error.
ONNXRUNTIME_ONLY_PROVIDERS = frozenset({
    "TensorrtExecutionProvider", "NvTensorRTRTXExecutionProvider", "MIGraphXExecutionProvider",
    "ROCMExecutionProvider", "OpenVINOExecutionProvider", "DnnlExecutionProvider",
    "DmlExecutionProvider", "CoreMLExecutionProvider", "NnapiExecutionProvider",
    "QNNExecutionProvider", "XnnpackExecutionProvider", "ACLExecutionProvider",
    "ArmNNExecutionProvider", "CANNExecutionProvider", "AzureExecutionProvider",
    "VitisAIExecutionProvider", "WebGpuExecutionProvider", "JsExecutionProvider",
    "SNPEExecutionProvider", "RknpuExecutionProvider", "TvmExecutionProvider",
})


def get_available_providers() -> list[str]:
    """The providers this machine can run, in priority order (CUDA only with a CUDA device)."""
    return [TRITON_EP, CUDA_EP, CPU_EP] if torch.cuda.is_available() else [TRITON_EP, CPU_EP]


def get_all_providers() -> list[str]:
    return list(PROVIDERS)


def get_device() -> str:
    """onnxruntime's ``get_device()``: "GPU" or "CPU"."""
    return "GPU" if torch.cuda.is_available() else "CPU"


class GraphOptimizationLevel(enum.IntEnum):
    """onnxruntime's levels; tritonnx applies every pass unless ``ORT_DISABLE_ALL``."""

    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class SessionOptions:
    """onnxruntime's ``SessionOptions``: the attributes scripts set, and config entries.

    tritonnx's own settings are config entries ``tritonnx.*`` (see DESIGN.md);
    `optimized_model_filepath`, when set, receives the rewritten model.
    """

    def __init__(self) -> None:
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.optimized_model_filepath = ""
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_profiling = False
        self.profile_file_prefix = "onnxruntime_profile_"
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False
        self._config: dict[str, str] = {}

    def add_session_config_entry(self, key: str, value: str) -> None:
        if key.startswith("tritonnx."):
            parse_setting(key, value)  # validate now: a typo fails here, not at session creation
        self._config[key] = str(value)

    def get_session_config_entry(self, key: str) -> str:
        try:
            return self._config[key]
        except KeyError:
            raise InvalidArgument(f"SessionOptions has no config entry {key!r}") from None

    def add_free_dimension_override_by_name(self, name: str, value: int) -> None:
        """Fix the symbolic input dimension `name` to `value` (feeds are checked against it)."""
        self._config[f"tritonnx.dim.{name}"] = str(int(value))


class RunOptions:
    """onnxruntime's ``RunOptions`` (accepted; tritonnx has no per-run settings yet)."""

    def __init__(self) -> None:
        self.log_severity_level = 2
        self.log_verbosity_level = 0
        self.logid = ""
        self.terminate = False
        self.only_execute_path_to_fetches = False
        self._config: dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        self._config[key] = str(value)


@dataclass(frozen=True)
class NodeArg:
    """A graph input or output, as onnxruntime shows it."""

    name: str
    type: str
    shape: list

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


@dataclass(frozen=True)
class ModelMetadata:
    producer_name: str
    graph_name: str
    domain: str
    description: str
    graph_description: str
    version: int
    custom_metadata_map: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Spec:
    name: str
    elem_type: int
    dims: tuple | None  # None: rank unknown; entries int, str (symbolic) or None (unknown)
    #: the wrappers around the tensor type, outermost first: ("seq",), ("optional", "seq"),
    #: ("seq", "map(int64,") for ZipMap's sequence of maps (the key type rides in the wrapper)
    kind: tuple[str, ...] = ()

    @property
    def type(self) -> str:
        text = dtypes.ort_type_string(self.elem_type)
        for wrapper in reversed(self.kind):
            text = f"{wrapper}{text})" if wrapper.startswith("map(") else f"{wrapper}({text})"
        return text

    @property
    def shape(self) -> list | None:
        """The shape onnxruntime shows: a sequence's is ``[]``, an optional's is its value's."""
        if "seq" in self.kind:
            return []
        return list(self.dims) if self.dims is not None else None

    @property
    def optional(self) -> bool:
        return self.kind[:1] == ("optional",)


def _spec(value: onnx.ValueInfoProto) -> _Spec:
    t = value.type
    kind: list[str] = []
    while t.WhichOneof("value") in ("sequence_type", "optional_type", "map_type"):
        wrapper = t.WhichOneof("value")
        if wrapper == "map_type":  # ai.onnx.ml's maps (ZipMap, DictVectorizer, CastMap): dicts
            kind.append(f"map({dtypes.onnx_type_name(t.map_type.key_type).lower()},")
            t = t.map_type.value_type
            continue
        kind.append("seq" if wrapper == "sequence_type" else "optional")
        t = getattr(t, wrapper).elem_type
    if not t.HasField("tensor_type"):
        what = t.WhichOneof("value") or "no type"
        raise NotImplemented(f"graph input/output {value.name!r} has type {what}; supported: tensors, "
                             "sequences of tensors and optionals of either")
    tt = t.tensor_type
    dims = None
    if tt.HasField("shape"):
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    return _Spec(value.name, tt.elem_type, dims, tuple(kind))


def _string_feed(spec: _Spec, value: Any) -> np.ndarray:
    """A feed of a string input as onnxruntime takes it: a numpy array of str (object or unicode)."""
    array = np.asarray(value)
    if array.dtype.kind not in "OSU":
        raise InvalidArgument(f"Unexpected input data type for input {spec.name!r}. Actual: ({array.dtype}) , "
                              f"expected: ({spec.type})")
    if spec.dims and array.ndim != len(spec.dims):  # declared scalar: any rank (onnxruntime's rule)
        raise InvalidArgument(f"Invalid rank for input: {spec.name} Got: {array.ndim} Expected: {len(spec.dims)} "
                              "Please fix either the inputs/outputs or the model.")
    return array.astype(object)


def _override_dims(model: onnx.ModelProto, dims: Mapping[str, int]) -> None:
    """Fix symbolic input dims by name (``add_free_dimension_override_by_name``), in place."""
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param") and dim.dim_param in dims:
                dim.dim_value = dims[dim.dim_param]


def _metadata(model: onnx.ModelProto) -> "ModelMetadata":
    return ModelMetadata(
        producer_name=model.producer_name, graph_name=model.graph.name, domain=model.domain,
        description=model.doc_string, graph_description=model.graph.doc_string, version=model.model_version,
        custom_metadata_map={p.key: p.value for p in model.metadata_props},
    )


def _parse_providers(providers, provider_options) -> tuple[list[str], list[dict]]:
    names: list[str] = []
    options: list[dict] = []
    if isinstance(providers, str):  # one name (onnxruntime would iterate its characters)
        providers = [providers]
    for item in providers or ():
        if isinstance(item, (tuple, list)) and len(item) == 2:
            name, opts = item
        else:
            name, opts = item, {}
        if name in ONNXRUNTIME_ONLY_PROVIDERS:
            # onnxruntime skips a provider it lacks with a warning; a script that lists e.g.
            # TensorRT first must survive the import swap, so do the same.
            warnings.warn(f"{name} is an onnxruntime provider that tritonnx does not have; skipped "
                          f"(tritonnx providers: {', '.join(PROVIDERS)})", RuntimeWarning, stacklevel=3)
            continue
        if name not in PROVIDERS:
            raise InvalidArgument(f"unknown execution provider {name!r}; valid providers: {', '.join(PROVIDERS)}")
        names.append(name)
        options.append(dict(opts or {}))
    if provider_options is not None:
        if len(provider_options) != len(names):
            raise InvalidArgument(f"provider_options has {len(provider_options)} entries for "
                                  f"{len(names)} providers; give one dict per provider")
        for i, extra in enumerate(provider_options):
            options[i].update(extra or {})
    return names, options


def _pick_device(names: list[str], options: list[dict]) -> torch.device:
    cuda = torch.cuda.is_available()
    if not names:
        return torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    gpu_names = [n for n in names if n in (CUDA_EP, TRITON_EP)]
    if gpu_names and cuda:
        device_id = 0
        for n, o in zip(names, options):
            if n in (CUDA_EP, TRITON_EP) and "device_id" in o:
                device_id = int(o["device_id"])
                break
        if not 0 <= device_id < torch.cuda.device_count():
            raise InvalidArgument(f"device_id {device_id}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", device_id)
    if CUDA_EP in names and not cuda:
        warnings.warn(f"{CUDA_EP} is not available (no CUDA device); running on the CPU", RuntimeWarning, stacklevel=3)
    return torch.device("cpu")


def _to_numpy(value):
    """An output in onnxruntime's Python form: an array, a list of arrays (a sequence), a list
    of dicts (a sequence of maps: ZipMap's), or ``None`` (an empty optional)."""
    if isinstance(value, torch.Tensor):
        return dtypes.to_numpy(value, copy=True)
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return [_to_numpy(v) for v in value]
    return None if value is None else np.asarray(value)


class InferenceSession:
    """Load, compile and run an ONNX model; onnxruntime's ``InferenceSession`` API.

    Args:
        path_or_bytes: a model path, its bytes, or an ``onnx.ModelProto``.
        sess_options: a `SessionOptions` (config entries ``tritonnx.*``, optimisation level).
        providers: names (or ``(name, options)`` pairs) from `PROVIDERS`; they pick the device
            (CUDA when listed and present, else CPU), never switch fusion off.
        provider_options: one dict per provider (``device_id``).
        **options: the ``tritonnx.*`` settings as keywords: ``fusion``, ``cuda_graphs``,
            ``cuda_graphs_max_shapes``, ``kernels``, ``tf32``, ``plugins``.
    """

    def __init__(self, path_or_bytes, sess_options: SessionOptions | None = None, providers=None,
                 provider_options=None, **options) -> None:
        self._sess_options = sess_options or SessionOptions()
        self._source, self._options, self._fallback = path_or_bytes, dict(options), True
        self._profiler = None
        if self._sess_options.enable_profiling:
            from tritonnx.runtime.profiling import Profiler

            self._profiler = Profiler(self._sess_options.profile_file_prefix)
        settings = self._settings(self._sess_options, options)
        names, popts = _parse_providers(providers, provider_options)
        device = _pick_device(names, popts)
        extra = {k: v for k, v in self._sess_options._config.items() if not k.startswith("tritonnx.")}
        self._ctx: ExecContext = build_context(device, settings, extra)
        self._provider_options = popts

        from tritonnx.runtime import compiler  # lazy: the passes import onnxscript

        self._tools = compiler.toolchain(self._ctx)
        what = f"model {os.fspath(path_or_bytes)!r}" if isinstance(path_or_bytes, (str, os.PathLike)) else "model"
        model = load_model(path_or_bytes)
        if self._profiler is not None:
            loaded = self._profiler.now_us()
            self._profiler.event("model_loading_uri" if isinstance(path_or_bytes, (str, os.PathLike))
                                 else "model_loading_array", 0, loaded)
        _override_dims(model, {k[len("tritonnx.dim."):]: int(v) for k, v in self._sess_options._config.items()
                               if k.startswith("tritonnx.dim.")})
        self._metadata = _metadata(model)
        self._inputs, self._overridable, self._outputs = self._io_specs(model)
        self._feedable = {s.name: s for s in (*self._inputs, *self._overridable)}
        self._output_order = [s.name for s in self._outputs]

        model = compiler.convert(model, self._tools, what)
        level = GraphOptimizationLevel(int(self._sess_options.graph_optimization_level))
        compiled = compiler.compile_model(model, self._tools, optimize=level != GraphOptimizationLevel.ORT_DISABLE_ALL,
                                          fusion=self._ctx.fusion, what=what)
        self._rewritten = compiled.rewritten
        self._report = compiled.report
        self._executor = compiled.executor
        # Feeds of a (name, dtype, shape) signature that passed `_validate` as torch tensors
        # already where they run: their next runs skip the checks (`_validate`'s fast path).
        self._feed_devices = {name: torch.device("cpu") if name in self._executor.host_feed_inputs else
                              torch.device(self.device) for name in self._feedable}
        self._valid_feeds: set[tuple] = set()
        self._absent_optional = {s.name: None for s in self._inputs if s.optional}
        if self._sess_options.optimized_model_filepath:
            self.save_rewritten(self._sess_options.optimized_model_filepath)
            if self._executor.has_custom_nodes:
                warnings.warn(f"optimized_model_filepath {self._sess_options.optimized_model_filepath!r}: the "
                              "written model holds fused nodes of domain 'tritonnx', which only tritonnx runs "
                              "(onnxruntime refuses it); fusion=False writes one without them",
                              RuntimeWarning, stacklevel=2)
        if TRITON_EP in names and self._ctx.kernels != "triton":
            warnings.warn(f"Specified provider '{TRITON_EP}' cannot run here (kernels={self._ctx.kernels!r}: "
                          f"the fused nodes run their torch references); running {self.get_providers()}",
                          RuntimeWarning, stacklevel=2)
        if self._profiler is not None:
            self._profiler.event("session_initialization", loaded, self._profiler.now_us() - loaded)
        # A run that overrides an initializer uses an unoptimised executor, compiled on first
        # need from the converted model (kept only when the model has such initializers).
        self._converted = model if self._overridable else None
        self._what = what
        self._override_executor: Executor | None = None
        self._override_lock = threading.Lock()

    def _executor_for(self, feeds: Mapping[str, Any]) -> Executor:
        """The optimised executor, or (when a feed overrides an initializer) the unoptimised one."""
        if not self._overridable or not any(s.name in feeds for s in self._overridable):
            return self._executor
        with self._override_lock:
            if self._override_executor is None:
                from tritonnx.runtime import compiler

                self._override_executor = compiler.compile_model(
                    self._converted, self._tools, optimize=False, fusion=False, fixed_initializers=False,
                    what=self._what).executor
            return self._override_executor

    # ----------------------------------------------------------------- settings
    @staticmethod
    def _settings(sess_options: SessionOptions, options: Mapping[str, Any]) -> dict[str, Any]:
        settings: dict[str, Any] = {}
        for key, value in sess_options._config.items():
            if key in CONFIG_KEYS:
                settings[CONFIG_KEYS[key][0]] = parse_setting(key, value)
        for kw, value in options.items():
            if kw not in KEYWORDS:
                raise InvalidArgument(f"unknown InferenceSession option {kw!r}; known: {', '.join(KEYWORDS)}")
            settings[kw] = parse_setting(KEYWORDS[kw], value)
        return settings

    @staticmethod
    def _io_specs(model: onnx.ModelProto):
        init_names = {t.name for t in model.graph.initializer}
        inputs, overridable = [], []
        for value in model.graph.input:
            (overridable if value.name in init_names else inputs).append(_spec(value))
        outputs = [_spec(v) for v in model.graph.output]
        return inputs, overridable, outputs

    # ----------------------------------------------------------------- onnxruntime's queries
    def get_inputs(self) -> list[NodeArg]:
        return [NodeArg(s.name, s.type, s.shape) for s in self._inputs]

    def get_outputs(self) -> list[NodeArg]:
        return [NodeArg(s.name, s.type, s.shape) for s in self._outputs]

    def get_overridable_initializers(self) -> list[NodeArg]:
        return [NodeArg(s.name, s.type, list(s.dims) if s.dims is not None else None) for s in self._overridable]

    def get_modelmeta(self) -> ModelMetadata:
        return dataclasses.replace(self._metadata, custom_metadata_map=dict(self._metadata.custom_metadata_map))

    def get_providers(self) -> list[str]:
        """What really runs: Triton first when fused nodes run Triton kernels, then the device's."""
        device_ep = CUDA_EP if self._ctx.is_cuda else CPU_EP
        if self._ctx.kernels == "triton" and self._executor.has_custom_nodes:
            return [TRITON_EP, device_ep]
        return [device_ep]

    def get_provider_options(self) -> dict[str, dict]:
        return {name: {"device_id": str(self._ctx.device.index or 0)} if name != CPU_EP else {}
                for name in self.get_providers()}

    def get_session_options(self) -> SessionOptions:
        return self._sess_options

    # ----------------------------------------------------------------- tritonnx's queries
    @property
    def context(self) -> ExecContext:
        return self._ctx

    @property
    def device(self) -> torch.device:
        return torch.device(self._ctx.device)

    @property
    def plugins(self) -> list[str]:
        """The entry-point plugins loaded into this session."""
        return list(self._tools.plugins)

    def fusion_report(self):
        """The `FusionReport`: every fused group and every declined candidate with its reason."""
        return self._report

    def rewritten_model(self) -> onnx.ModelProto:
        """The model after the passes (valid ONNX, custom domain ``tritonnx``)."""
        import onnx_ir as ir

        from tritonnx.runtime.passes.pipeline import pad_loop_inputs

        return pad_loop_inputs(ir.serde.serialize_model(self._rewritten))

    def save_rewritten(self, path) -> None:
        """Write the rewritten model (weights inline below 2 GB, else beside it as external data)."""
        import onnx_ir as ir

        from tritonnx.runtime.passes.pipeline import pad_loop_inputs

        proto = pad_loop_inputs(ir.serde.serialize_model(self._rewritten))
        large = sum(t.ByteSize() for t in proto.graph.initializer) > 1_900_000_000
        path = os.fspath(path)
        onnx.save_model(proto, path, save_as_external_data=large,
                        location=os.path.basename(path) + ".data" if large else None)

    # ----------------------------------------------------------------- feeds
    def _validate(self, feed: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """The feeds as torch tensors on their devices, checked against the model's inputs. A
        signature already checked, fed as tensors already in place, is not checked again."""
        key = self._feed_key(feed)
        if key is not None and key in self._valid_feeds:
            tensors = dict(feed)  # plain tensors that need no grad: detach() would only copy the header
            for name in self._absent_optional:
                if name not in tensors:
                    tensors[name] = None
            return tensors
        tensors = self._check_feeds(feed)
        if key is not None:
            if len(self._valid_feeds) >= 64:
                self._valid_feeds.clear()
            self._valid_feeds.add(key)
        return tensors

    def _feed_key(self, feed: Mapping[str, Any]) -> tuple | None:
        """(name, dtype, shape) of each feed when every one is a plain torch tensor on the device
        it runs on and names a plain tensor input; else None (the full checks and conversions)."""
        devices, tensor = self._feed_devices, torch.Tensor
        key = []
        for k, v in feed.items():
            if v.__class__ is not tensor or k not in devices or v.device != devices[k] or self._feedable[k].kind \
                    or v.requires_grad:
                return None
            key.append((k, v.dtype, v.shape))
        return tuple(key)

    def _check_feeds(self, feed: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        known = self._feedable
        for name in feed:
            if name not in known:
                raise InvalidArgument(f"Invalid input name: {name} (the model's inputs: "
                                      f"{[s.name for s in self._inputs]})")
        missing = [s.name for s in self._inputs if s.name not in feed and not s.optional]
        if missing:
            raise InvalidArgument(f"Required inputs ({missing}) are missing from input feed ({list(feed)}).")
        tensors: dict[str, torch.Tensor] = {}
        for name, value in feed.items():
            spec = known[name]
            if spec.kind:
                tensors[name] = self._wrapped_feed(spec, spec.kind, value)
                continue
            if spec.elem_type == onnx.TensorProto.STRING:  # strings stay numpy object arrays
                tensors[name] = _string_feed(spec, value)
                continue
            tensors[name] = self._check_tensor(spec, self._as_tensor(name, value))
        for spec in self._inputs:  # an optional input left out is an empty one (as in onnxruntime)
            if spec.optional and spec.name not in tensors:
                tensors[spec.name] = None
        return tensors

    @staticmethod
    def _check_tensor(spec: _Spec, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` checked against `spec`'s element type (and rank and dims, where known)."""
        name = spec.name
        expected = dtypes.ONNX_TO_TORCH.get(spec.elem_type)
        if tensor.dtype != expected:
            got = dtypes.ort_type_string(dtypes.TORCH_TO_ONNX[tensor.dtype]) if tensor.dtype in dtypes.TORCH_TO_ONNX else str(tensor.dtype)
            raise InvalidArgument(f"Unexpected input data type for input {name!r}. Actual: ({got}) , "
                                  f"expected: ({spec.type})")
        if spec.dims:  # None: no shape; (): a declared scalar, which onnxruntime does not check either
            if tensor.dim() != len(spec.dims):
                raise InvalidArgument(f"Invalid rank for input: {name} Got: {tensor.dim()} Expected: "
                                      f"{len(spec.dims)} Please fix either the inputs/outputs or the model.")
            bad = [(i, got, want) for i, (got, want) in enumerate(zip(tensor.shape, spec.dims))
                   if isinstance(want, int) and want >= 0 and got != want]
            if bad:
                lines = "".join(f" index: {i} Got: {got} Expected: {want}\n" for i, got, want in bad)
                raise InvalidArgument(f"Got invalid dimensions for input: {name} for the following indices\n"
                                      f"{lines} Please fix either the inputs/outputs or the model.")
        return tensor

    def _wrapped_feed(self, spec: _Spec, kind: tuple[str, ...], value: Any):
        """A feed for a sequence or optional input, in onnxruntime's Python form: a list of
        arrays for a sequence, ``None`` for an empty optional."""
        if not kind:
            return self._check_tensor(spec, self._as_tensor(spec.name, value))
        if kind[0] == "optional":
            return None if value is None else self._wrapped_feed(spec, kind[1:], value)
        if not isinstance(value, (list, tuple)):
            raise InvalidArgument(f"input with name: {spec.name!r} expected to be of type: {spec.type} (a list "
                                  f"of arrays) but received {type(value).__name__}")
        from tritonnx.runtime.subgraph import SequenceValue

        element = _Spec(spec.name, spec.elem_type, None)
        return SequenceValue(self._check_tensor(element, self._as_tensor(spec.name, v)) for v in value)

    def _as_tensor(self, name: str, value: Any) -> torch.Tensor:
        from tritonnx.runtime.ortvalue import OrtValue

        # an If/Loop condition or trip count fed from the host stays there (no device sync)
        device = "cpu" if name in self._executor.host_feed_inputs else self.device
        if isinstance(value, OrtValue):
            value = value.torch()
        if isinstance(value, torch.Tensor):
            return value.detach().to(device)
        if isinstance(value, tuple):  # onnxruntime takes a list, not a tuple
            raise InvalidArgument(f"Input must be a list of dictionaries or a single numpy array for input {name!r}.")
        if isinstance(value, list):  # as onnxruntime: converted to the input's type
            spec = self._feedable.get(name)
            np_dt = dtypes.numpy_dtype_of_torch(dtypes.ONNX_TO_TORCH.get(spec.elem_type)) if spec else None
            try:
                value = np.array(value, dtype=np_dt)
            except ValueError:  # ragged
                raise InvalidArgument(f"input {name!r}: Could not create tensor from given input list") from None
        elif not isinstance(value, np.ndarray):  # a Python or numpy scalar too, as onnxruntime
            raise InvalidArgument(f"input {name!r}: Unable to handle object of type {type(value)} "
                                  "(give a numpy array, a list, an OrtValue or a torch tensor)")
        array = np.asarray(value)
        if array.dtype.kind in "OSU":
            raise NotImplemented(f"input {name!r}: string tensors are not supported")
        if not array.flags.writeable:
            array = array.copy()
        try:
            return dtypes.from_numpy(array, device)
        except InvalidArgument as exc:
            raise InvalidArgument(f"input {name!r}: {exc}") from None

    def _output_names(self, output_names) -> list[str]:
        all_names = self._output_order
        if output_names is None or (not isinstance(output_names, str) and len(output_names) == 0):
            return list(all_names)  # onnxruntime: None or an empty list means every output
        if isinstance(output_names, str):
            output_names = [output_names]
        for name in output_names:
            if name not in all_names:
                raise InvalidArgument(f"Invalid output name: {name} (the model's outputs: {all_names})")
        return list(output_names)

    # ----------------------------------------------------------------- running
    def run_torch(self, output_names, input_feed: Mapping[str, Any], run_options=None) -> list[torch.Tensor]:
        """Like `run`, with torch tensors in and out on the session's device (no host copy)."""
        names = self._output_names(output_names)
        feeds = self._validate(input_feed)
        executor = self._executor_for(feeds)
        outs = executor.run(feeds, names)
        return [self._own(t, feeds, executor) for t in outs]

    def run(self, output_names, input_feed: Mapping[str, Any], run_options=None) -> list[np.ndarray]:
        """onnxruntime's ``run``: numpy arrays in (torch tensors accepted), numpy arrays out.

        Args:
            output_names: names to return, or None for every output, in the model's order.
            input_feed: input name -> array; initializers listed as inputs may be overridden.
        """
        names = self._output_names(output_names)
        feeds = self._validate(input_feed)
        if self._profiler is not None:
            return [_to_numpy(t) for t in self._run_recorded(feeds, names)]
        outs = self._executor_for(feeds).run(feeds, names)
        return [_to_numpy(t) for t in outs]

    def _run_recorded(self, feeds, names):
        """One run recorded by the profiler (its nodes timed one by one)."""
        rows: list[ProfileRow] = []
        start = self._profiler.now_us()
        outs = self._executor_for(feeds).run(feeds, names, profile=rows)
        device_ep = CUDA_EP if self._ctx.is_cuda else CPU_EP
        triton = self._ctx.kernels == "triton"
        self._profiler.run(start, self._profiler.now_us(), rows,
                           lambda row: TRITON_EP if triton and row.domain == CUSTOM_DOMAIN else device_ep)
        return outs

    def run_with_ort_values(self, output_names, input_dict_ort_values, run_options=None) -> list:
        """onnxruntime's ``run_with_ort_values``: `OrtValue`s in and out, on the session's device."""
        from tritonnx.runtime.ortvalue import OrtValue

        return [OrtValue(t) for t in self.run_torch(output_names, input_dict_ort_values, run_options)]

    def run_async(self, output_names, input_feed, callback, user_data, run_options=None) -> None:
        """onnxruntime's ``run_async``: runs on a worker thread, then calls
        ``callback(outputs, user_data, error)``: the numpy outputs and ``""``, or ``[]`` and the
        error's message."""
        def work():
            try:
                outs = self.run(output_names, input_feed, run_options)
            except Exception as exc:  # handed to the callback, as onnxruntime does
                callback([], user_data, str(exc))
            else:
                callback(outs, user_data, "")

        threading.Thread(target=work, name="tritonnx-run-async", daemon=True).start()

    def set_providers(self, providers=None, provider_options=None) -> None:
        """onnxruntime's ``set_providers``: the session is built again for the new providers."""
        self.__init__(self._source, self._sess_options, providers, provider_options, **self._options)

    def disable_fallback(self) -> None:
        """Accepted: tritonnx has no provider fallback (an error is raised, never retried elsewhere)."""
        self._fallback = False

    def enable_fallback(self) -> None:
        self._fallback = True

    def get_profiling_start_time_ns(self) -> int:
        return self._profiler.start_ns if self._profiler is not None else 0

    def run_profiled(self, output_names, input_feed: Mapping[str, Any]) -> tuple[list[torch.Tensor], list[ProfileRow]]:
        """One eager run timing every node (device time on CUDA, wall time on the CPU), on the
        signature's run plan (made first by an unprofiled run when the signature is new). The
        rows are a `Profile`: a list of `ProfileRow` that also has the run's wall time and host
        overhead (``wall_ms``, ``host_ms``, ``steps``, ``host_us_per_step``). ``wall_ms`` is the
        whole call as `run_torch` makes it (feed checks, the plan's walk, outputs), so ``host_ms``
        is everything but the nodes' own times."""
        names = self._output_names(output_names)
        first = self._validate(input_feed)
        executor = self._executor_for(first)
        if executor.plan_for(first, names) is None:
            executor.run(first, names)  # a new signature (or one that walks): its plan first
        rows = Profile()
        start = time.perf_counter()
        feeds = self._validate(input_feed)
        executor = self._executor_for(feeds)
        outs = executor.run(feeds, names, profile=rows)
        outs = [self._own(t, feeds, executor) for t in outs]
        rows.wall_ms = (time.perf_counter() - start) * 1e3
        return outs, rows

    @staticmethod
    def _own(t, feeds: Mapping[str, torch.Tensor], executor: Executor):
        """A result that aliases a weight (of the `executor` that ran) or a feed is cloned (the
        caller may write to it)."""
        if not isinstance(t, torch.Tensor):
            return t
        ptr = t.untyped_storage().data_ptr()
        if ptr in executor.weight_storages:
            return t.clone()
        for f in feeds.values():
            if isinstance(f, torch.Tensor) and f.untyped_storage().data_ptr() == ptr:
                return t.clone()
        return t

    def io_binding(self) -> "IOBinding":
        from tritonnx.runtime.iobinding import IOBinding

        return IOBinding(self)

    def run_with_iobinding(self, iobinding, run_options=None) -> None:
        iobinding.run_bound()

    def end_profiling(self) -> str:
        """Write the profile (onnxruntime's chrome-trace JSON) and return its path; "" when
        ``enable_profiling`` was off."""
        if self._profiler is None:
            return ""
        path = self._profiler.write()
        self._profiler = None
        return path
