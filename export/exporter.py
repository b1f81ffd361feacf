"""torch -> ONNX for the zoo (and any `nn.Module`), checked and verified before it is written.

The exporter is torch's TorchScript-based one (`torch.onnx.export(..., dynamo=False)`) for
every model, one path for all. The dynamo exporter, seen with torch 2.13, unrolls `nn.RNN`
and fixes the sequence length at the example's, and fixes the sequence dim of LSTM/GRU
outputs; the TorchScript one keeps one ONNX RNN/LSTM/GRU node per layer with symbolic
batch and sequence axes, and writes one self-contained file. It supports opsets 17..20;
the default is 18 (LayerNormalization needs 17; 18 is what the runtime targets).

What `export_model` does, in order; any failure raises `ExportError` (or `InvalidArgument`
for a bad argument) and leaves nothing at `path`:
1. trace-export to a temporary file beside `path` (fp32, or the module cast to fp16);
2. `onnx.checker` (full check) and strict shape inference (the inferred shapes are kept);
3. graph checks: every dynamic axis is symbolic on the graph's inputs and outputs, and each
   `nn.RNN/LSTM/GRU` layer became one ONNX RNN/LSTM/GRU node (not an unrolled loop);
4. metadata_props: tritonnx.zoo_name, .family, .paper, .config, .dtype, .seed, .version,
   .exporter;
5. verification in onnxruntime (CPU) against the torch module run in float64 (with the
   exported dtype's weights), on fresh random inputs at two batch sizes (and two sequence
   lengths), failing with the max error beyond `TOLERANCE[dtype]`;
6. rename the temporary file onto `path`.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch
from torch import nn

from tritonnx import dtype_names, zoo
from tritonnx._version import __version__
from tritonnx.errors import ExportError, InvalidArgument

EXPORT_DTYPES = {name: dtype_names.torch_dtype(name) for name in ("fp32", "fp16")}
# max |onnxruntime - torch(float64)| / max |torch(float64)| over each output.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2}
MIN_OPSET, MAX_OPSET, DEFAULT_OPSET = 17, 20, 18
TRACE_BATCH = 2
VERIFY_BATCHES = (1, 3)
EXPORTER = "torch.onnx.export (TorchScript, dynamo=False)"
_RECURRENT_OPS = {nn.LSTM: "LSTM", nn.GRU: "GRU", nn.RNN: "RNN"}


@dataclasses.dataclass
class ExportResult:
    """What an export wrote and how well it agreed with torch.

    `checks` has one dict per verification run: batch, seq_len (None for non-sequence
    models), max_abs_err, max_rel_err. `ok` is False only in `export_all`'s rows of models
    that failed (then `error` says why and `path` is None).
    """

    name: str
    path: Path | None
    config: str
    dtype: str
    opset: int
    size_bytes: int = 0
    max_abs_err: float = float("nan")
    max_rel_err: float = float("nan")
    tolerance: float = float("nan")
    verified: bool = False
    checks: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    ops: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    ok: bool = True
    error: str | None = None


def normalize_dtype(dtype: Any) -> str:
    """"fp32"/"fp16" (aliases float32/float16, torch dtypes); anything else: InvalidArgument."""
    if isinstance(dtype, torch.dtype):
        dtype = dtype_names.of_torch(dtype) or str(dtype)
    key = dtype_names.lookup(dtype) or str(dtype).lower()
    if key == "bf16":
        raise InvalidArgument("dtype 'bf16' is a kernel dtype, not an export dtype; export fp32 or fp16")
    if key not in EXPORT_DTYPES:
        raise InvalidArgument(f"unsupported export dtype {dtype!r}; choose one of fp32, fp16 (or float32, float16)")
    return key


def check_opset(opset: Any) -> int:
    """The opset as an int in MIN_OPSET..MAX_OPSET; anything else: InvalidArgument."""
    try:
        value = int(opset)
        if isinstance(opset, bool) or value != float(opset):
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidArgument(f"opset must be an integer, got {opset!r}") from None
    if not MIN_OPSET <= value <= MAX_OPSET:
        raise InvalidArgument(f"unsupported opset {value}; the exporter supports {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    return value


def file_name(name: str, config: str, dtype: str) -> str:
    """The file name `export_all` uses: `<name>_<config>_<dtype>.onnx`."""
    return f"{name}_{config}_{normalize_dtype(dtype)}.onnx"


@dataclasses.dataclass
class _Spec:
    """The model to export and how to feed it (a zoo entry or a user's module)."""

    name: str
    module: nn.Module
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]]
    make_inputs: Any  # (batch, seq_len | None, seed) -> tuple[Tensor, ...]
    seq_len: int | None
    metadata: dict[str, str]


