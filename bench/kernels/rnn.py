"""Kernel benchmark of the recurrent family (contract 6): one-layer LSTM, ours vs cuDNN vs onnxruntime.

Per case (hidden H, batch, seq; input size = H; forward direction) and dtype, rows for:
- "tritonnx" mode=step: the fused step kernel, one launch per step (`recurrent.run`);
- "tritonnx" mode=persistent: the whole sequence in one launch with the grid barrier, when its
  grid is co-resident (else a row with no timing and the reason); its note gives the
  barrier-time estimate ``1 - t(no barrier) / t(barrier)`` (the no-barrier run races and is
  only timed, never checked);
- "torch": `torch.nn.LSTM` (cuDNN) with the same weights (gate order converted);
- "onnxruntime": the same one-node ONNX LSTM model on the CUDA execution provider (IOBinding,
  fp16 rows on an fp16 model), as `onnxruntime_runner` sets it up.
Every row's `max_rel_err` is Y against the float64 `rnn_reference` on the same inputs.
Ours and torch's are timed as CUDA-graph replays (as the session runs them, and as onnxruntime
runs with its CUDA graphs), so the step kernel's per-step launches cost no Python time; a
capture that fails falls back to eager timing and says so in the note.
Times include the input projection (one GEMM) for every provider. tf32 is allowed for fp32
(ours, cuDNN and onnxruntime's `use_tf32` all default to on).

`mode_table(rows)` turns a run's rows into `recurrent.MODE_TABLE` entries (faster of step and
persistent per shape), to paste into `triton_kernels/recurrent.py` after a GPU run.
"""
from __future__ import annotations

import itertools

from tritonnx import dtype_names
from tritonnx.bench.kernels import (Budget, finish_block, make_row, max_rel_err, onnxruntime_runner, require_cuda,
                                    time_cuda)

FAMILY = "rnn"
HIDDEN = (128, 256, 512, 1024)
BATCH = (1, 8, 64, 256)
SEQ = (32, 128)
QUICK = ((256, 1, 32), (256, 64, 32), (512, 8, 32))


def _cases(quick: bool):
    if quick:
        return list(QUICK)
    return [(h, b, s) for s in SEQ for h in HIDDEN for b in BATCH]


