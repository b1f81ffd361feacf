"""Kernel benchmark of the conv family (contract 6): fused Conv+bias+act(+residual)+pool blocks.

The blocks are those of the zoo's CNNs (lenet5, alexnet, vgg16, googlenet, resnet18) at their
paper shapes, found the way a session finds them: each model is exported (paper config) and
run through the session's passes; every ``tritonnx::ConvReluPool`` node (with its input shape
and attributes) is one block. Repeated identical blocks of a model are measured once (the note
says how many there are). The paper blocks ship as ``conv_blocks.json`` (`write_bundled`
regenerates it); other configs are cached as JSON in ``~/.cache/tritonnx/bench``
(``$TRITONNX_CACHE_DIR/bench``). Pooled blocks run first, then residual ones, then the rest; fp16 first when listed first.

Per block, batch (1 and 64) and dtype, rows for:
- "tritonnx": `conv_relu_pool` on a channels-last input with prepacked weights (as the
  runtime's handler runs it); its note names the autotuned config;
- "torch": cuDNN: ``F.conv2d`` + activation + ``F.max_pool2d``/``F.avg_pool2d`` (+ the residual
  add), channels-last, ``cudnn.benchmark`` on;
- "onnxruntime": the same block as a small unfused ONNX model (Conv, Add, activation, pool) on
  the CUDA execution provider at its best (`onnxruntime_runner`; fp16 rows on an fp16 model).
Every row's ``max_rel_err`` is against the float64 reference (`conv_relu_pool_reference`).
``flops`` counts the convolution once (2 * N * OH * OW * O * C_g * KH * KW; our kernel
recomputes the overlap of 3x3/2 pools), ``bytes`` the minimal traffic (input, weights, bias,
residual, pooled output). tf32 is allowed for fp32 (ours, cuDNN and onnxruntime alike).
"""
from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from tritonnx import dtype_names
from tritonnx.bench.kernels import (Budget, finish_block, make_row, max_rel_err, onnxruntime_runner, require_cuda,
                                    time_cuda)

FAMILY = "conv"
MODELS = ("lenet5", "alexnet", "vgg16", "googlenet", "resnet18")
BATCHES = (1, 64)
QUICK_BLOCKS = 2  # per model, with quick=True (batch 64 only)


@dataclass(frozen=True)
class Block:
    """One fused conv block: input [C, H, W] (batch free), weight shape, and the node's attributes."""

    model: str
    name: str
    in_chw: tuple[int, int, int]
    w_shape: tuple[int, int, int, int]
    has_bias: bool
    has_residual: bool
    attrs: dict
    count: int = 1

    @property
    def label(self) -> str:
        o, cg, kh, kw = self.w_shape
        c, h, w = self.in_chw
        a = self.attrs
        text = f"{self.model}:{c}x{h}x{w}->{o} k{kh}x{kw}s{a['strides'][0]}"
        if a.get("group", 1) != 1:
            text += f"g{a['group']}"
        if self.has_residual:
            text += "+res"
        if a.get("activation", "none") != "none":
            text += f"+{a['activation']}"
        if a.get("pool", "none") != "none":
            text += f"+{a['pool']}{a['pool_kernel'][0]}s{a['pool_strides'][0]}"
        return text

    def key(self) -> str:
        return json.dumps([self.in_chw, self.w_shape, self.has_bias, self.has_residual, self.attrs], sort_keys=True)


def _node_attrs(node) -> dict:
    out = {}
    for name, attr in node.attributes.items():
        v = attr.value
        out[name] = list(v) if isinstance(v, (list, tuple)) else v
    return out


def extract_blocks(model, name: str) -> list[Block]:
    """The ConvReluPool blocks the session's passes make of `model` (an ONNX ModelProto)."""
    import onnx
    import onnx_ir as ir

    from tritonnx.runtime.passes import builtin_rules
    from tritonnx.runtime.passes.pipeline import PassState, run_passes

    fused = run_passes(model, PassState(rules=builtin_rules().copy()))
    if isinstance(fused, onnx.ModelProto):
        fused = ir.serde.deserialize_model(fused)
    blocks: dict[str, Block] = {}
    for node in fused.graph:
        if node.op_type != "ConvReluPool":
            continue
        x, w = node.inputs[0], node.inputs[1]
        dims = list(x.shape) if x.shape is not None else []
        if len(dims) != 4 or not all(isinstance(d, int) for d in dims[1:]) or w.shape is None:
            continue
        block = Block(
            model=name, name=node.name or "", in_chw=tuple(int(d) for d in dims[1:]),
            w_shape=tuple(int(d) for d in w.shape),
            has_bias=len(node.inputs) > 2 and node.inputs[2] is not None,
            has_residual=len(node.inputs) > 3 and node.inputs[3] is not None,
            attrs=_node_attrs(node),
        )
        if block.key() in blocks:
            old = blocks[block.key()]
            blocks[block.key()] = Block(**{**asdict(old), "count": old.count + 1})
        else:
            blocks[block.key()] = block
    return list(blocks.values())