def _zoo_spec(name: str, config: str, seed: int, state_dict) -> _Spec:
    entry = zoo.get(name)
    cfg = entry.config(config)
    module = entry.build(config, seed=seed, state_dict=state_dict)
    return _Spec(
        name=name,
        module=module,
        input_names=entry.input_names,
        output_names=entry.output_names,
        dynamic_axes=entry.dynamic_axes,
        make_inputs=lambda batch, seq_len, s: entry.example_inputs(config, batch=batch, seq_len=seq_len, seed=s),
        seq_len=cfg.get("seq_len") if entry.is_sequence else None,
        metadata={"tritonnx.zoo_name": name, "tritonnx.family": entry.family, "tritonnx.paper": entry.paper,
                  "tritonnx.config": config},
    )


def _module_spec(module: nn.Module, example_inputs, input_names, output_names, dynamic_axes) -> _Spec:
    if example_inputs is None:
        raise InvalidArgument("exporting an nn.Module needs example_inputs (a tuple of tensors)")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    example_inputs = tuple(example_inputs)
    if not example_inputs or not all(isinstance(x, torch.Tensor) for x in example_inputs):
        raise InvalidArgument("example_inputs must be a non-empty tuple of torch.Tensor")
    input_names = list(input_names or [f"input_{i}" if len(example_inputs) > 1 else "input" for i in range(len(example_inputs))])
    if len(input_names) != len(example_inputs):
        raise InvalidArgument(f"{len(input_names)} input_names for {len(example_inputs)} example_inputs")
    if output_names is None:
        with torch.no_grad():
            out = module.eval()(*example_inputs)
        n_out = len(out) if isinstance(out, (tuple, list)) else 1
        output_names = [f"output_{i}" if n_out > 1 else "output" for i in range(n_out)]
    output_names = list(output_names)
    if dynamic_axes is None:
        dynamic_axes = {n: {0: "batch"} for n in (*input_names, *output_names)}

    def make_inputs(batch, _seq_len, s):
        gen = torch.Generator().manual_seed(s)
        out = []
        for name, x in zip(input_names, example_inputs):
            shape = list(x.shape)
            for axis, axis_name in dynamic_axes.get(name, {}).items():
                if axis_name == "batch":
                    shape[axis] = batch
            if x.is_floating_point():
                out.append(torch.randn(shape, generator=gen, dtype=x.dtype))
            else:
                high = max(int(x.max()) + 1, 1) if x.numel() else 1
                out.append(torch.randint(0, high, shape, generator=gen, dtype=x.dtype))
        return tuple(out)

    name = type(module).__name__
    return _Spec(name, module, input_names, output_names, dict(dynamic_axes), make_inputs, None,
                 {"tritonnx.zoo_name": "", "tritonnx.family": "", "tritonnx.paper": "", "tritonnx.config": "custom"})