def _onnx_lstm(W, R, B, dtype_name: str):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT16 if dtype_name == "fp16" else TensorProto.FLOAT
    inits = [numpy_helper.from_array(t.cpu().numpy(), n) for n, t in (("W", W), ("R", R), ("B", B))]
    hidden = int(R.shape[-1])
    node = helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=hidden)
    graph = helper.make_graph(
        [node], "lstm",
        [helper.make_tensor_value_info("X", elem, ["seq", "batch", int(W.shape[-1])])],
        [helper.make_tensor_value_info("Y", elem, ["seq", 1, "batch", hidden]),
         helper.make_tensor_value_info("Y_h", elem, [1, "batch", hidden]),
         helper.make_tensor_value_info("Y_c", elem, [1, "batch", hidden])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _graphed(fn):
    """(callable to time, note): a CUDA-graph replay of `fn` (warmed up first: autotuning and
    packing happen outside the capture), or `fn` itself when capture fails."""
    import torch

    caller = torch.cuda.current_stream()
    try:
        stream = torch.cuda.Stream()
        stream.wait_stream(caller)
        with torch.cuda.stream(stream):
            for _ in range(2):
                fn()
        caller.wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        graph.replay()
        return graph.replay, "cuda graph"
    except Exception as exc:  # noqa: BLE001 - reported in the row's note
        # torch.cuda.graph's __exit__ leaves the thread on its capture stream when the capture fails
        torch.cuda.set_stream(caller)
        torch.cuda.synchronize()
        return fn, f"eager (graph capture failed: {type(exc).__name__})"


def _flops_bytes(h: int, b: int, s: int, elem: int) -> tuple[float, float]:
    flops = 2.0 * s * b * 4 * h * (h + h) + 10.0 * s * b * h
    nbytes = float(elem * (4 * h * (h + h) + s * b * h + s * b * h))
    return flops, nbytes


def benchmark(*, dtypes: list[str], quick: bool, time_budget: float | None = None,
              done: frozenset = frozenset(), emit=None) -> list[dict]:
    """Rows of the contract (see `tritonnx.bench.kernels`); CUDA only. Cases in `done`
    ((case, dtype, batch)) are skipped; each case's rows go to `emit` as they finish."""
    require_cuda()
    import torch

    from tritonnx.triton_kernels import gate_order, recurrent, rnn_reference

    budget = Budget(time_budget)
    rows: list[dict] = []
    device = torch.device("cuda")
    for dtype_name, (h, b, s) in itertools.product(dtypes, _cases(quick)):
        case = f"lstm h{h} seq{s}"
        if (case, dtype_name, b) in done:
            continue
        if budget.spent():
            break
        block: list[dict] = []
        _bench_case(block, dtype_name, dtype_names.torch_dtype(dtype_name), case, h, b, s, device, torch,
                    gate_order, recurrent, rnn_reference)
        finish_block(block, rows, emit)
    return rows


def _bench_case(rows, dtype_name, dtype, case, h, b, s, device, torch, gate_order, recurrent, rnn_reference):
    """One case's rows (tritonnx step and persistent, torch, onnxruntime) appended to `rows`."""
    gen = torch.Generator(device="cpu").manual_seed(h * 1000 + b * 10 + s)
    scale = 1.0 / h ** 0.5
    W = ((torch.rand(1, 4 * h, h, generator=gen) * 2 - 1) * scale)
    R = ((torch.rand(1, 4 * h, h, generator=gen) * 2 - 1) * scale)
    B = ((torch.rand(1, 8 * h, generator=gen) * 2 - 1) * scale)
    X = torch.rand(s, b, h, generator=gen) * 2 - 1
    Wd, Rd, Bd, Xd = (t.to(device=device, dtype=dtype) for t in (W, R, B, X))
    ref = rnn_reference.lstm(*(t.to(device=device, dtype=torch.float64) for t in (Xd, Wd, Rd, Bd)))[0]
    flops, nbytes = _flops_bytes(h, b, s, Xd.element_size())
    row = dict(family=FAMILY, case=case, dtype=dtype_name, batch=b, flops=flops, bytes=nbytes)

    packed = recurrent.pack("LSTM", Wd, Rd, Bd, dtype=dtype, device=device)
    for mode in ("step", "persistent"):
        if mode == "persistent" and not recurrent.persistent_fits(packed, b, device):
            rows.append(make_row(**row, provider="tritonnx",
                                 note="mode=persistent: grid not co-resident or tile over budget"))
            continue
        try:
            fn = lambda mode=mode: recurrent.run(packed, Xd, mode=mode)  # noqa: E731
            err = max_rel_err(fn()[0], ref)
            timed, how = _graphed(fn)
            timing = time_cuda(timed)
            note = f"mode={mode}; {how}"
            if mode == "persistent":
                free, _ = _graphed(lambda: recurrent.run(packed, Xd, mode=mode, _barrier=False))
                t_free = time_cuda(free)
                note += f"; barrier~{max(0.0, 1 - t_free[0] / timing[0]):.0%} of the time"
            rows.append(make_row(**row, provider="tritonnx", timing=timing, max_rel_err=err, note=note))
        except Exception as exc:  # a provider that cannot run is a row with the reason
            rows.append(make_row(**row, provider="tritonnx", note=f"mode={mode}: {type(exc).__name__}: {exc}"))

    try:
        lstm = torch.nn.LSTM(h, h).to(device=device, dtype=dtype).eval()
        gate_order.onnx_to_torch_layer(lstm, Wd, Rd, Bd)
        with torch.no_grad():
            fn = lambda: lstm(Xd)  # noqa: E731
            err = max_rel_err(fn()[0].unsqueeze(1), ref)
            timed, how = _graphed(fn)
            timing = time_cuda(timed)
        rows.append(make_row(**row, provider="torch", timing=timing, max_rel_err=err,
                             note=f"cuDNN {torch.backends.cudnn.version()}; {how}"))
    except Exception as exc:
        rows.append(make_row(**row, provider="torch", note=f"{type(exc).__name__}: {exc}"))

    if dtype_name == "bf16":
        rows.append(make_row(**row, provider="onnxruntime", note="no bf16 LSTM in onnxruntime"))
        return
    try:
        runner = onnxruntime_runner(_onnx_lstm(Wd, Rd, Bd, dtype_name), {"X": Xd})
        runner()
        err = max_rel_err(runner.outputs[0], ref)
        rows.append(make_row(**row, provider="onnxruntime", timing=time_cuda(runner),
                             max_rel_err=err, note=runner.note))
    except Exception as exc:
        rows.append(make_row(**row, provider="onnxruntime", note=f"{type(exc).__name__}: {exc}"))
    return rows


def mode_table(rows: list[dict]) -> dict:
    """{("LSTM", dtype, hidden, batch bucket): "step" | "persistent"} from benchmark rows (the
    keys of `recurrent.MODE_TABLE`, bucketed as `recurrent.run` looks them up)."""
    from tritonnx.triton_kernels.recurrent import batch_bucket

    best: dict = {}
    for r in rows:
        if r["family"] != FAMILY or r["provider"] != "tritonnx" or r["median_ms"] is None:
            continue
        mode = r["note"].split(";")[0].removeprefix("mode=")
        hidden = int(r["case"].split()[1][1:])
        key = ("LSTM", r["dtype"], hidden, batch_bucket(r["batch"]))
        if key not in best or r["median_ms"] < best[key][1]:
            best[key] = (mode, r["median_ms"])
    return {k: v[0] for k, v in best.items()}
