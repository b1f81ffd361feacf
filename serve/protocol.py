"""The Open Inference Protocol (KServe v2, Triton's HTTP/REST protocol): tensors in and out.

JSON tensors ``{"name", "datatype", "shape", "data"}`` (data flat, row-major, or nested) and the
binary-tensor extension: the body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by raw tensor bytes; an input with ``parameters.binary_data_size`` takes its
data from there, and outputs are sent binary when the request asks for it
(``parameters.binary_data_output`` or an output's ``parameters.binary_data``), as
`tritonclient.http` does by default. BYTES elements travel binary as a 4-byte little-endian
length and the bytes. No Ray, no torch: numpy only.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

import numpy as np

HEADER = "Inference-Header-Content-Length"

#: KServe v2 datatype -> numpy dtype (BYTES: object arrays of bytes).
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

#: onnxruntime's type strings (``get_inputs()[i].type``) -> KServe v2 datatype.
ORT_TO_DATATYPE: dict[str, str] = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES", "tensor(bfloat16)": "BF16",
}


class ProtocolError(ValueError):
    """A request the protocol cannot accept (answered 400 with this one-line message)."""


def datatype_of(array: np.ndarray) -> str:
    """The KServe v2 datatype of a numpy array (str/bytes/object arrays are BYTES)."""
    if array.dtype.kind in "OSU":
        return "BYTES"
    for name, dt in DATATYPES.items():
        if dt == array.dtype:
            return name
    raise ProtocolError(f"numpy dtype {array.dtype} has no KServe v2 datatype")


@dataclass
class InferRequest:
    """A decoded ``POST /v2/models/{name}/infer`` body."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: list[str] | None = None  # None: every output
    binary_outputs: set[str] = field(default_factory=set)
    all_binary: bool = False
    parameters: dict = field(default_factory=dict)


def _split_body(body: bytes, header_length: int | str | None) -> tuple[dict, bytes]:
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise ProtocolError(f"{HEADER} {header_length!r} is not an integer") from None
        if not 0 <= n <= len(body):
            raise ProtocolError(f"{HEADER} {n} is outside the body's {len(body)} bytes")
        head, rest = body[:n], body[n:]
    else:
        head, rest = body, b""
    try:
        doc = json.loads(head)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError(f"the request must be a JSON object, got {type(doc).__name__}")
    return doc, rest


def _shape(tensor: dict, name: str) -> tuple[int, ...]:
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ProtocolError(f"input {name!r}: 'shape' must be a list of non-negative integers, got {shape!r}")
    return tuple(shape)


def _decode_bytes(raw: bytes, count: int, name: str) -> np.ndarray:
    items, offset = [], 0
    for _ in range(count):
        if offset + 4 > len(raw):
            raise ProtocolError(f"input {name!r}: BYTES data ends after {len(items)} of {count} elements")
        (n,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + n > len(raw):
            raise ProtocolError(f"input {name!r}: BYTES element {len(items)} runs past the data")
        items.append(raw[offset:offset + n])
        offset += n
    if offset != len(raw):
        raise ProtocolError(f"input {name!r}: {len(raw) - offset} bytes left after {count} BYTES elements")
    return np.array(items, dtype=object)


def _decode_tensor(tensor: dict, binary: bytes, offset: int) -> tuple[str, np.ndarray, int]:
    if not isinstance(tensor, dict):
        raise ProtocolError(f"each input must be a JSON object, got {type(tensor).__name__}")
    name = tensor.get("name")
    if not isinstance(name, str):
        raise ProtocolError(f"an input has no string 'name' (got {name!r})")
    datatype = tensor.get("datatype")
    if datatype not in DATATYPES:
        raise ProtocolError(f"input {name!r}: datatype {datatype!r} is not one of {', '.join(DATATYPES)}")
    shape = _shape(tensor, name)
    count = int(np.prod(shape, dtype=np.int64))
    dtype = DATATYPES[datatype]
    params = tensor.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise ProtocolError(f"input {name!r}: binary_data_size {size!r} runs past the "
                                f"{len(binary) - offset} binary bytes left")
        raw = binary[offset:offset + size]
        offset += size
        if datatype == "BYTES":
            flat = _decode_bytes(raw, count, name)
        else:
            if size != count * dtype.itemsize:
                raise ProtocolError(f"input {name!r}: shape {list(shape)} of {datatype} needs "
                                    f"{count * dtype.itemsize} bytes, got {size}")
            flat = np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype, copy=True)
    else:
        if "data" not in tensor:
            raise ProtocolError(f"input {name!r}: no 'data' and no binary_data_size")
        data = tensor["data"]
        try:
            if datatype == "BYTES":
                flat = np.array([d.encode() if isinstance(d, str) else bytes(d)
                                 for d in np.asarray(data, dtype=object).reshape(-1)], dtype=object)
            else:
                flat = np.asarray(data).reshape(-1)
                if flat.dtype.kind not in "biuf":
                    raise ProtocolError(f"input {name!r}: data must be numbers for {datatype}, got {flat.dtype}")
                if datatype == "BOOL" and flat.dtype.kind != "b":
                    raise ProtocolError(f"input {name!r}: data must be true/false for BOOL")
                if dtype.kind in "iu" and flat.dtype.kind == "f":
                    raise ProtocolError(f"input {name!r}: data must be integers for {datatype}")
                flat = flat.astype(dtype)
        except (ValueError, TypeError) as exc:
            raise ProtocolError(f"input {name!r}: data is not a (nested) list of {datatype}: {exc}") from None
        if flat.size != count:
            raise ProtocolError(f"input {name!r}: shape {list(shape)} needs {count} elements, data has {flat.size}")
    return name, flat.reshape(shape), offset


