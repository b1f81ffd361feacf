"""A prebuilt Triton cache for the lent GPU (issue 18): can its keys match, and did they?

Triton 3.6 looks a compiled kernel up (``triton.compile``, also on every JIT launch that misses
its in-memory cache) under ``sha256(key)``, where ``runtime/cache.get_cache_key`` builds the key as

    f"{triton_key()}-{src.hash()}-{backend.hash()}-{options.hash()}-{sorted(env_vars)}"

- ``triton_key()``: the Triton version and the sha256 of its own files: runtime/cache.py, every
  module of triton.compiler, triton.backends and triton.language, and **the native library
  ``_C/libtriton.so``**, which is a different build for each CPython ABI (cp311 here, cp312 on
  the GPU machine): a cache built by another Python's triton wheel can never match;
- ``src.hash()``: the kernel's source and dependencies (``JITFunction.cache_key``: source, used
  globals, first line number), the argument types, constexprs and specialization attrs
  (16-divisibility of pointers and integers): the same source launched the same way matches;
- ``backend.hash()``: ``f"{ptxas --version}-{arch}"``: triton's bundled ptxas, the same in one
  wheel, unless ``TRITON_PTXAS_PATH`` points elsewhere;
- ``options.hash()``: every ``CUDAOptions`` field (num_warps, num_stages, arch "sm90", fp8 types,
  ``max_num_imprecise_acc_default``, ``enable_fp_fusion`` from ``TRITON_DEFAULT_FP_FUSION``, ...),
  libdevice by the sha256 of its content (not its path);
- env vars: the cache-invalidating ``TRITON_*``/``MLIR_*``/``LLVM_*`` variables that are set
  (``TRITON_INTERPRET`` and ``TRITON_CACHE_DIR`` are not among them); ``TRITON_DEBUG`` sets the
  ``debug`` option of every JIT launch (``jit_debug`` below).
The driver is not in the key: the target comes from ``GPUTarget("cuda", 90, 32)`` (an H200
reports capability 9.0), so a cache can be built without a GPU by a process whose triton is the
GPU machine's wheel.

    python3 bench/triton_cache.py keys                 # this machine's key parts (JSON)
    python3 bench/triton_cache.py manifest DIR         # write them into DIR/manifest.json
    python3 bench/triton_cache.py check [DIR]          # this machine's parts against DIR's manifest
    python3 bench/triton_cache.py summary LOG          # hits and misses logged by gpu_site
    python3 bench/triton_cache.py clean DIR            # drop tuned results (*.autotune.json)
    TRITON_INTERPRET=0 python3 -m tritonnx.bench.triton_cache build DIR      # the cache, no GPU
    TRITON_INTERPRET=0 python3 -m tritonnx.bench.triton_cache variants       # conv compiles per model

``build`` runs the kernels' own launch wrappers, autotuner included, with a stand-in for
Triton's CUDA driver that reports the H200's target and skips every launch (`compile_only`):
each config that the GPU's autotuner would compile is compiled here into DIR, under the key the
GPU computes, provided this Python's triton is the GPU machine's wheel (cp312 triton 3.6.0:
run it with a Python 3.12 venv, see `check`). It covers the launches of the GPU smoke tests
and of the quick kernel benchmark (direct calls with the GPU's layouts); the zoo rows go through
the session, whose layout choices follow the device, and compile on the GPU (logged as misses).

The conv kernel's autotuner keeps its tuned configs on disk (``cache_results=True``: a
``*.autotune.json`` beside the cubins, under a key that also matches on the GPU). Timings from a
compile-only build are fakes (every config "takes" 1.0), so `compile_only` keeps the autotuner
off the disk and `build` and `clean` (the GPU's cache step) delete any such file: the GPU times
every config itself, from cubins that are already there.

The manifest also records a digest of the kernels' sources (``sources``): the JIT key hashes
each kernel's source and line numbers, so a cache built from another checkout misses for every
changed kernel file; `check` says so.

``bench/gpu_site/sitecustomize.py`` (on PYTHONPATH in `bench/on_gpu.sh`) installs `listener` in
every Python process once triton is imported: one line per lookup into
``$TRITONNX_TRITON_CACHE_LOG`` (time, pid, hit|miss, kernel, seconds).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

from tritonnx import dtype_names

#: The H200's target (compute capability 9.0, 32 threads a warp).
ARCH = 90
MANIFEST = "manifest.json"
#: Key parts whose difference makes every key differ.
KEY_PARTS = ("triton_version", "triton_key", "ptxas", "options", "env_vars", "jit_debug")
#: The autotuner's on-disk tuned results (Autotuner.check_disk_cache).
TUNED_GLOB = "*/*.autotune.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def key_parts(arch: int = ARCH) -> dict:
    """The parts of every cache key that do not depend on the kernel, on this machine."""
    import sysconfig

    import triton
    from triton._C.libtriton import get_cache_invalidating_env_vars
    from triton.backends.compiler import GPUTarget
    from triton.compiler.compiler import make_backend
    from triton.runtime.cache import triton_key

    backend = make_backend(GPUTarget("cuda", arch, 32))
    root = Path(triton.__file__).parent
    ext = sysconfig.get_config_var("EXT_SUFFIX").split(".")[-1]
    lib = root / "_C" / f"libtriton.{ext}"
    return {
        "python": platform.python_version(),
        "abi": sysconfig.get_config_var("SOABI"),
        "triton_version": triton.__version__,
        "triton_key": _sha(triton_key().encode()),
        "libtriton_sha256": _sha(lib.read_bytes()) if lib.exists() else None,
        "ptxas": backend.hash(),
        "options": backend.parse_options({}).hash(),
        "env_vars": sorted(get_cache_invalidating_env_vars().items()),
        "jit_debug": bool(knobs_debug()),
    }


def knobs_debug() -> bool:
    """TRITON_DEBUG as every JIT launch reads it (the `debug` option in each key)."""
    from triton import knobs

    return bool(knobs.runtime.debug)


def sources_digest(root: Path | None = None) -> str:
    """sha256 over the kernels' source files (triton_kernels/*.py: names and contents)."""
    if root is None:  # the package's folder, found without importing it (no TRITON_INTERPRET side effect)
        import importlib.util

        spec = importlib.util.find_spec("tritonnx.triton_kernels")
        root = Path(spec.origin).parent if spec and spec.origin else Path(__file__).resolve().parents[1] / "triton_kernels"
    h = hashlib.sha256()
    for f in sorted(root.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def drop_tuned(cache_dir: Path) -> int:
    """Delete the autotuner's tuned results in cache_dir (fake timings of a compile-only build);
    returns how many."""
    files = list(Path(cache_dir).glob(TUNED_GLOB))
    for f in files:
        f.unlink()
    return len(files)


def compare(here: dict, built: dict) -> list[str]:
    """The key parts that differ (each a line naming both values); [] = the keys can match."""
    lines = []
    for part in KEY_PARTS:
        if here.get(part) != built.get(part):
            why = ""
            if part == "triton_key" and here.get("libtriton_sha256") != built.get("libtriton_sha256"):
                why = (f" (libtriton differs: {str(built.get('libtriton_sha256'))[:12]} from Python "
                       f"{built.get('python')} {built.get('abi')}, {str(here.get('libtriton_sha256'))[:12]} here "
                       f"from {here.get('python')} {here.get('abi')})")
            lines.append(f"{part}: cache {str(built.get(part))[:60]!s} != here {str(here.get(part))[:60]!s}{why}")
    return lines


def check(cache_dir: Path | None) -> int:
    """Print this machine's key parts against the cache's manifest; 0 when they can match."""
    here = key_parts()
    print("key parts here:", json.dumps(here))
    if cache_dir is None:
        print("no Triton cache carried")
        return 0
    manifest = Path(cache_dir) / MANIFEST
    if not manifest.exists():
        print(f"{manifest}: no manifest: the cache's origin is unknown (hits and misses still logged)")
        return 0
    built = json.loads(manifest.read_text())
    tuned = len(list(Path(cache_dir).glob(TUNED_GLOB)))
    if tuned:
        print(f"{tuned} tuned result(s) (*.autotune.json) in the cache: the autotuner would skip its timing "
              f"(`clean` deletes them)")
    diff = compare(here, built.get("key_parts", built))
    if diff:
        print("the carried cache CANNOT hit: every key differs, because")
        for line in diff:
            print("  " + line)
        return 0
    if built.get("sources") not in (None, sources_digest()):
        print("the carried cache was built from other kernel sources (triton_kernels/*.py differ): "
              "launches of changed kernels miss; rebuild it with bench/prepare_triton_cache.sh")
    print(f"the carried cache's key parts match this machine's ({built.get('kernels', '?')} kernels built "
          f"{built.get('built', '?')}): hits depend only on each launch's signature and specialization")
    return 0


def write_manifest(cache_dir: Path, **extra) -> Path:
    """`key_parts` (and `extra`) into cache_dir/manifest.json."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    kernels = sum(1 for p in cache_dir.glob("*/*.json") if not p.name.startswith("__grp__"))
    data = {"key_parts": key_parts(), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kernels": kernels, "sources": sources_digest(), **extra}
    path = cache_dir / MANIFEST
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def listener(log_path: str):
    """A `triton.knobs.compilation.listener` appending one line per cache lookup to `log_path`."""

    def on_compile(*, src, metadata, metadata_group, times, cache_hit):
        name = getattr(src, "name", "?")
        seconds = getattr(times, "total", None)
        if seconds is None and isinstance(times, dict):
            seconds = times.get("total")
        line = f"{time.time():.3f}\t{os.getpid()}\t{'hit' if cache_hit else 'miss'}\t{name}\t{metadata.get('hash', '')}\n"
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(line)

    return on_compile


_COUNTS = {"hit": 0, "miss": 0}
_COUNTING = False


def count_compiles() -> tuple[int, int]:
    """(cache hits, compiles) of this process so far; the first call starts counting (the
    listener already set, e.g. by gpu_site, keeps being called). (0, 0) without triton."""
    global _COUNTING
    if not _COUNTING:
        try:
            import tritonnx.triton_kernels  # noqa: F401 - first: sets TRITON_INTERPRET on a CPU
            from triton import knobs
        except ImportError:
            return 0, 0
        previous = knobs.compilation.listener

        def counting(**kwargs):
            _COUNTS["hit" if kwargs.get("cache_hit") else "miss"] += 1
            if previous is not None:
                previous(**kwargs)

        knobs.compilation.listener = counting
        _COUNTING = True
    return _COUNTS["hit"], _COUNTS["miss"]


def summary(log: Path) -> str:
    """'N lookups: H hits, M misses' (and the kernels that missed most) from a listener log."""
    try:
        lines = [ln.split("\t") for ln in Path(log).read_text().splitlines() if ln.strip()]
    except OSError:
        return "no Triton compiles logged"
    hits = sum(1 for ln in lines if len(ln) > 2 and ln[2] == "hit")
    misses = [ln[3] for ln in lines if len(ln) > 3 and ln[2] == "miss"]
    text = f"{len(lines)} lookups: {hits} hits, {len(misses)} misses (compiled here)"
    if misses:
        counts: dict[str, int] = {}
        for name in misses:
            counts[name] = counts.get(name, 0) + 1
        text += "; misses by kernel: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
    return text


class _CompileOnlyDriver:
    """The parts of Triton's driver that a compile and a skipped launch ask for, for `target`."""

    def __init__(self, arch: int = ARCH):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)

    def is_active(self):
        return True

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return 0

    def get_current_stream(self, device=None):
        return 0

    def get_benchmarker(self):
        def bench(fn, quantiles=None, **kwargs):
            fn()
            return [1.0] * len(quantiles) if quantiles else 1.0
        return bench

    def get_empty_cache_for_benchmark(self):
        import torch

        return torch.empty(1)

    def clear_cache(self, cache):
        pass


