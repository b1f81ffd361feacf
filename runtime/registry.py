"""The op-handler registry: (domain, op_type, since_version) -> a plain function.

Handler contract (every handler, built-in or from a plugin):
- A plain function named like the op, e.g.
  ``def Conv(X, W, B=None, *, auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None,
  pads=None, strides=None)``: ONNX inputs positionally (torch tensors, ``None`` for an absent
  optional input; trailing absent inputs are not passed, so defaults apply), ONNX attributes
  as keyword arguments named as in the spec, with the spec's defaults.
- Attribute values come from ``onnx.helper.get_attribute_value``, strings decoded to ``str``
  (lists to ``list[str]``), tensors converted to torch tensors on the session's device.
- If the handler has a keyword parameter ``num_outputs``, it receives the node's output count.
  If it has a keyword parameter ``ctx``, it receives the session's ``ExecContext`` (device,
  kernels mode, tf32, ...).
- It returns one tensor or a tuple of tensors, one per node output in order (outputs past
  the node's count are dropped).

Preparation (optional): a handler whose constant inputs (weights) want a one-off
transformation (gate reordering, transposes, dtype casts, prepacked tiles) registers a
``prepare`` function with it, ``register("LSTM", since=1, domain="tritonnx", prepare=prepare_lstm)``,
and takes a keyword parameter ``prepared=None``.
- The session calls ``prepare`` once per node, at creation: after the passes, with the weights
  on the device, before any run (so before any CUDA-graph warm-up or capture). It is called like
  the handler: inputs positionally, the constant ones (initializers that are not graph inputs)
  as tensors, ``None`` for absent or non-constant inputs (trailing ``None`` not passed);
  attributes as keywords (only those set on the node: give defaults). If it has a keyword
  parameter ``ctx``, it receives the session's ``ExecContext`` (``kernels``, ``device``, ...);
  if it has one named ``dynamic_inputs``, the positions of the inputs that are present but not
  constant (a ``None`` there is not an absent input).
- Whatever it returns (``None``: nothing prepared) is passed as ``prepared=`` on every run of
  that node, shared by concurrent runs: treat it as read-only.
- The handler must also work with ``prepared=None``: it gets that when nothing was prepared,
  when a run overrides a constant the value was prepared from (an initializer fed as an
  input), and when it is called outside a session (function bodies, tests).
An error raised by ``prepare`` fails the session's creation, naming the node.

Placement facts (optional, declared with the handler; the executor reads them from the
resolved `OpImpl`, there is no table elsewhere):
- ``host_inputs=(1,)``: input positions the handler reads on the host (shapes, axes, sizes,
  counts, with ``.tolist()``/``.item()``). A small constant or a host-computed value goes there
  as a CPU tensor, so the handler neither syncs with the device nor breaks CUDA-graph capture.
- ``host_chain=True``: a standard shape-arithmetic op (Shape -> Gather -> Unsqueeze -> Concat
  -> Reshape, ...) that runs on the host when every one of its inputs is host-side.
- ``syncs=(0, 1)``: data inputs whose values the handler reads on the host anyway (a
  data-dependent result, a value check): on a GPU each run syncs there and CUDA-graph capture
  of the node fails. Declared so that tests/runtime/test_host_reads.py, which fails any handler
  reading an undeclared input on the host, knows it is meant; it changes no placement.

Versions resolve to the nearest implemented one: a model at opset 13 uses the handler with the
greatest ``since`` <= 13.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Callable, Iterable

#: The standard ONNX domain's two spellings ("" canonical).
DEFAULT_DOMAINS = ("", "ai.onnx")
#: The domain and version of tritonnx's fused ops (the one definition; passes and ops read it).
CUSTOM_DOMAIN = "tritonnx"
CUSTOM_DOMAIN_VERSION = 1
#: onnxruntime's contrib-op domain (the com.microsoft ops its tools write; runtime/ops/contrib.py).
MS_DOMAIN = "com.microsoft"


def is_standard_domain(domain: str) -> bool:
    """True for the standard ONNX domain, however spelled ("" or "ai.onnx")."""
    return domain in DEFAULT_DOMAINS


def canonical_domain(domain: str) -> str:
    """A domain as the registry keys it: "" for the standard one, else as given."""
    return "" if is_standard_domain(domain) else domain


@dataclass(frozen=True)
class OpImpl:
    """One registered handler."""

    domain: str
    op_type: str
    since: int
    fn: Callable
    wants_num_outputs: bool = False
    wants_ctx: bool = False
    #: the preparation step (module docstring), called once per node at session creation
    prepare: Callable | None = None
    prepare_wants_ctx: bool = False
    prepare_wants_dynamic: bool = False
    #: input positions read on the host (module docstring, "Placement facts")
    host_inputs: frozenset[int] = frozenset()
    #: runs on the host when all its inputs are host-side (shape arithmetic)
    host_chain: bool = False
    #: data inputs read on the host by nature (a device sync on a GPU)
    syncs: frozenset[int] = frozenset()

    @property
    def wants_prepared(self) -> bool:
        """The handler receives ``prepared=`` (it has a `prepare` step)."""
        return self.prepare is not None


@dataclass
class OpRegistry:
    """Handlers by (domain, op_type), each list sorted by `since`."""

    handlers: dict[tuple[str, str], list[OpImpl]] = field(default_factory=dict)

    def add(self, op_type: str, fn: Callable, *, since: int = 1, domain: str = "",
            prepare: Callable | None = None, host_inputs: Iterable[int] = (), host_chain: bool = False,
            syncs: Iterable[int] = ()) -> OpImpl:
        """Register `fn` as the handler of `op_type` from opset `since` of `domain`, with an
        optional `prepare` step (module docstring); `fn` must then take ``prepared=None``.
        `host_inputs`, `host_chain` and `syncs` are its placement facts (module docstring)."""
        params = inspect.signature(fn).parameters
        prep_params = {}
        if prepare is not None:
            takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
            if "prepared" not in params and not takes_kwargs:
                raise TypeError(f"handler {op_type!r} ({getattr(fn, '__qualname__', fn)!r}) has a prepare step, "
                                "so it must take a keyword parameter 'prepared' (default None)")
            prep_params = inspect.signature(prepare).parameters
        impl = OpImpl(
            domain=canonical_domain(domain),
            op_type=op_type,
            since=since,
            fn=fn,
            wants_num_outputs="num_outputs" in params,
            wants_ctx="ctx" in params,
            prepare=prepare,
            prepare_wants_ctx="ctx" in prep_params,
            prepare_wants_dynamic="dynamic_inputs" in prep_params,
            host_inputs=frozenset(host_inputs),
            host_chain=bool(host_chain),
            syncs=frozenset(syncs),
        )
        entries = self.handlers.setdefault((impl.domain, op_type), [])
        entries[:] = [e for e in entries if e.since != since] + [impl]
        entries.sort(key=lambda e: e.since)
        return impl

    def register(self, op_type: str, *, since: int = 1, domain: str = "", prepare: Callable | None = None,
                 host_inputs: Iterable[int] = (), host_chain: bool = False, syncs: Iterable[int] = ()):
        """Decorator form of `add`: ``@register("Reshape", since=5, host_inputs=(1,), host_chain=True)``."""

        def deco(fn: Callable) -> Callable:
            self.add(op_type, fn, since=since, domain=domain, prepare=prepare, host_inputs=host_inputs,
                     host_chain=host_chain, syncs=syncs)
            return fn

        return deco

    def resolve(self, domain: str, op_type: str, version: int) -> OpImpl | None:
        """The handler for `op_type` at opset `version` of `domain`, or None."""
        best = None
        for impl in self.handlers.get((canonical_domain(domain), op_type), ()):
            if impl.since <= version:
                best = impl
        return best

    def op_types(self, domain: str = "") -> list[str]:
        d = canonical_domain(domain)
        return sorted(op for (dom, op) in self.handlers if dom == d)

    def copy(self) -> "OpRegistry":
        return OpRegistry({k: list(v) for k, v in self.handlers.items()})


#: The built-in handlers; `runtime.ops` fills it at import. Sessions copy it and add plugins.
OPS = OpRegistry()
register = OPS.register
