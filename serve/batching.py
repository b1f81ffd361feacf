"""Validation, dynamic batching and bucketing around any onnxruntime-style session.

A request is checked against the model (names, datatypes, ranks, fixed dims, batch size)
before it joins a batch, so a bad request gets its own error and never fails the others.
Requests whose inputs differ only in the batch axis (axis 0, dynamic in every input and
output) are concatenated, padded (by repeating the last row) up to a bucket size
(1, 2, 4, ..., max_batch_size) so that each bucket reuses one CUDA graph, run once, split
and unpadded. Requests with other non-batch dims run in their own batches. No Ray here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .protocol import DATATYPES, ORT_TO_DATATYPE, ProtocolError


class ModelError(RuntimeError):
    """The model failed on a batch (answered 500 with this one-line message)."""


def buckets(max_batch_size: int) -> list[int]:
    """The bucket sizes 1, 2, 4, ... up to and including `max_batch_size`."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    sizes, n = [], 1
    while n < max_batch_size:
        sizes.append(n)
        n *= 2
    return sizes + [max_batch_size]


def bucket_for(rows: int, sizes: list[int]) -> int:
    """The smallest bucket that holds `rows` rows."""
    for size in sizes:
        if size >= rows:
            return size
    raise ValueError(f"{rows} rows exceed the largest bucket {sizes[-1]}")


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, KServe datatype, dims (int, or -1 for dynamic)."""

    name: str
    datatype: str
    shape: tuple[int, ...] | None  # None: rank unknown

    def metadata(self) -> dict:
        return {"name": self.name, "datatype": self.datatype,
                "shape": list(self.shape) if self.shape is not None else [-1]}


def _spec(arg) -> TensorSpec:
    datatype = ORT_TO_DATATYPE.get(arg.type, arg.type)
    shape = None if arg.shape is None else tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, shape)


@dataclass
class Validated:
    """A request that passed validation: its feeds (numpy, model dtypes) and its batch rows."""

    feeds: dict[str, np.ndarray]
    rows: int  # rows along the batch axis (1 for an unbatched model)
    key: tuple  # requests with equal keys may share a batch
    enqueued: float = field(default_factory=time.perf_counter)


class ModelServer:
    """One model behind the protocol: metadata, validation and batched runs.

    Args:
        name: the model's name in URLs.
        session: an object with onnxruntime's ``get_inputs``, ``get_outputs`` and ``run``
            (a `tritonnx.InferenceSession` or an ``onnxruntime.InferenceSession``).
        max_batch_size: the largest batch (in rows) one run takes.
        platform: the metadata's platform string.
    """

    def __init__(self, name: str, session, *, max_batch_size: int = 16, platform: str = "onnx") -> None:
        self.name = name
        self.session = session
        self.platform = platform
        self.inputs = [_spec(a) for a in session.get_inputs()]
        self.outputs = [_spec(a) for a in session.get_outputs()]
        self.output_names = [o.name for o in self.outputs]
        self.batchable = bool(self.inputs) and max_batch_size > 1 and all(
            s.shape is not None and len(s.shape) >= 1 and s.shape[0] == -1
            for s in self.inputs + self.outputs)
        self.max_batch_size = max_batch_size if self.batchable else 1
        self.buckets = buckets(self.max_batch_size)

    def metadata(self) -> dict:
        """``GET /v2/models/{name}``: name, versions, platform, inputs and outputs."""
        return {"name": self.name, "versions": ["1"], "platform": self.platform,
                "inputs": [s.metadata() for s in self.inputs],
                "outputs": [s.metadata() for s in self.outputs],
                "parameters": {"max_batch_size": self.max_batch_size if self.batchable else 0}}

    def validate(self, inputs: dict[str, np.ndarray], outputs: list[str] | None = None) -> Validated:
        """Check one request's tensors against the model; `ProtocolError` (one line) if wrong."""
        known = {s.name for s in self.inputs}
        extra = sorted(set(inputs) - known)
        if extra:
            raise ProtocolError(f"model {self.name!r} has no input {extra[0]!r} (inputs: {sorted(known)})")
        if outputs is not None:
            unknown = [o for o in outputs if o not in self.output_names]
            if unknown:
                raise ProtocolError(f"model {self.name!r} has no output {unknown[0]!r} (outputs: {self.output_names})")
        feeds, rows, key = {}, None, []
        for spec in self.inputs:
            if spec.name not in inputs:
                raise ProtocolError(f"model {self.name!r}: input {spec.name!r} is missing")
            array = inputs[spec.name]
            got = "BYTES" if array.dtype == object else next(
                (n for n, d in DATATYPES.items() if d == array.dtype), str(array.dtype))
            if got != spec.datatype:
                raise ProtocolError(f"model {self.name!r}: input {spec.name!r} expects {spec.datatype}, got {got}")
            if spec.shape is not None:
                if array.ndim != len(spec.shape):
                    raise ProtocolError(f"model {self.name!r}: input {spec.name!r} expects rank {len(spec.shape)} "
                                        f"(shape {list(spec.shape)}), got shape {list(array.shape)}")
                for axis, (want, have) in enumerate(zip(spec.shape, array.shape)):
                    if want != -1 and want != have:
                        raise ProtocolError(f"model {self.name!r}: input {spec.name!r} expects dim {axis} = {want} "
                                            f"(shape {list(spec.shape)}), got shape {list(array.shape)}")
            if self.batchable:
                if rows is not None and array.shape[0] != rows:
                    raise ProtocolError(f"model {self.name!r}: input {spec.name!r} has batch {array.shape[0]}, "
                                        f"the other inputs {rows}")
                rows = array.shape[0]
                if rows > self.max_batch_size:
                    raise ProtocolError(f"model {self.name!r}: batch {rows} exceeds max_batch_size "
                                        f"{self.max_batch_size}")
                if rows == 0:
                    raise ProtocolError(f"model {self.name!r}: input {spec.name!r} has batch 0")
            if array.dtype == object:
                array = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                                  for v in array.reshape(-1)], dtype=object).reshape(array.shape)
            feeds[spec.name] = array
            key.append((spec.name, tuple(array.shape[1:]) if self.batchable else tuple(array.shape)))
        return Validated(feeds, rows or 1, tuple(key) if self.batchable else (id(feeds),))

    def plan(self, requests: list[Validated]) -> list[list[int]]:
        """Group request indices into runs: equal keys, at most `max_batch_size` rows each."""
        groups: dict[tuple, list[list[int]]] = {}
        for i, request in enumerate(requests):
            chunks = groups.setdefault(request.key, [[]])
            rows = sum(requests[j].rows for j in chunks[-1])
            if chunks[-1] and rows + request.rows > self.max_batch_size:
                chunks.append([])
            chunks[-1].append(i)
        return [chunk for chunks in groups.values() for chunk in chunks]

    def run_batch(self, requests: list[Validated]) -> list[Any]:
        """Run validated requests in as few bucketed runs as allowed.

        Returns:
            One entry per request, in order: a dict output name -> array (its rows only), or
            a `ModelError` when its run failed (the other runs are unaffected). Each dict has
            the run's facts under the key ``None``: requests, rows, bucket, queue_s, run_s.
        """
        results: list[Any] = [None] * len(requests)
        for chunk in self.plan(requests):
            members = [requests[i] for i in chunk]
            rows = sum(m.rows for m in members)
            bucket = bucket_for(rows, self.buckets) if self.batchable else rows
            start = time.perf_counter()
            try:
                outs = self._run(members, rows, bucket)
            except Exception as exc:  # noqa: BLE001 - one failed run answers its own requests
                message = " ".join(str(exc).split()) or type(exc).__name__
                for i in chunk:
                    results[i] = ModelError(f"model {self.name!r}: {type(exc).__name__}: {message}")
                continue
            run_s = time.perf_counter() - start
            offset = 0
            for i, member in zip(chunk, members):
                facts = {"requests": len(chunk), "rows": rows, "bucket": bucket,
                         "queue_s": start - member.enqueued, "run_s": run_s}
                if self.batchable:
                    mine = {n: o[offset:offset + member.rows] for n, o in outs.items()}
                else:
                    mine = outs
                offset += member.rows
                results[i] = {**mine, None: facts}
        return results

    def _run(self, members: list[Validated], rows: int, bucket: int) -> dict[str, np.ndarray]:
        if len(members) == 1 and bucket == rows:
            feeds = members[0].feeds
        else:
            feeds = {}
            for spec in self.inputs:
                parts = [m.feeds[spec.name] for m in members]
                if bucket > rows:
                    parts.append(np.repeat(parts[-1][-1:], bucket - rows, axis=0))
                feeds[spec.name] = np.concatenate(parts, axis=0)
        values = self.session.run(self.output_names, feeds)
        outs = {}
        for name, value in zip(self.output_names, values):
            value = np.asarray(value)
            if self.batchable and (value.ndim == 0 or value.shape[0] != bucket):
                raise ModelError(f"output {name!r} has shape {list(value.shape)}, not a batch of {bucket} rows")
            outs[name] = value[:rows] if self.batchable else value
        return outs