class compile_only:
    """Inside: Triton kernels launched by their wrappers are compiled for the H200 (with the key
    the GPU computes) and not run; the autotuner "times" every config it would try. Needs a
    process started with TRITON_INTERPRET=0. `compiled` lists (kernel, options) per compile.
    The autotuner neither reads nor writes tuned results on disk inside (its timings are fakes)."""

    def __init__(self, record_only: bool = False):
        self.record_only = record_only
        self.compiled: list[tuple[str, str]] = []

    def __enter__(self):
        from triton.runtime import driver
        from triton.runtime.autotuner import Autotuner
        from triton.runtime.jit import JITFunction

        if os.environ.get("TRITON_INTERPRET", "0") not in ("0", ""):
            raise RuntimeError("compile_only needs TRITON_INTERPRET=0 (set before the kernels are defined)")
        self._run, self._do_compile = JITFunction.run, JITFunction._do_compile
        run, do_compile, outer = self._run, self._do_compile, self

        def run_compile_only(fn, *args, grid, warmup, **kwargs):
            return run(fn, *args, grid=grid, warmup=True, **kwargs)

        def recording(fn, key, signature, device, constexprs, options, attrs, warmup):
            outer.compiled.append((fn._fn_name, json.dumps([sorted(signature.items()), sorted(
                (str(k), str(v)) for k, v in constexprs.items()), sorted((str(k), str(v)) for k, v in attrs.items()),
                options.num_warps, options.num_stages], default=str)))
            if outer.record_only:
                return object()
            return do_compile(fn, key, signature, device, constexprs, options, attrs, warmup)

        def no_disk(tuner, tuning_key, configs, bench_fn):
            bench_fn()
            return False

        JITFunction.run, JITFunction._do_compile = run_compile_only, recording
        self._check_disk_cache, Autotuner.check_disk_cache = Autotuner.check_disk_cache, no_disk
        self._driver = driver._active  # None until a real driver was asked for (none here)
        driver.set_active(_CompileOnlyDriver())
        return self

    def __exit__(self, *exc):
        from triton.runtime import driver
        from triton.runtime.autotuner import Autotuner
        from triton.runtime.jit import JITFunction

        JITFunction.run, JITFunction._do_compile = self._run, self._do_compile
        Autotuner.check_disk_cache = self._check_disk_cache
        driver._active = self._driver
        return False