BUNDLED = Path(__file__).with_name("conv_blocks.json")  # paper-config blocks, written by `write_bundled`


def _from_json(items) -> list[Block]:
    return [Block(**{**b, "in_chw": tuple(b["in_chw"]), "w_shape": tuple(b["w_shape"])}) for b in items]


def model_blocks(name: str, *, config: str = "paper", cache: bool = True) -> list[Block]:
    """`extract_blocks` of the zoo model `name` exported in `config`.

    "paper" blocks come from the bundled `conv_blocks.json` when it lists the model (so a GPU
    session spends no time exporting), else from a JSON cache in the ``bench`` folder of
    `aot.cache_root()` (``$TRITONNX_CACHE_DIR``, as the compile gate's), else an export.
    """
    import onnx

    from tritonnx.export import export_model
    from tritonnx.triton_kernels.aot import cache_root

    if cache and config == "paper" and BUNDLED.exists():
        bundled = json.loads(BUNDLED.read_text())
        if name in bundled:
            return _from_json(bundled[name])
    path = cache_root() / "bench" / f"conv-blocks-{name}-{config}.json"
    if cache and path.exists():
        return _from_json(json.loads(path.read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / f"{name}.onnx"
        export_model(name, onnx_path, config=config, verify=False)
        blocks = extract_blocks(onnx.load(str(onnx_path)), name)
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([asdict(b) for b in blocks]))
    return blocks


def write_bundled(models=MODELS) -> Path:
    """Re-extract the paper blocks of `models` (exports them) into `conv_blocks.json`."""
    data = {name: [asdict(b) for b in model_blocks(name, cache=False)] for name in models}
    BUNDLED.write_text(json.dumps(data, indent=1) + "\n")
    return BUNDLED


def ordered_blocks(quick: bool) -> list[Block]:
    """The blocks to run, most telling first: pooled (the fusion's point), residual, the rest."""
    blocks = []
    for name in MODELS:
        found = model_blocks(name)
        blocks += found[:QUICK_BLOCKS] if quick else found

    def rank(b: Block) -> int:
        return 0 if b.attrs.get("pool", "none") != "none" else 1 if b.has_residual else 2

    return sorted(blocks, key=rank)  # stable: model order within a rank


# ----------------------------------------------------------------------------- the block, three ways
def kernel_kwargs(block: Block, in_hw) -> dict:
    """`conv_relu_pool` keyword arguments of `block` for an input of spatial size `in_hw` (the
    fused op's own translation: `tritonnx.runtime.ops.fused_conv.kernel_kwargs`)."""
    from tritonnx.runtime.ops.fused_conv import kernel_kwargs as fused_kernel_kwargs

    return fused_kernel_kwargs(block.attrs, in_hw, block.w_shape[2:])


def torch_block(x, w, b, r, kw: dict):
    """The block with torch ops as a user would write it (cuDNN conv, then activation and pool)."""
    import torch
    import torch.nn.functional as F

    from tritonnx.triton_kernels.conv_relu_pool import conv_relu_pool_reference

    pt, pl, pb, pr = kw["pads"]
    if (pt, pl) == (pb, pr):
        y = F.conv2d(x, w, b, kw["strides"], (pt, pl), kw["dilations"], kw["group"])
    else:
        y = F.conv2d(F.pad(x, (pl, pr, pt, pb)), w, b, kw["strides"], 0, kw["dilations"], kw["group"])
    if r is not None:
        y = y + r
    if kw["activation"] == "relu":
        y = torch.relu(y)
    elif kw["activation"] == "leaky_relu":
        y = F.leaky_relu(y, kw["alpha"])
    elif kw["activation"] == "clip":
        y = y.clamp(kw["clip_min"], kw["clip_max"])
    if kw["pool"] == "none":
        return y
    qt, ql, qb, qr = kw["pool_pads"]
    if (qt, ql) != (qb, qr):  # asymmetric pool pads: torch has none; pool via an identity depthwise conv
        return conv_relu_pool_reference(y, torch.ones(y.shape[1], 1, 1, 1, dtype=y.dtype, device=y.device),
                                        group=y.shape[1], activation="none",
                                        **{k: v for k, v in kw.items() if k.startswith("pool") or k in (
                                            "ceil_mode", "count_include_pad")})
    if kw["pool"] == "max":
        return F.max_pool2d(y, kw["pool_kernel"], kw["pool_strides"], (qt, ql), ceil_mode=kw["ceil_mode"])
    return F.avg_pool2d(y, kw["pool_kernel"], kw["pool_strides"], (qt, ql), ceil_mode=kw["ceil_mode"],
                        count_include_pad=kw["count_include_pad"])


def onnx_block(block: Block, w, b, dtype_name: str):
    """The unfused block as a one-block ONNX model: inputs "x" (and "r"), output "y"."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    a = block.attrs
    elem = TensorProto.FLOAT16 if dtype_name == "fp16" else TensorProto.FLOAT
    inits = [numpy_helper.from_array(w.cpu().numpy(), "w")]
    conv_in = ["x", "w"]
    if b is not None:
        inits.append(numpy_helper.from_array(b.cpu().numpy(), "b"))
        conv_in.append("b")
    conv_attrs = {k: a[k] for k in ("strides", "dilations", "group") if k in a}
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", ""):
        conv_attrs["auto_pad"] = a["auto_pad"]
    else:
        conv_attrs["pads"] = a.get("pads", [0, 0, 0, 0])
    nodes = [helper.make_node("Conv", conv_in, ["c"], kernel_shape=list(block.w_shape[2:]), **conv_attrs)]
    last = "c"
    inputs = [helper.make_tensor_value_info("x", elem, ["N", *block.in_chw])]
    if block.has_residual:
        nodes.append(helper.make_node("Add", [last, "r"], ["s"]))
        inputs.append(helper.make_tensor_value_info("r", elem, ["N", block.w_shape[0], "RH", "RW"]))
        last = "s"
    act = a.get("activation", "none")
    if act == "relu":
        nodes.append(helper.make_node("Relu", [last], ["a"]))
        last = "a"
    elif act == "leaky_relu":
        nodes.append(helper.make_node("LeakyRelu", [last], ["a"], alpha=float(a.get("alpha", 0.01))))
        last = "a"
    elif act == "clip":
        np_dtype = w.cpu().numpy().dtype
        import numpy as np

        inits += [numpy_helper.from_array(np.array(a.get("clip_min", -3.0e38), np_dtype), "lo"),
                  numpy_helper.from_array(np.array(a.get("clip_max", 3.0e38), np_dtype), "hi")]
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["a"]))
        last = "a"
    pool = a.get("pool", "none")
    if pool != "none":
        pool_attrs = dict(kernel_shape=a["pool_kernel"], strides=a.get("pool_strides", [1, 1]),
                          ceil_mode=int(a.get("ceil_mode", 0)))
        if a.get("pool_auto_pad", "NOTSET") not in ("NOTSET", ""):
            pool_attrs["auto_pad"] = a["pool_auto_pad"]
        else:
            pool_attrs["pads"] = a.get("pool_pads", [0, 0, 0, 0])
        if pool == "avg":
            pool_attrs["count_include_pad"] = int(a.get("count_include_pad", 0))
        nodes.append(helper.make_node("MaxPool" if pool == "max" else "AveragePool", [last], ["p"], **pool_attrs))
        last = "p"
    nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(nodes, "conv_block", inputs, [helper.make_tensor_value_info("y", elem, ["N", block.w_shape[0], "YH", "YW"])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _flops_bytes(block: Block, n: int, out_shape, conv_hw, elem: int) -> tuple[float, float]:
    o, cg, kh, kw = block.w_shape
    c, h, w = block.in_chw
    flops = 2.0 * n * conv_hw[0] * conv_hw[1] * o * cg * kh * kw
    moved = n * c * h * w + o * cg * kh * kw + (o if block.has_bias else 0) + math.prod(out_shape)
    if block.has_residual:
        moved += n * o * conv_hw[0] * conv_hw[1]
    return flops, float(moved * elem)


def benchmark(*, dtypes: list[str], quick: bool, time_budget: float | None = None,
              done: frozenset = frozenset(), emit=None) -> list[dict]:
    """Rows (contract 6) for every conv block of `MODELS` x `BATCHES` x `dtypes`; blocks in
    `done` ((case, dtype, batch)) are skipped, each block's rows go to `emit` as they finish."""
    require_cuda()
    import torch

    from tritonnx.triton_kernels import conv_relu_pool as crp

    budget = Budget(time_budget)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    device = torch.device("cuda")
    blocks = ordered_blocks(quick)
    batches = (64,) if quick else BATCHES
    rows: list[dict] = []
    for dtype_name in dtypes:
        dt = dtype_names.torch_dtype(dtype_name)
        for block in blocks:
            for n in batches:
                if (block.label, dtype_name, n) in done:
                    continue
                if budget.spent():
                    return rows
                finish_block(_bench_block(block, n, dtype_name, dt, device, crp, torch), rows, emit)
                torch.cuda.empty_cache()
    return rows


def _bench_block(block: Block, n: int, dtype_name: str, dt, device, crp, torch) -> list[dict]:
    gen = torch.Generator(device="cpu").manual_seed(0)
    o, cg, kh, kw_ = block.w_shape
    c, h, w_ = block.in_chw
    kw = kernel_kwargs(block, (h, w_))
    x = torch.randn(n, c, h, w_, generator=gen).to(device=device, dtype=dt).contiguous(memory_format=torch.channels_last)
    w = (torch.randn(o, cg, kh, kw_, generator=gen) / math.sqrt(cg * kh * kw_)).to(device=device, dtype=dt)
    b = torch.randn(o, generator=gen).to(device=device, dtype=dt) if block.has_bias else None
    conv_hw = [crp.conv_out_size((h, w_)[i], (kh, kw_)[i], kw["strides"][i], kw["pads"][i], kw["pads"][i + 2],
                                 kw["dilations"][i]) for i in range(2)]
    r = None
    if block.has_residual:
        r = torch.randn(n, o, *conv_hw, generator=gen).to(device=device, dtype=dt).contiguous(
            memory_format=torch.channels_last)
    ref = crp.conv_relu_pool_reference(x.double(), w.double(), None if b is None else b.double(),
                                       None if r is None else r.double(), **kw)
    flops, moved = _flops_bytes(block, n, ref.shape, conv_hw, x.element_size())
    common = dict(family=FAMILY, case=block.label, dtype=dtype_name, batch=n, flops=flops, bytes=moved)
    repeat = f"x{block.count} in {block.model}; " if block.count > 1 else ""
    rows = []

    packed = crp.pack_conv_weight(w, kw["group"])
    out = torch.empty_like(ref, dtype=dt).contiguous(memory_format=torch.channels_last)
    try:
        def ours():
            return crp.conv_relu_pool(x, packed, b, r, out=out, allow_tf32=True, **kw)

        y = ours()
        err = max_rel_err(y, ref)
        timing = time_cuda(ours)
        best = getattr(crp.conv_relu_pool_kernel, "best_config", None)
        rows.append(make_row(provider="tritonnx", timing=timing, max_rel_err=err,
                             note=f"{repeat}config {best}" if best else repeat.rstrip("; "), **common))
    except Exception as exc:  # a failing provider is a row with its reason, never a crash
        rows.append(make_row(provider="tritonnx", note=f"{repeat}failed: {type(exc).__name__}: {exc}"[:300], **common))

    try:
        def cudnn():
            return torch_block(x, w, b, r, kw)

        err = max_rel_err(cudnn(), ref)
        rows.append(make_row(provider="torch", timing=time_cuda(cudnn), max_rel_err=err,
                             note=f"{repeat}cuDNN conv + act + pool, channels_last, cudnn.benchmark", **common))
    except Exception as exc:
        rows.append(make_row(provider="torch", note=f"{repeat}failed: {type(exc).__name__}: {exc}"[:300], **common))

    if dtype_name == "bf16":
        rows.append(make_row(provider="onnxruntime", note="no bf16 model (bf16 is a kernel dtype, not an export dtype)",
                             **common))
        return rows
    try:
        feeds = {"x": x.contiguous()}
        if r is not None:
            feeds["r"] = r.contiguous()
        runner = onnxruntime_runner(onnx_block(block, w, b, dtype_name), feeds)
        runner()
        err = max_rel_err(runner.outputs[0], ref)
        rows.append(make_row(provider="onnxruntime", timing=time_cuda(runner), max_rel_err=err,
                             note=f"{repeat}{runner.note}", **common))
    except Exception as exc:
        rows.append(make_row(provider="onnxruntime", note=f"{repeat}failed: {type(exc).__name__}: {exc}"[:300],
                             **common))
    return rows
