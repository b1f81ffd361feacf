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
- env vars: the cache-invalidating ``TRITON_*``/``MLIR_*``/``LLVM_*`` variables that are set.
The driver is not in the key: the target comes from ``GPUTarget("cuda", 90, 32)`` (an H200
reports capability 9.0), so a cache can be built without a GPU by a process whose triton is the
GPU machine's wheel.

    python3 bench/triton_cache.py keys                 # this machine's key parts (JSON)
    python3 bench/triton_cache.py manifest DIR         # write them into DIR/manifest.json
    python3 bench/triton_cache.py check [DIR]          # this machine's parts against DIR's manifest
    python3 bench/triton_cache.py summary LOG          # hits and misses logged by gpu_site

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

#: The H200's target (compute capability 9.0, 32 threads a warp).
ARCH = 90
MANIFEST = "manifest.json"
#: Key parts whose difference makes every key differ.
KEY_PARTS = ("triton_version", "triton_key", "ptxas", "options", "env_vars")


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
    }


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
    diff = compare(here, built.get("key_parts", built))
    if diff:
        print("the carried cache CANNOT hit: every key differs, because")
        for line in diff:
            print("  " + line)
    else:
        print(f"the carried cache's key parts match this machine's ({built.get('kernels', '?')} kernels built "
              f"{built.get('built', '?')}): hits depend only on each launch's signature and specialization")
    return 0


def write_manifest(cache_dir: Path, **extra) -> Path:
    """`key_parts` (and `extra`) into cache_dir/manifest.json."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    kernels = sum(1 for p in cache_dir.glob("*/*.json") if not p.name.startswith("__grp__"))
    data = {"key_parts": key_parts(), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "kernels": kernels, **extra}
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("keys", "manifest", "check", "summary"):
        print("usage: python3 bench/triton_cache.py keys | manifest DIR | check [DIR] | summary LOG", file=sys.stderr)
        return 2
    what, rest = argv[0], argv[1:]
    if what == "keys":
        print(json.dumps(key_parts(), indent=1))
    elif what == "manifest":
        print(write_manifest(Path(rest[0])))
    elif what == "check":
        return check(Path(rest[0]) if rest else None)
    else:
        print(summary(Path(rest[0])) if rest else "no log given")
    return 0


if __name__ == "__main__":
    sys.exit(main())
