"""The one place that knows every Triton kernel of tritonnx, for the ahead-of-time compile gate.

Each kernel is one `KernelEntry`: its jit function (named by a "module:attr" string, imported
only when needed), its autotune configs (the SAME function its `@triton.autotune` uses, e.g.
`conv_configs()`), the dtypes and constexpr flag variants it claims, and a signature builder
that turns (dtype, flags, config) into what `triton.compile` needs. `tritonnx kernels --report`
and the gate test (`tests/triton_kernels/test_aot_gate.py`) compile every entry for sm_90 and
sm_80 in worker processes (`tritonnx.triton_kernels.aot`) and check shared memory, spills and
tensor-core instructions.

Adding a kernel (the only step a new kernel needs to be covered by the gate):

    from tritonnx.triton_kernels import catalog

    def _my_signature(fn, dtype, flags, config):
        return catalog.make_spec(
            fn, config,
            pointers={"x_ptr": dtype, "w_ptr": dtype, "y_ptr": dtype, "lock_ptr": "i32"},
            constexprs={"HAS_BIAS": flags["HAS_BIAS"], "ACC_FP32": 0},
            divisible=("stride_xn",),   # int args the launcher passes as multiples of 16
        )

    catalog.register(catalog.KernelEntry(
        name="my_kernel",
        kernel="tritonnx.triton_kernels.my_family:_my_kernel",
        configs=my_configs,                 # callable; may take `arch="sm_90"` or `capability=90`
        dtypes=("fp32", "fp16", "bf16"),
        flags={"HAS_BIAS": (0, 1)},         # every value is compiled at least once per dtype x arch
        signature=_my_signature,
        matmul=True,                        # does a tl.dot: tensor-core instructions are checked
        expect_tensor_core=lambda cfg, dtype, flags, arch: cfg.kwargs["BLOCK_M"] >= 64 and cfg.num_warps >= 4,
        spills={},                          # config id -> why a spilling config is kept
    ))

The built-in entries are registered at the bottom of this module (by the compile-gate owner).
An entry registered elsewhere (a plugin, a test) passes `ref="module:ATTR"` naming its
`KernelEntry`, so the compile workers, which import only this module, can find it.

Sampling: the full product configs x flag combinations can be large; `plan()` then compiles,
per dtype and arch, `max(#configs, #cover)` jobs, where the cover is a (greedy) set of valid
flag combinations holding every claimed value of every flag. Each config is paired with the
next cover combination it is `compatible` with, then with the other valid combinations (the
cheapest first when the entry gives a `cost`), and leftover cover combinations get a config of
their own; the cover is rotated per dtype and arch so the pairs differ. So every config and
every flag value is compiled at least once per dtype and arch. Flags an entry declares in
`per_arch_flags` (dtype-independent code, e.g. the recurrent activations on fp32 gates) are
covered once per arch, spread over the dtypes. Rows say `sampled`; `plan(full=True)` compiles
the whole product.

Arch limits (`ARCHS`): shared memory per block 227 KB on sm_90, 163 KB on sm_80 (the gate's
archs), 99 KB on sm_89/sm_86 (report only); 65536 registers per SM. Kernel modules may import `SMEM_LIMITS` from here for their `keep()` filters
(this module imports no kernel module at import time).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tritonnx.errors import InvalidArgument


@dataclass(frozen=True)
class Arch:
    """A GPU architecture the gate compiles for."""

    name: str  # "sm_90"
    capability: int  # 90
    smem_per_block: int  # bytes a block may use (opt-in maximum)
    smem_per_sm: int  # bytes per SM (all resident blocks together)
    regs_per_sm: int
    max_threads_per_sm: int
    tensor_core: str  # the PTX instruction family of its matrix product: "wgmma" | "mma"
    gpus: str  # examples, for the report


ARCHS: dict[str, Arch] = {
    "sm_90": Arch("sm_90", 90, 227 * 1024, 228 * 1024, 65536, 2048, "wgmma", "H100, H200"),
    "sm_80": Arch("sm_80", 80, 163 * 1024, 164 * 1024, 65536, 2048, "mma", "A100"),
    # not in the gate (DEFAULT_ARCHS); `tritonnx kernels --report --arch sm_89`
    "sm_89": Arch("sm_89", 89, 99 * 1024, 100 * 1024, 65536, 1536, "mma", "L4, L40S, RTX 4090"),
    "sm_86": Arch("sm_86", 86, 99 * 1024, 100 * 1024, 65536, 1536, "mma", "A10, RTX 3090"),
}
#: Shared memory per block, bytes, by arch name: the limit `keep()` filters prune with.
SMEM_LIMITS: dict[str, int] = {a.name: a.smem_per_block for a in ARCHS.values()}
DEFAULT_ARCHS = ("sm_90", "sm_80")

#: dtype name -> Triton pointer element type.
TRITON_DTYPES = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "i32": "i32", "i64": "i64",
                 "i8": "i8", "u8": "u8", "i1": "i1"}
DTYPE_ALIASES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
KERNEL_DTYPES = ("fp32", "fp16", "bf16")


def canonical_dtype(dtype: str) -> str:
    name = DTYPE_ALIASES.get(dtype, dtype)
    if name not in KERNEL_DTYPES:
        raise InvalidArgument(f"dtype {dtype!r}: expected one of {', '.join(KERNEL_DTYPES)} "
                              f"(or {', '.join(DTYPE_ALIASES)})")
    return name


def canonical_arch(arch: str | int) -> str:
    """"sm_90" from "sm_90", "sm90", "90" or 90."""
    digits = str(arch).lower().removeprefix("sm").lstrip("_")
    name = f"sm_{digits}"
    if name not in ARCHS:
        raise InvalidArgument(f"arch {arch!r}: expected one of {', '.join(ARCHS)}")
    return name


@dataclass(frozen=True)
class CompileSpec:
    """What one compile needs besides the function: `triton.compile(ASTSource(fn, signature,
    constexprs, attrs), target, options)`."""

    signature: dict[str, str]  # arg name -> "*fp16" | "i32" | "fp32" | "constexpr" ...
    constexprs: dict[str, Any]  # constexpr arg name -> value
    options: dict[str, Any]  # num_warps, num_stages, num_ctas, maxnreg
    attrs: dict[tuple[int, ...], list] = field(default_factory=dict)  # tt.divisibility hints


def config_id(config) -> str:
    """A readable, stable id of a `triton.Config`: its kwargs, then warps/stages/ctas/maxnreg."""
    parts = [f"{k}={_short(v)}" for k, v in sorted(config.kwargs.items())]
    parts.append(f"w{config.num_warps}")
    parts.append(f"s{config.num_stages}")
    if getattr(config, "num_ctas", 1) != 1:
        parts.append(f"ctas{config.num_ctas}")
    if getattr(config, "maxnreg", None):
        parts.append(f"maxnreg{config.maxnreg}")
    return ",".join(parts)


def _short(value) -> str:
    return str(value).replace(" ", "")


def unwrap_jit(obj):
    """The jit function under `@triton.autotune` / `@triton.heuristics` wrappers."""
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    for _ in range(8):
        if isinstance(obj, (JITFunction, InterpretedFunction)):
            return obj
        obj = getattr(obj, "fn", None)
    raise InvalidArgument(f"{obj!r} is not a @triton.jit function")


def make_spec(fn, config, *, pointers: dict[str, str], constexprs: dict[str, Any] | None = None,
              int64: tuple[str, ...] = (), floats: tuple[str, ...] = (),
              divisible: tuple[str, ...] = (), ones: tuple[str, ...] = (), aligned: bool = True,
              options: dict[str, Any] | None = None) -> CompileSpec:
    """Build a `CompileSpec` the way Triton's launcher would specialise a real call.

    Args:
        fn: the `@triton.jit` function (wrappers are unwrapped).
        config: the `triton.Config`; its kwargs become constexprs, its num_warps/num_stages/
            num_ctas/maxnreg the options.
        pointers: pointer arg name -> element dtype ("fp16", "fp32", "i32", ...).
        constexprs: the other constexpr args (flags); constexpr args left out take the
            kernel's default values.
        int64 / floats: scalar args passed as i64 / fp32 (every other scalar is i32).
        divisible: scalar args the launcher passes as multiples of 16 (tt.divisibility hint).
        ones: scalar args the launcher passes as 1 (unit strides): Triton's launcher turns an int
            equal to 1 into the constant 1, so they are compiled as constexpr 1.
        aligned: pointers are 16-byte aligned (torch allocations are): tt.divisibility 16.
        options: extra compile options.

    Returns:
        The `CompileSpec`. Raises `InvalidArgument` naming any arg that is not the kernel's.
    """
    fn = unwrap_jit(fn)
    names = list(fn.arg_names)
    consts = dict(config.kwargs)
    consts.update(constexprs or {})
    consts.update({name: 1 for name in ones})
    unknown = sorted(set(consts) | set(pointers) | set(int64) | set(floats) | set(divisible))
    unknown = [n for n in unknown if n not in names]
    if unknown:
        raise InvalidArgument(f"kernel {fn.__name__}: no argument(s) {unknown}; its arguments are "
                              f"{names}")
    params = list(inspect.signature(fn.fn).parameters.values())
    signature, attrs = {}, {}
    for index, name in enumerate(names):
        param = params[index]
        if name in consts or _is_constexpr(param.annotation):
            signature[name] = "constexpr"
            if name not in consts:
                default = param.default
                if default is inspect.Parameter.empty:
                    raise InvalidArgument(f"kernel {fn.__name__}: constexpr {name!r} has no value "
                                          f"in the config or the flags and no default")
                consts[name] = default
        elif name in pointers:
            signature[name] = "*" + TRITON_DTYPES.get(pointers[name], pointers[name])
            if aligned:
                attrs[(index,)] = [["tt.divisibility", 16]]
        elif name in floats:
            signature[name] = "fp32"
        elif name in int64:
            signature[name] = "i64"
        else:
            signature[name] = "i32"
        if name in divisible:
            attrs[(index,)] = [["tt.divisibility", 16]]
    opts = {"num_warps": config.num_warps, "num_stages": config.num_stages,
            "num_ctas": getattr(config, "num_ctas", 1)}
    if getattr(config, "maxnreg", None):
        opts["maxnreg"] = config.maxnreg
    opts.update(options or {})
    return CompileSpec(signature, consts, opts, attrs)


def _is_constexpr(annotation) -> bool:
    import triton.language as tl

    if isinstance(annotation, str):
        return annotation.split(".")[-1] == "constexpr"
    return annotation is tl.constexpr


SignatureBuilder = Callable[[Any, str, dict, Any], CompileSpec]


@dataclass(frozen=True)
class KernelEntry:
    """One kernel the gate compiles. See the module docstring for an example.

    Fields:
        name: unique, e.g. "conv_relu_pool".
        kernel: "package.module:attr" of the jit function (an autotune wrapper is fine), or
            "/path/file.py:attr" (test fixtures).
        configs: the autotune config function (callable -> list[triton.Config]); called with
            `arch="sm_90"` or `capability=90` if it takes such a parameter.
        dtypes: the dtypes the kernel claims ("fp32", "fp16", "bf16").
        signature: (fn, dtype, flags, config) -> CompileSpec (see `make_spec`).
        flags: flag name -> the values the kernel claims (the signature builder turns them into
            constexprs), or a callable dtype -> such a dict (e.g. ALLOW_TF32 only for fp32).
        valid: (dtype, flags) -> bool: the flag combinations the launcher can produce
            (default: all of the product).
        cost: flags -> relative compile cost; a sample pairs the configs beyond the flag
            cover with the cheapest combinations (keeps the CI gate short).
        compatible: (config, dtype, flags) -> bool: the pairs the launcher can produce when
            it picks the config from the flags (e.g. warps by tile size); default: all.
        ptx_requires: names of `aot.PTX_FEATURES` every compile must contain (e.g. the
            grid barrier's "atom.release" and "ld.acquire"); or a callable
            (dtype, flags, arch) -> such names, for features only some jobs must have.
        per_arch_flags: flags whose code does not depend on the dtype (e.g. activations
            applied to the fp32 accumulator): a sample covers their values once per arch,
            spread over the dtypes, instead of once per dtype and arch.
        matmul: the kernel does a matrix product (tl.dot): tensor-core instructions are
            checked (wgmma on sm_90, mma on sm_80).
        expect_tensor_core: (config, dtype, flags, arch) -> bool: the jobs that must reach the
            arch's tensor-core instruction (wgmma on sm_90, mma on sm_80). Whatever it says,
            a matmul kernel needs at least one such config per fp16/bf16 x arch.
        spills: config id -> the reason a config that spills registers is kept; or a callable
            (report row) -> that reason, or None when the spill is not accepted.
        note: one line for the report.
        sources: extra source files whose text is part of the cache key (helpers imported
            from other modules).
    """

    name: str
    kernel: str
    configs: Callable[..., list]
    dtypes: tuple[str, ...]
    signature: SignatureBuilder
    flags: dict[str, tuple] | Callable[[str], dict[str, tuple]] = field(default_factory=dict)
    valid: Callable[[str, dict], bool] | None = None
    cost: Callable[[dict], float] | None = None
    compatible: Callable[[Any, str, dict], bool] | None = None
    per_arch_flags: tuple[str, ...] = ()
    ptx_requires: tuple[str, ...] | Callable[[str, dict, str], tuple[str, ...]] = ()
    matmul: bool = False
    expect_tensor_core: Callable[[Any, str, dict, str], bool] | None = None
    spills: dict[str, str] | Callable[[dict], str | None] = field(default_factory=dict)
    note: str = ""
    sources: tuple[str, ...] = ()

    def load(self):
        """The jit function (unwrapped). Imports its module."""
        return unwrap_jit(self.load_wrapped())

    def load_wrapped(self):
        """The module attribute as defined (an `Autotuner` when the kernel is autotuned)."""
        target, _, attr = self.kernel.rpartition(":")
        if not target or not attr:
            raise InvalidArgument(f"kernel entry {self.name}: kernel {self.kernel!r} is not "
                                  f"'module:attr' or '/path/file.py:attr'")
        return getattr(_import(target), attr)

    def autotuner_config_ids(self) -> list[str] | None:
        """Config ids of the kernel's `@triton.autotune` list (None when not autotuned).
        In a process under the interpreter the module may have given it a shorter list."""
        obj = self.load_wrapped()
        for _ in range(8):
            if hasattr(obj, "configs") and hasattr(obj, "keys"):  # triton.runtime.Autotuner
                return [config_id(c) for c in obj.configs]
            obj = getattr(obj, "fn", None)
            if obj is None:
                break
        return None

    def config_list(self, arch: str) -> list:
        """The autotune configs for `arch` (the same list the autotuner uses)."""
        params = inspect.signature(self.configs).parameters
        if "arch" in params:
            configs = self.configs(arch=arch)
        elif "capability" in params:
            configs = self.configs(capability=ARCHS[arch].capability)
        else:
            configs = self.configs()
        configs = list(configs)
        if not configs:
            raise InvalidArgument(f"kernel entry {self.name}: no configs for {arch}")
        return configs

    def flags_for(self, dtype: str) -> dict[str, tuple]:
        """Flag name -> claimed values, for `dtype`."""
        flags = self.flags(dtype) if callable(self.flags) else self.flags
        return {k: tuple(v) for k, v in flags.items()}

    def flag_values(self, dtype: str) -> list[dict]:
        """Every valid flag combination for `dtype` (the full product, filtered by `valid`)."""
        flags = self.flags_for(dtype)
        keys = sorted(flags)
        combos = [dict(zip(keys, combo)) for combo in itertools.product(*(flags[k] for k in keys))]
        if self.valid is not None:
            combos = [c for c in combos if self.valid(dtype, c)]
        if not combos:
            raise InvalidArgument(f"kernel entry {self.name}: no valid flag combination for {dtype}")
        return combos

    def flag_cover(self, dtype: str, done: frozenset = frozenset()) -> list[dict]:
        """Valid combinations that together hold every claimed value of every flag (greedy),
        less the (flag, value) pairs in `done` (per-arch flags already covered)."""
        combos = self.flag_values(dtype)
        flags = self.flags_for(dtype)
        todo = {(k, v) for k, vs in flags.items() for v in vs} - set(done)
        present = {(k, c[k]) for c in combos for k in c}
        missing = todo - present
        if missing:
            raise InvalidArgument(f"kernel entry {self.name} ({dtype}): no valid combination has "
                                  f"{sorted(missing, key=str)}")
        cost = self.cost or (lambda flags: 0.0)
        cover = [] if todo else [min(combos, key=cost)]
        while todo:
            best = max(combos, key=lambda c: (len(todo & set(c.items())), -cost(c)))
            cover.append(best)
            todo -= set(best.items())
        return cover

    def required_ptx(self, dtype: str, flags: dict, arch: str) -> tuple[str, ...]:
        """The `aot.PTX_FEATURES` names a compile of (dtype, flags, arch) must contain."""
        if callable(self.ptx_requires):
            return tuple(self.ptx_requires(dtype, flags, arch))
        return tuple(self.ptx_requires)

    def spill_reason(self, row: dict) -> str | None:
        """Why a spilling compile (a report row) is accepted, or None."""
        if callable(self.spills):
            return self.spills(row)
        return self.spills.get(row["config"])

    def source_hash(self) -> str:
        """sha256 over the kernel module's source and the extra `sources`, without importing
        the kernel module. (The compile cache key adds each job's `CompileSpec`.)"""
        h = hashlib.sha256()
        target = self.kernel.rpartition(":")[0]
        for path in [_source_path(target), *self.sources]:
            h.update(Path(path).read_bytes())
        return h.hexdigest()

    def spec_for(self, job: "Job", fn=None, configs: list | None = None) -> CompileSpec:
        """The `CompileSpec` of one job (`fn`, `configs`: already loaded, to save time)."""
        fn = fn if fn is not None else self.load()
        configs = configs if configs is not None else self.config_list(job.arch)
        config = configs[job.config_index]
        if config_id(config) != job.config:
            raise InvalidArgument(f"kernel entry {self.name}: config #{job.config_index} is "
                                  f"{config_id(config)}, the plan expected {job.config} "
                                  f"(a non-deterministic config list?)")
        return self.signature(fn, job.dtype, dict(job.flags), config)


def _import(target: str):
    if target.endswith(".py"):
        path = Path(target)
        name = f"_tritonnx_aot_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        import sys
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise InvalidArgument(f"cannot import {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(target)


def _source_path(target: str) -> str:
    if target.endswith(".py"):
        return target
    spec = importlib.util.find_spec(target)
    if spec is None or not spec.origin:
        raise InvalidArgument(f"kernel module {target!r} not found")
    return spec.origin


_REGISTRY: dict[str, KernelEntry] = {}
_REFS: dict[str, str] = {}


def register(entry: KernelEntry, *, ref: str | None = None) -> KernelEntry:
    """Add (or replace) an entry. Dtypes are checked and canonicalised.

    `ref`: how a compile worker process finds the entry when it is not registered at import of
    this module ("/path/file.py:ATTR" or "module:ATTR" naming the `KernelEntry`); e.g. tests.
    """
    dtypes = tuple(canonical_dtype(d) for d in entry.dtypes)
    if dtypes != entry.dtypes:
        entry = KernelEntry(**{**entry.__dict__, "dtypes": dtypes})
    _REGISTRY[entry.name] = entry
    if ref is not None:
        _REFS[entry.name] = ref
    else:
        _REFS.pop(entry.name, None)
    return entry


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)
    _REFS.pop(name, None)


def names() -> list[str]:
    """Names of the registered kernels."""
    return sorted(_REGISTRY)


def get(name: str) -> KernelEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidArgument(f"no kernel named {name!r} in the catalog; known: "
                              f"{', '.join(names()) or '(none)'}") from None


def entries(selected: list[str] | None = None) -> list[KernelEntry]:
    return [get(n) for n in (selected or names())]


@dataclass(frozen=True)
class Job:
    """One compile: an entry's config (by index and id) x dtype x flags x arch."""

    kernel: str  # entry name
    entry_ref: str  # entry name (catalog) or "/path/file.py:ATTR" (an entry defined elsewhere)
    config_index: int
    config: str  # config id
    dtype: str
    flags: tuple[tuple[str, Any], ...]
    arch: str
    sampled: bool  # part of a sample of the full product

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d["flags"] = [list(kv) for kv in self.flags]
        return d

    @staticmethod
    def from_dict(d: dict) -> "Job":
        d = dict(d)
        d["flags"] = tuple((k, v) for k, v in d["flags"])
        return Job(**d)


def plan(selected: list[KernelEntry] | None = None, archs=DEFAULT_ARCHS, *, full: bool = False,
         dtypes: tuple[str, ...] | None = None, entry_refs: dict[str, str] | None = None) -> list[Job]:
    """The compile jobs for `selected` entries (default: all registered).

    Per entry x dtype x arch: the full product configs x flag combinations if `full` or if it
    is no larger than the sample; else a sample that compiles every config and every flag value
    at least once (see the module docstring). `entry_refs` maps an entry name to how a worker
    process finds it (default: its catalog name).
    """
    jobs = []
    selected = entries() if selected is None else selected
    for entry in selected:
        ref = (entry_refs or {}).get(entry.name) or _REFS.get(entry.name, entry.name)
        for arch_i, arch in enumerate(archs):
            arch = canonical_arch(arch)
            configs = entry.config_list(arch)
            ids = [config_id(c) for c in configs]
            done: set = set()  # (flag, value) of per-arch flags compiled for this arch
            for dtype_i, dtype in enumerate(entry.dtypes):
                if dtypes is not None and dtype not in dtypes:
                    continue
                combos = entry.flag_values(dtype)
                ok = entry.compatible or (lambda config, dtype, flags: True)
                product = [(ci, combo) for ci in range(len(configs)) for combo in combos
                           if ok(configs[ci], dtype, combo)]
                cover = entry.flag_cover(dtype, frozenset(done))
                if full or len(product) <= max(len(configs), len(cover)):
                    pairs, sampled = product, False
                else:
                    pairs = _sample(entry, dtype, combos, configs, dtype_i + 2 * arch_i,
                                    cover)
                    sampled = True
                done |= {(k, v) for _, c in pairs for k, v in c.items() if k in entry.per_arch_flags}
                for ci, combo in pairs:
                    jobs.append(Job(entry.name, ref, ci, ids[ci], dtype,
                                    tuple(sorted(combo.items())), arch, sampled))
    return jobs


def _sample(entry: KernelEntry, dtype: str, combos: list[dict], configs: list,
            rot: int, cover: list[dict]) -> list[tuple[int, dict]]:
    """(config index, flags) pairs: every config once (with the next flag-cover combination it
    is compatible with, else the next other valid one), then every cover combination not yet
    compiled (with a compatible config), so every config and every flag value appear at least
    once. The cover is rotated by `rot` so dtypes and archs pair configs with different flags."""
    ok = entry.compatible or (lambda config, dtype, flags: True)
    rest = [c for c in combos if c not in cover]
    if entry.cost is not None:
        rest.sort(key=entry.cost)
    elif rest:
        r = rot % len(rest)
        rest = rest[r:] + rest[:r]
    r = rot % len(cover)
    todo = cover[r:] + cover[:r]
    pairs = []
    n = len(configs)
    for i in range(n):
        ci = (i + rot) % n
        pick = next((c for c in todo if ok(configs[ci], dtype, c)), None)
        if pick is not None:
            todo.remove(pick)
        else:
            pick = next((c for c in rest + cover if ok(configs[ci], dtype, c)), None)
            if pick is None:
                raise InvalidArgument(f"kernel entry {entry.name} ({dtype}): config "
                                      f"{config_id(configs[ci])} is compatible with no valid flags")
        pairs.append((ci, pick))
    for combo in todo:
        ci = next((ci for ci in range(n) if ok(configs[ci], dtype, combo)), None)
        if ci is None:
            raise InvalidArgument(f"kernel entry {entry.name} ({dtype}): flags {combo} are "
                                  f"compatible with no config")
        pairs.append((ci, combo))
    return pairs


def _register_builtins() -> None:
    """The kernels on main. Each registration uses only what its kernel module exposes."""
    register(_conv_entry())
    register(_recurrent_entry("recurrent_step"))
    register(_recurrent_entry("recurrent_persistent"))


# --- tritonnx.triton_kernels.conv_relu_pool -------------------------------------------------
_CONV = "tritonnx.triton_kernels.conv_relu_pool"
#: pool flag -> (POOL_KIND, POOL_KH, POOL_KW, COUNT_INCLUDE_PAD)
_CONV_POOLS = {"none": (0, 1, 1, 0), "max2": (1, 2, 2, 0), "max3": (1, 3, 3, 0),
               "avg2": (2, 2, 2, 0), "avg3_pad": (2, 3, 3, 1), "avg7": (2, 7, 7, 0)}
_CONV_ACTIVATIONS = {"none": 0, "relu": 1, "leaky_relu": 2, "clip": 3}


def _conv_configs():
    """`conv_configs()` as on a GPU (the parent process may run under the interpreter, where
    the module's default is its first config only)."""
    return importlib.import_module(_CONV).conv_configs(interpret=False)


def _conv_flags(dtype: str) -> dict[str, tuple]:
    return {
        "kernel": (1, 3, 5, 7, 11),  # KH = KW: the zoo's conv sizes
        "pool": tuple(_CONV_POOLS),
        "activation": tuple(_CONV_ACTIVATIONS),
        "bias": (0, 1),
        "residual": (0, 1),
        "tf32": (0, 1) if dtype == "fp32" else (0,),
        "layout": tuple(_CONV_LAYOUTS),
    }


def _conv_valid(dtype: str, flags: dict) -> bool:
    return not (flags["residual"] and flags["pool"] != "none")  # the launcher's rule


def _conv_cost(flags: dict) -> float:
    # the extra configs of a sample get the common case: no pool, then small windows
    _, pkh, pkw, _ = _CONV_POOLS[flags["pool"]]
    return (pkh * pkw + 0.1 * (flags["residual"] + flags["bias"] + (flags["activation"] != "none"))
            + 0.01 * (flags["layout"] != "nhwc16") + 0.01 * (not flags["tf32"]))  # tf32: the default


def _conv_signature(fn, dtype, flags, config):
    kind, pkh, pkw, cip = _CONV_POOLS[flags["pool"]]
    return make_spec(
        fn, config,
        pointers={"x_ptr": dtype, "w_ptr": dtype, "b_ptr": dtype, "r_ptr": dtype, "y_ptr": dtype},
        constexprs={"KH": flags["kernel"], "KW": flags["kernel"], "POOL_KIND": kind,
                    "POOL_KH": pkh, "POOL_KW": pkw, "COUNT_INCLUDE_PAD": bool(cip),
                    "HAS_BIAS": bool(flags["bias"]), "HAS_RESIDUAL": bool(flags["residual"]),
                    "ACTIVATION": _CONV_ACTIVATIONS[flags["activation"]],
                    "ALLOW_TF32": bool(flags["tf32"]), "DOT_FP32": False},
        floats=("alpha", "clip_min", "clip_max"),
        **_CONV_LAYOUTS[flags["layout"]],
    )


#: How the launcher's tensors specialise (Triton turns an int 1 into a constant and marks
#: multiples of 16): "nhwc16" = channels-last activations (the runtime hands every conv its
#: input channels-last on a GPU) with channel counts that are multiples of 16 (most layers past
#: the first); "nhwc" = channels-last with no size hints (a first layer, C = 1 or 3, and
#: LeNet-5's 6-channel layers); "nchw" = plain contiguous NCHW with no size hints (a direct
#: call of `conv_relu_pool`). The packed weight [K, O] is contiguous.
_CONV_LAYOUTS = {
    "nhwc16": {"ones": ("stride_xc", "stride_wn", "stride_rc", "stride_yc"),
               "divisible": ("C_G", "COUT_G", "stride_xn", "stride_xh", "stride_xw", "stride_wk",
                             "stride_rn", "stride_rh", "stride_rw", "stride_yn", "stride_yh",
                             "stride_yw")},
    "nhwc": {"ones": ("stride_xc", "stride_wn", "stride_rc", "stride_yc"), "divisible": ()},
    "nchw": {"ones": ("stride_xw", "stride_wn", "stride_rw", "stride_yw"), "divisible": ()},
}


def _conv_spills(row: dict) -> str | None:
    """Why a spilling conv compile is accepted for now (seen in the report, triton 3.6; all
    with 255 registers per thread; none timed on a GPU yet)."""
    pool = row["flags"]["pool"]
    if pool != "none":
        return (f"pool {pool}: the pooled accumulator and each tap's conv accumulator are live "
                f"together (seen up to ~1.3 KB of stack with the plain-NCHW specialisation and "
                f"unrolled taps; none since the taps became a runtime loop). Kept until a GPU "
                f"timing says whether to prune (owner: conv)")
    if row["flags"]["residual"] and row["flags"]["layout"] != "nhwc16" and row["spill"] <= 1024:
        return ("residual epilogue with no size hints (channels not a multiple of 16): seen "
                "784-880 B of stack at 255 registers with the 64x128 tiles; the zoo's residual "
                "blocks (ResNet) have >= 64 channels (nhwc16, no such spill). Kept until a GPU "
                "timing says whether to prune (owner: conv)")
    if row["spill"] <= 128:
        return ("<= 128 B of stack at 255 registers (the largest tiles in fp32/tf32, or with the "
                "residual epilogue): at most 32 values per thread, L1-resident; more fails the gate")
    return None


def _conv_expect_tc(config, dtype, flags, arch) -> bool:
    # Every conv tile has BLOCK_M >= 64 and >= 4 warps: wgmma on sm_90 (mma on sm_80) for
    # 16-bit operands and for fp32 with tf32; fp32 without tf32 is an fp32 FMA product.
    return dtype != "fp32" or bool(flags["tf32"])


def _conv_ptx_requires(dtype, flags, arch) -> tuple[str, ...]:
    # channels-last activations (unit channel strides): the A/B tiles are loaded through
    # cp.async (software pipelining); the plain-NCHW first layer is not required to be
    return ("cp.async",) if flags["layout"] == "nhwc16" else ()


def _conv_entry() -> KernelEntry:
    return KernelEntry(
        name="conv_relu_pool",
        kernel=f"{_CONV}:conv_relu_pool_kernel",
        configs=_conv_configs,
        dtypes=("fp32", "fp16", "bf16"),
        signature=_conv_signature,
        flags=_conv_flags,
        valid=_conv_valid,
        cost=_conv_cost,
        matmul=True,
        expect_tensor_core=_conv_expect_tc,
        spills=_conv_spills,
        ptx_requires=_conv_ptx_requires,
        note="implicit-GEMM Conv+bias+act(+residual)+pool",
    )


# --- tritonnx.triton_kernels.recurrent --------------------------------------------------------
_RNN = "tritonnx.triton_kernels.recurrent"
#: cell flag -> (CELL, GP): GP gate slots per unit (GRU's 3 padded to 4), BLOCK_J = 64 / GP.
#: "GRU_lbr0" is GRU with linear_before_reset=0 (two phases per step).
_RNN_CELLS = {"LSTM": (0, 4), "GRU": (1, 4), "RNN": (2, 1), "GRU_lbr0": (3, 4)}
_RNN_TILE_ROWS = 64
_RNN_DEFAULT_ACTIVATIONS = "sigmoid,tanh,tanh"
_ELEM = {"fp32": 4, "fp16": 2, "bf16": 2}


def _recurrent_module():
    return importlib.import_module(_RNN)


def _step_configs():
    """`recurrent_step_configs()` as on a GPU (not the interpreter's first-only list)."""
    return _recurrent_module().recurrent_step_configs(interpret=False)


def _persistent_configs():
    return _recurrent_module().recurrent_persistent_configs()


def _rnn_kpads(dtype: str) -> tuple[int, ...]:
    """KPAD = next_power_of_2(hidden) >= 16, up to the persistent kernel's tile budget."""
    budget = _recurrent_module().PERSISTENT_TILE_BYTES
    kpad, out = 16, []
    while _RNN_TILE_ROWS * kpad * _ELEM[dtype] <= budget:
        out.append(kpad)
        kpad *= 2
    return tuple(out)


def _rnn_activations() -> tuple[str, ...]:
    """(f, g, h) activation triples, "f,g,h": the ONNX defaults first, then every activation
    of the module's ACT_CODES rotated so each appears in every slot."""
    names = sorted(_recurrent_module().ACT_CODES, key=_recurrent_module().ACT_CODES.get)
    n = len(names)
    return (_RNN_DEFAULT_ACTIVATIONS,) + tuple(
        ",".join(names[(i + k) % n] for k in range(3)) for i in range(n))


def _rnn_flags(kind: str):
    def flags(dtype: str) -> dict[str, tuple]:
        f = {
            "cell": tuple(_RNN_CELLS),
            "peephole": (0, 1),
            "clip": (0, 1),
            "input_forget": (0, 1),
            "activations": _rnn_activations(),
            "block_b": (16, 32, 64),  # the wrapper's _block_b(batch)
            "tf32": (0, 1) if dtype == "fp32" else (0,),
        }
        if kind == "recurrent_persistent":
            f["kpad"] = _rnn_kpads(dtype)
        else:
            f["phase"] = (0, 1, 2)  # GRU_lbr0 launches phase 1 then 2 per step; others 0
        return f
    return flags


def _rnn_valid(dtype: str, flags: dict) -> bool:
    # peepholes and input_forget exist only for LSTM; two phases only for GRU_lbr0
    if "phase" in flags and (flags["phase"] != 0) != (flags["cell"] == "GRU_lbr0"):
        return False
    # the persistent kernel is launched only within its tile budgets (`persistent_launchable`)
    if "kpad" in flags and not _recurrent_module().persistent_launchable(
            _RNN_CELLS[flags["cell"]][0], _ELEM[dtype], flags["kpad"], flags["block_b"]):
        return False
    return flags["cell"] == "LSTM" or not (flags["peephole"] or flags["input_forget"])


def _rnn_cost(flags: dict) -> float:
    # the extra configs of a sample get the common case: LSTM, default activations, no options
    return ((flags["cell"] != "LSTM") + (flags["activations"] != _RNN_DEFAULT_ACTIVATIONS)
            + flags["peephole"] + flags["clip"] + flags["input_forget"] + (flags["block_b"] != 16)
            + 0.1 * flags.get("kpad", 0) / 512 + 0.5 * (not flags["tf32"]))  # tf32: the default


def _persistent_compatible(config, dtype: str, flags: dict) -> bool:
    """The wrapper picks the warps from the weight and h^T tile sizes (`persistent_config`)."""
    chosen = _recurrent_module().persistent_config(_RNN_TILE_ROWS * flags["kpad"] * _ELEM[dtype],
                                                   flags["kpad"] * flags["block_b"] * 4)
    return config.num_warps == chosen.num_warps and config.num_stages == chosen.num_stages


def _rnn_signature(fn, dtype, flags, config):
    cell, gp = _RNN_CELLS[flags["cell"]]
    codes = _recurrent_module().ACT_CODES
    act_f, act_g, act_h = (codes[a] for a in flags["activations"].split(","))
    constexprs = {"CELL": cell, "GP": gp, "HAS_PEEP": bool(flags["peephole"]),
                  "HAS_CLIP": bool(flags["clip"]), "INPUT_FORGET": bool(flags["input_forget"]),
                  "ACT_F": act_f, "ACT_G": act_g, "ACT_H": act_h,
                  "ALLOW_TF32": bool(flags["tf32"]), "DOT_FP32": False,
                  "BLOCK_J": _RNN_TILE_ROWS // gp, "BLOCK_B": flags["block_b"]}
    # weights, projected inputs and Y in the compute dtype; states and scratch in fp32
    pointers = {"rp_ptr": dtype, "xp_ptr": dtype, "y_ptr": dtype, "h_ptr": "fp32", "c_ptr": "fp32",
                "p_ptr": "fp32", "rbh_ptr": "fp32", "z_ptr": "fp32", "rh_ptr": "fp32",
                "lens_ptr": "i32", "flag_ptr": "i32"}
    if "kpad" in flags:  # on a GPU: the whole sequence with the grid barrier
        constexprs.update(KPAD=flags["kpad"], USE_BARRIER=True, ONLY_PHASE=0)
    else:
        constexprs["PHASE"] = flags["phase"]
    names = set(unwrap_jit(fn).arg_names)
    return make_spec(
        fn, config, pointers={k: v for k, v in pointers.items() if k in names},
        constexprs={k: v for k, v in constexprs.items() if k in names},
        floats=("clip", "alpha_f", "beta_f", "alpha_g", "beta_g", "alpha_h", "beta_h"),
        # hidden sizes of the zoo are multiples of 16, and so every stride (multiples of H)
        divisible=("H", "stride_xt", "stride_xb", "stride_yt", "stride_yd", "stride_yb"),
    )


def _persistent_spills(row: dict) -> str | None:
    """Why a spilling persistent compile is accepted for now (seen in the report, triton 3.6)."""
    if row["dtype"] == "fp32" and row["flags"]["block_b"] == 64 and row["config"].startswith("w4,") \
            and row["spill"] <= 256:
        return ("fp32, 4 warps, BLOCK_B=64 (KPAD <= 32: `persistent_config` picks 4 warps for an "
                "h^T tile <= 8 KB): the 64x64 fp32 gate accumulator needs > 255 registers "
                "(<= 40 B stack seen); 8 warps would not spill (owner: recurrent)")
    return None


def _rnn_expect_tc(config, dtype, flags, arch) -> bool:
    # 64 gate rows on the M side and >= 4 warps: wgmma on sm_90 (mma on sm_80), for 16-bit
    # operands and for fp32 with tf32
    return dtype != "fp32" or bool(flags["tf32"])


def _recurrent_entry(kind: str) -> KernelEntry:
    persistent = kind == "recurrent_persistent"
    return KernelEntry(
        name=kind,
        kernel=f"{_RNN}:{kind}_kernel",
        configs=_persistent_configs if persistent else _step_configs,
        dtypes=("fp32", "fp16", "bf16"),
        signature=_rnn_signature,
        flags=_rnn_flags(kind),
        valid=_rnn_valid,
        cost=_rnn_cost,
        compatible=_persistent_compatible if persistent else None,
        per_arch_flags=("activations",),  # elementwise on the fp32 gates, whatever the dtype
        spills=_persistent_spills if persistent else {},
        # the grid barrier (DESIGN): release add, acquire spin, block barriers around them
        ptx_requires=("atom.release", "ld.acquire", "bar.sync") if persistent else (),
        matmul=True,
        expect_tensor_core=_rnn_expect_tc,
        note=("LSTM/GRU/RNN: whole sequence in one launch, weights held on chip, grid barrier"
              if persistent else "LSTM/GRU/RNN: one launch per time step (gates = Rp . h^T)"),
    )


_register_builtins()