def _cast_inputs(inputs: Sequence[torch.Tensor], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    return tuple(x.to(dtype) if x.is_floating_point() else x for x in inputs)


def _prepare_path(path) -> tuple[Path, Path]:
    path = Path(path)
    if path.is_dir():
        raise InvalidArgument(f"cannot write {str(path)!r}: it is a directory (give a file name ending in .onnx)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as exc:
        raise InvalidArgument(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None
    return path, Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@contextlib.contextmanager
def _quiet_fds():
    """Silence fds 1 and 2: torch 2.13's TorchScript exporter always turns its ONNX log on
    (`setup_onnx_logging` tests a function object for truth) and dumps its IR on failure."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def _torch_export(spec: _Spec, module: nn.Module, args: tuple, tmp: Path, opset: int) -> None:
    try:
        with warnings.catch_warnings(), torch.no_grad(), _quiet_fds():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, args, str(tmp), dynamo=False, opset_version=opset,
                input_names=spec.input_names, output_names=spec.output_names,
                dynamic_axes=spec.dynamic_axes, do_constant_folding=True,
            )
    except Exception as exc:  # torch raises many types; the user gets one clear line
        raise ExportError(f"torch could not export {spec.name!r}: {_first_line(exc)}") from exc


def _check_graph(spec: _Spec, model: onnx.ModelProto, module: nn.Module) -> dict[str, int]:
    ops = Counter(n.op_type for n in model.graph.node)
    for cls, op in _RECURRENT_OPS.items():
        layers = sum(m.num_layers for m in module.modules() if type(m) is cls)
        if layers and ops.get(op, 0) != layers:
            raise ExportError(
                f"{spec.name}: expected {layers} ONNX {op} node(s), one per {cls.__name__} layer, "
                f"found {ops.get(op, 0)} (unrolled?)"
            )
    values = {v.name: v for v in (*model.graph.input, *model.graph.output)}
    for tensor, axes in spec.dynamic_axes.items():
        if tensor not in values:
            raise ExportError(f"{spec.name}: graph has no input/output named {tensor!r}")
        dims = values[tensor].type.tensor_type.shape.dim
        for axis, axis_name in axes.items():
            if axis >= len(dims) or dims[axis].dim_param != axis_name:
                got = "missing" if axis >= len(dims) else (dims[axis].dim_param or dims[axis].dim_value)
                raise ExportError(f"{spec.name}: axis {axis} of {tensor!r} should be the symbolic {axis_name!r}, got {got!r}")
    return dict(sorted(ops.items()))


def _ort_session(path: Path, name: str):
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("verification needs onnxruntime: install tritonnx[cpu] (or [gpu]), or pass verify=False") from None
    options = ort.SessionOptions()
    # Basic (semantics-preserving) graph optimisations only: onnxruntime 1.32's full level
    # crashes (SIGSEGV) on CPU when it loads an fp16 LSTM model.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"onnxruntime could not load the export of {name!r}: {_first_line(exc)}") from exc


def _verify(spec: _Spec, module: nn.Module, path: Path, dtype: str, seed: int, tolerance: float) -> list[dict[str, Any]]:
    session = _ort_session(path, spec.name)
    reference = copy.deepcopy(module).double()
    seq_lens: tuple[int | None, ...] = (None, None)
    if spec.seq_len is not None:
        seq_lens = (max(2, spec.seq_len // 2), spec.seq_len + 3)
    checks = []
    for i, (batch, seq_len) in enumerate(zip(VERIFY_BATCHES, seq_lens)):
        inputs = spec.make_inputs(batch, seq_len, seed + 1000 + i)
        feed = {n: x.numpy() for n, x in zip(spec.input_names, _cast_inputs(inputs, EXPORT_DTYPES[dtype]))}
        with torch.no_grad():
            ref = reference(*_cast_inputs(_cast_inputs(inputs, EXPORT_DTYPES[dtype]), torch.float64))
        refs = [t.numpy() for t in (ref if isinstance(ref, (tuple, list)) else (ref,))]
        try:
            outs = session.run(spec.output_names, feed)
        except Exception as exc:
            raise ExportError(f"onnxruntime failed to run the export of {spec.name!r} at batch {batch}: {_first_line(exc)}") from exc
        abs_err = rel_err = 0.0
        for out_name, got, want in zip(spec.output_names, outs, refs):
            if got.shape != want.shape:
                raise ExportError(f"{spec.name}: output {out_name!r} has shape {got.shape} in onnxruntime, {want.shape} in torch "
                                  f"(batch {batch}, seq_len {seq_len})")
            got64 = got.astype(np.float64)
            if not np.isfinite(got64).all():
                raise ExportError(f"{spec.name}: output {out_name!r} has non-finite values in onnxruntime (batch {batch}, seq_len {seq_len})")
            err = float(np.max(np.abs(got64 - want))) if want.size else 0.0
            scale = float(np.max(np.abs(want))) if want.size else 0.0
            abs_err = max(abs_err, err)
            rel_err = max(rel_err, err / max(scale, 1e-30))
        checks.append({"batch": batch, "seq_len": seq_len, "max_abs_err": abs_err, "max_rel_err": rel_err})
        if rel_err > tolerance:
            raise ExportError(
                f"{spec.name} ({dtype}) disagrees with torch at batch {batch}"
                + (f", seq_len {seq_len}" if seq_len is not None else "")
                + f": max relative error {rel_err:.3g} > tolerance {tolerance:g} (max abs error {abs_err:.3g})"
            )
    return checks


def export_model(
    name_or_module: str | nn.Module,
    path: str | os.PathLike,
    *,
    config: str = "paper",
    dtype: Any = "fp32",
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    seed: int = 0,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    example_inputs: Sequence[torch.Tensor] | None = None,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    tolerance: float | None = None,
) -> ExportResult:
    """Export a zoo model (by name) or an `nn.Module` to one ONNX file, checked and verified.

    Args:
        name_or_module: a `tritonnx.zoo` name, or a module (then `example_inputs` is required;
            names default to input/output(_i) and dynamic axes to dim 0 "batch" of each).
        path: the .onnx file to write (parents created); written only if every check passes.
        config: the zoo config, "paper" or "tiny".
        dtype: "fp32" or "fp16" (the module and its float inputs cast; token inputs stay int64).
        opset: ONNX opset, 17..20.
        verify: run the file in onnxruntime (CPU) against torch at two batch sizes (and two
            sequence lengths); raise `ExportError` with the max error beyond the tolerance.
        seed: seeds the zoo model's weights and the verification inputs.
        state_dict: trained weights for a zoo model.
        tolerance: max relative error (default `TOLERANCE[dtype]`).
    Returns:
        an `ExportResult`.
    Raises:
        InvalidArgument: unknown model/config, unsupported dtype/opset, unwritable path.
        ExportError: torch cannot export the module, the graph fails a check, or the file
            disagrees with torch.
    """
    start = time.perf_counter()
    dtype = normalize_dtype(dtype)
    opset = check_opset(opset)
    tolerance = TOLERANCE[dtype] if tolerance is None else float(tolerance)
    if isinstance(name_or_module, str):
        spec = _zoo_spec(name_or_module, config, seed, state_dict)
    elif isinstance(name_or_module, nn.Module):
        spec = _module_spec(name_or_module.eval(), example_inputs, input_names, output_names, dynamic_axes)
        config = "custom"
    else:
        raise InvalidArgument(f"export_model takes a zoo model name or an nn.Module, got {type(name_or_module).__name__}")
    path, tmp = _prepare_path(path)
    try:
        module = spec.module
        if dtype != "fp32":
            # nn.Module.to casts in place: a caller's module is copied first, never changed.
            owned = isinstance(name_or_module, str)
            module = (module if owned else copy.deepcopy(module)).to(EXPORT_DTYPES[dtype])
        args = _cast_inputs(spec.make_inputs(TRACE_BATCH, spec.seq_len, seed), EXPORT_DTYPES[dtype])
        _torch_export(spec, module, args, tmp, opset)
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
            model = onnx.shape_inference.infer_shapes(onnx.load(str(tmp)), check_type=True, strict_mode=True)
        except Exception as exc:
            raise ExportError(f"{spec.name}: the exported graph fails onnx's checks: {_first_line(exc)}") from exc
        ops = _check_graph(spec, model, module)
        onnx.helper.set_model_props(model, {
            **spec.metadata, "tritonnx.dtype": dtype, "tritonnx.seed": str(seed),
            "tritonnx.version": __version__, "tritonnx.exporter": EXPORTER,
        })
        onnx.save_model(model, str(tmp))
        del model
        checks = _verify(spec, module, tmp, dtype, seed, tolerance) if verify else []
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp made it 0600; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ExportResult(
        name=spec.name, path=path, config=config, dtype=dtype, opset=opset,
        size_bytes=path.stat().st_size,
        max_abs_err=max((c["max_abs_err"] for c in checks), default=float("nan")),
        max_rel_err=max((c["max_rel_err"] for c in checks), default=float("nan")),
        tolerance=tolerance, verified=bool(checks), checks=checks, ops=ops,
        seconds=time.perf_counter() - start,
    )


def export_all(
    out_dir: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    config: str = "paper",
    dtype: Any = "fp32",
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    seed: int = 0,
    progress: bool = True,
    on_done: Callable[[ExportResult], None] | None = None,
) -> list[ExportResult]:
    """Export several zoo models (default: all) into `out_dir` as `<name>_<config>_<dtype>.onnx`.

    `on_done` is called with each model's result as it finishes (e.g. a progress line).

    A model that fails gives a row with `ok=False` and its `error`; the others go on.
    Bad arguments (unknown name, dtype, opset, unwritable directory) raise before any export.
    """
    from tqdm import tqdm

    dtype = normalize_dtype(dtype)
    opset = check_opset(opset)
    names = list(zoo.names() if names is None else names)
    for name in names:
        zoo.get(name).config(config)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InvalidArgument(f"cannot write into {str(out)!r}: it is a file, not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgument(f"cannot create {str(out)!r}: {exc.strerror or exc}") from None
    results = []
    bar = tqdm(names, desc="export", unit="model", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        try:
            results.append(export_model(name, out / file_name(name, config, dtype), config=config, dtype=dtype,
                                        opset=opset, verify=verify, seed=seed))
        except ExportError as exc:
            results.append(ExportResult(name=name, path=None, config=config, dtype=dtype, opset=opset,
                                        tolerance=TOLERANCE[dtype], seconds=time.perf_counter() - start,
                                        ok=False, error=str(exc)))
        if on_done is not None:
            on_done(results[-1])
    bar.close()
    return results
