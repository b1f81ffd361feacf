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

Each built-in kernel module ends with its own entry (its codes, configs and flags beside the
kernel), and is listed in `BUILTIN_MODULES`, imported on the first look-up. An entry registered
elsewhere (a plugin, a test) passes `ref="module:ATTR"` naming its `KernelEntry`, so the
compile workers, which import only this module and the built-in kernel modules, can find it.

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

from tritonnx import dtype_names
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
KERNEL_DTYPES = dtype_names.NAMES


def canonical_dtype(dtype: str) -> str:
    """A kernel dtype's canonical name (the one table: `tritonnx.dtype_names`)."""
    return dtype_names.canonical(dtype, KERNEL_DTYPES)


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
    _load_builtins()
    return sorted(_REGISTRY)


def get(name: str) -> KernelEntry:
    _load_builtins()
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


#: The kernel modules of tritonnx: each ends with its own `register(KernelEntry(...))`, reading
#: its own codes and configs. Imported on the first look-up (`names`, `get`, `entries`), so
#: this module still imports no kernel module at import time.
BUILTIN_MODULES = ("tritonnx.triton_kernels.conv_relu_pool", "tritonnx.triton_kernels.recurrent")
_builtins_loaded = False


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