def gpu_launches(*, quick_bench: bool = True) -> None:
    """The kernel launches of the GPU smoke tests and of the quick kernel benchmark (fp16), as
    their code makes them (on CPU tensors: the same dtypes, shapes, strides and alignment)."""
    import torch

    from tritonnx.bench.kernels import conv as bench_conv
    from tritonnx.triton_kernels import conv_relu_pool as crp
    from tritonnx.triton_kernels import recurrent

    for dt in map(dtype_names.torch_dtype, dtype_names.NAMES):  # tests/bench/test_gpu_smoke.py
        x = torch.randn(64, 1, 32, 32).to(dt).contiguous(memory_format=torch.channels_last)
        crp.conv_relu_pool(x, torch.randn(6, 1, 5, 5).to(dt), torch.randn(6).to(dt), None, activation="relu",
                           pool="max", pool_kernel=(2, 2), pool_strides=(2, 2), allow_tf32=True)
        X = torch.randn(20, 4, 65).to(dt)
        packed = recurrent.pack("LSTM", torch.randn(1, 2048, 65).to(dt), torch.randn(1, 2048, 512).to(dt),
                                torch.randn(1, 4096).to(dt))
        for mode in ("step", "persistent") if dt == torch.float16 else ("step",):
            recurrent.run(packed, X, mode=mode)
    if not quick_bench:
        return
    for block in bench_conv.ordered_blocks(quick=True):  # bench/kernels/conv.py, quick: batch 64
        c, h, w = block.in_chw
        o, cg, kh, kw = block.w_shape
        kwargs = bench_conv.kernel_kwargs(block, (h, w))
        dt = torch.float16
        x = torch.randn(64, c, h, w).to(dt).contiguous(memory_format=torch.channels_last)
        wt = torch.randn(o, cg, kh, kw).to(dt)
        b = torch.randn(o).to(dt) if block.has_bias else None
        conv_hw = [crp.conv_out_size((h, w)[i], (kh, kw)[i], kwargs["strides"][i], kwargs["pads"][i],
                                     kwargs["pads"][i + 2], kwargs["dilations"][i]) for i in range(2)]
        r = torch.randn(64, o, *conv_hw).to(dt).contiguous(memory_format=torch.channels_last) \
            if block.has_residual else None
        crp.conv_relu_pool(x, crp.pack_conv_weight(wt, kwargs["group"]), b, r, allow_tf32=True, **kwargs)


