"""Standard-domain ops that onnx defines by a function body and that have no handler of
their own (Attention 23-25, RotaryEmbedding, CausalConvWithState): the
handler asks onnx for the body specialised to the node (its attributes and input types),
caches it per signature, and runs it node by node with the registered handlers.

Registered last (`register_function_ops`, called by the package once every module is imported)
and only for ops that nobody registered.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

import onnx
import onnx.defs
import torch
from onnx import helper, numpy_helper

from tritonnx.errors import NotImplemented
from tritonnx.runtime import dtypes
from tritonnx.runtime.executor import attribute_value
from tritonnx.runtime.registry import OPS, canonical_domain

#: Function ops left out: sequences and random sampling are not tensors-in, tensors-out;
#: the bodies of AffineGrid (If) and LinearAttention (Scan) need control flow.
_LEFT_OUT = {"SequenceMap", "Bernoulli", "AffineGrid", "LinearAttention"}
_CACHE_SIZE = 64


def _attribute(name: str, value) -> onnx.AttributeProto:
    if isinstance(value, torch.Tensor):
        return helper.make_attribute(name, numpy_helper.from_array(dtypes.to_numpy(value)))
    return helper.make_attribute(name, value)


def _bind_refs(fn: onnx.FunctionProto, attrs: dict) -> onnx.FunctionProto:
    """A body's attribute references (``ref_attr_name``) replaced by the node's values, or the
    function's defaults; a reference to an attribute nobody set is dropped (the op's default)."""
    values = {a.name: a for a in fn.attribute_proto}
    values.update({k: _attribute(k, v) for k, v in attrs.items()})
    out = onnx.FunctionProto()
    out.CopyFrom(fn)
    for node in out.node:
        kept = []
        for a in node.attribute:
            if a.ref_attr_name:
                if a.ref_attr_name in values:
                    bound = onnx.AttributeProto()
                    bound.CopyFrom(values[a.ref_attr_name])
                    bound.name = a.name
                    kept.append(bound)
            else:
                kept.append(a)
        del node.attribute[:]
        node.attribute.extend(kept)
    return out


def _make_handler(op: str, since: int):
    schema = onnx.defs.get_schema(op, since, "")
    cache: OrderedDict = OrderedDict()
    lock = threading.Lock()  # sessions run from several threads

    def body(inputs, num_outputs, attrs) -> onnx.FunctionProto:
        key = (tuple(None if t is None else (t.dtype, tuple(t.shape)) for t in inputs), num_outputs,
               repr(sorted((k, v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in attrs.items())))
        with lock:
            if key in cache:
                cache.move_to_end(key)
                return cache[key]
        names = ["" if t is None else f"x{i}" for i, t in enumerate(inputs)]
        node = helper.make_node(op, names, [f"y{i}" for i in range(num_outputs)],
                                **{k: (numpy_helper.from_array(dtypes.to_numpy(v)) if isinstance(v, torch.Tensor) else v)
                                   for k, v in attrs.items()})
        if schema.has_context_dependent_function:
            types = [onnx.TypeProto() if t is None else
                     helper.make_tensor_type_proto(dtypes.onnx_dtype(t.dtype), list(t.shape)) for t in inputs]
            fn = onnx.FunctionProto()
            fn.ParseFromString(schema.get_context_dependent_function(
                node.SerializeToString(), [t.SerializeToString() for t in types]))
        else:
            fn = schema.function_body
        fn = _bind_refs(fn, attrs)
        with lock:
            cache[key] = fn
            if len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
        return fn

    def handler(*inputs, num_outputs=1, ctx=None, **attrs):
        fn = body(inputs, num_outputs, attrs)
        device = next((t.device for t in inputs if t is not None), getattr(ctx, "device", "cpu"))
        opsets = {canonical_domain(o.domain): o.version for o in fn.opset_import}
        env = {name: t for name, t in zip(fn.input, inputs)}
        for node in fn.node:
            impl = OPS.resolve(node.domain, node.op_type, opsets.get(canonical_domain(node.domain), since))
            if impl is None:
                raise NotImplemented(f"{op}: its function body uses {node.op_type}, which has no handler")
            args = [env.get(n) if n else None for n in node.input]
            while args and args[-1] is None:
                args.pop()
            kwargs = {a.name: attribute_value(a, device) for a in node.attribute}
            if impl.wants_num_outputs:
                kwargs["num_outputs"] = len(node.output)
            if impl.wants_ctx:
                kwargs["ctx"] = ctx
            out = impl.fn(*args, **kwargs)
            out = out if isinstance(out, (tuple, list)) else (out,)
            env.update((n, t) for n, t in zip(node.output, out) if n)
        return tuple(env.get(name) for name in fn.output[:num_outputs])

    handler.__name__ = op
    handler.__doc__ = f"ONNX {op} (opset {since}): onnx's function body, run with the registered handlers."
    return handler


def register_function_ops() -> None:
    """Register the body-running handler for every function op that has no handler yet; called
    by the package after all its modules are imported."""
    have = set(OPS.op_types(""))
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain != "" or schema.name in have or schema.name in _LEFT_OUT or schema.deprecated:
            continue
        if schema.has_function or schema.has_context_dependent_function:
            OPS.add(schema.name, _make_handler(schema.name, schema.since_version), since=schema.since_version)