def decode_request(body: bytes, header_length: int | str | None = None) -> InferRequest:
    """Decode an infer request body (JSON, or JSON header + binary tensors).

    Args:
        body: the raw HTTP body.
        header_length: the ``Inference-Header-Content-Length`` header, if present.
    Returns:
        An `InferRequest`; raises `ProtocolError` (one line) on anything malformed.
    """
    doc, binary = _split_body(body, header_length)
    tensors = doc.get("inputs")
    if not isinstance(tensors, list) or not tensors:
        raise ProtocolError("the request has no 'inputs' list")
    inputs, offset = {}, 0
    for tensor in tensors:
        name, array, offset = _decode_tensor(tensor, binary, offset)
        if name in inputs:
            raise ProtocolError(f"input {name!r} is given twice")
        inputs[name] = array
    if offset != len(binary):
        raise ProtocolError(f"{len(binary) - offset} binary bytes after the last input")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise ProtocolError("'parameters' must be a JSON object")
    request = InferRequest(inputs, id=doc.get("id"), parameters=params,
                           all_binary=bool(params.get("binary_data_output", False)))
    outs = doc.get("outputs")
    if outs is not None:
        if not isinstance(outs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                 for o in outs):
            raise ProtocolError("'outputs' must be a list of objects with a 'name'")
        request.outputs = [o["name"] for o in outs]
        request.binary_outputs = {o["name"] for o in outs
                                  if isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data")}
    return request


def _raw(array: np.ndarray) -> bytes:
    if datatype_of(array) == "BYTES":
        parts = []
        for item in array.reshape(-1):
            b = item.encode() if isinstance(item, str) else bytes(item)
            parts.append(struct.pack("<I", len(b)) + b)
        return b"".join(parts)
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _json_data(array: np.ndarray) -> list:
    if datatype_of(array) == "BYTES":
        return [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
                for item in array.reshape(-1)]
    return array.reshape(-1).tolist()


def encode_response(model_name: str, outputs: dict[str, np.ndarray], *, request: InferRequest | None = None,
                    model_version: str = "1", parameters: dict | None = None) -> tuple[bytes, int | None]:
    """Encode an infer response.

    Args:
        model_name: the model's name.
        outputs: output name -> array, in the order to send.
        request: the request (its id and which outputs it wants binary).
        parameters: response parameters (e.g. the batch the request ran in).
    Returns:
        (body, header_length): header_length is None for a pure JSON body, else the value of
        the ``Inference-Header-Content-Length`` response header.
    """
    doc: dict = {"model_name": model_name, "model_version": model_version, "outputs": []}
    if request is not None and request.id is not None:
        doc["id"] = request.id
    if parameters:
        doc["parameters"] = parameters
    blobs = []
    for name, array in outputs.items():
        array = np.asarray(array)
        tensor = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        binary = request is not None and (request.all_binary or name in request.binary_outputs)
        if binary:
            raw = _raw(array)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = _json_data(array)
        doc["outputs"].append(tensor)
    head = json.dumps(doc).encode()
    if not blobs:
        return head, None
    return head + b"".join(blobs), len(head)


def error_body(message: str) -> bytes:
    """``{"error": "..."}`` with the message on one line."""
    return json.dumps({"error": " ".join(str(message).split())}).encode()