def build(cache_dir: Path) -> dict:
    """Compile `gpu_launches` into cache_dir (TRITON_CACHE_DIR) for the H200; write its manifest."""
    os.environ["TRITON_CACHE_DIR"] = str(Path(cache_dir).resolve())
    hits0, misses0 = count_compiles()
    t0 = time.time()
    with compile_only() as recorder:
        gpu_launches()
    hits, misses = count_compiles()
    info = {"compiles": len(recorder.compiled), "new": misses - misses0, "from_cache": hits - hits0,
            "seconds": round(time.time() - t0, 1), "tuned_results_dropped": drop_tuned(Path(cache_dir))}
    write_manifest(Path(cache_dir), build=info, launches="GPU smoke tests + quick kernel benchmark (fp16)")
    return info


def conv_variants(models=("lenet5", "alexnet", "vgg16", "googlenet", "resnet18"), batches=(1, 64)) -> dict:
    """Per zoo CNN (its paper blocks), the conv kernel's distinct compiles with the current
    `DO_NOT_SPECIALIZE` and without it (Triton specialising every size): nothing is compiled."""
    import torch

    from tritonnx.bench.kernels import conv as bench_conv
    from tritonnx.triton_kernels import conv_relu_pool as crp

    kernel = crp.conv_relu_pool_kernel.fn
    tuner = crp.conv_relu_pool_kernel
    cache_results, tuner.cache_results = tuner.cache_results, False  # no tuned result from disk
    out = {}
    for label, dns in (("now", True), ("specialising every size", False)):
        for p in kernel.params:
            if p.name in crp.DO_NOT_SPECIALIZE and p.name not in ("N_BATCH", "M_TOTAL"):
                p.do_not_specialize = dns
        kernel.device_caches.clear()
        for model in models:
            crp.conv_relu_pool_kernel.cache.clear()
            with compile_only(record_only=True) as recorder:
                for block in bench_conv.model_blocks(model):
                    c, h, w = block.in_chw
                    o, cg, kh, kw = block.w_shape
                    kwargs = bench_conv.kernel_kwargs(block, (h, w))
                    for n in batches:
                        x = torch.empty(n, c, h, w, dtype=torch.float16).contiguous(memory_format=torch.channels_last)
                        conv_hw = [crp.conv_out_size((h, w)[i], (kh, kw)[i], kwargs["strides"][i], kwargs["pads"][i],
                                                     kwargs["pads"][i + 2], kwargs["dilations"][i]) for i in range(2)]
                        r = torch.empty(n, o, *conv_hw, dtype=torch.float16).contiguous(
                            memory_format=torch.channels_last) if block.has_residual else None
                        b = torch.empty(o, dtype=torch.float16) if block.has_bias else None
                        crp.conv_relu_pool(x, crp.pack_conv_weight(torch.empty(o, cg, kh, kw, dtype=torch.float16),
                                                                   kwargs["group"]), b, r, allow_tf32=True, **kwargs)
            out.setdefault(model, {})[label] = len(set(recorder.compiled))
    for p in kernel.params:
        p.do_not_specialize = p.name in crp.DO_NOT_SPECIALIZE
    kernel.device_caches.clear()
    tuner.cache_results = cache_results
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["build"] and len(argv) == 2:
        print(json.dumps(build(Path(argv[1]))))
        return 0
    if argv[:1] == ["variants"]:
        for model, counts in conv_variants().items():
            print(f"{model}: conv compiles per dtype (batch 1 and 64, every autotune config): "
                  + ", ".join(f"{v} {k}" for k, v in counts.items()))
        return 0
    if not argv or argv[0] not in ("keys", "manifest", "check", "summary", "clean"):
        print("usage: python3 bench/triton_cache.py keys | manifest DIR | check [DIR] | summary LOG | clean DIR | "
              "build DIR | variants",
              file=sys.stderr)
        return 2
    what, rest = argv[0], argv[1:]
    if what == "keys":
        print(json.dumps(key_parts(), indent=1))
    elif what == "manifest":
        print(write_manifest(Path(rest[0])))
    elif what == "check":
        return check(Path(rest[0]) if rest else None)
    elif what == "clean":
        n = drop_tuned(Path(rest[0])) if rest and Path(rest[0]).is_dir() else 0
        print(f"{n} tuned result(s) (*.autotune.json) dropped: the autotuner times every config here")
    else:
        print(summary(Path(rest[0])) if rest else "no log given")
    return 0


if __name__ == "__main__":
    sys.exit(main())
