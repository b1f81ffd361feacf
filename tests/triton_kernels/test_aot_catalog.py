"""The kernel catalog without compiling: signature building, sampling coverage, gate rules."""
import itertools
from pathlib import Path

import pytest
import triton

from tritonnx.errors import InvalidArgument
from tritonnx.triton_kernels import aot, catalog

FIXTURES = catalog._import(str(Path(__file__).with_name("aot_fixtures.py")))


def test_builtin_entries_are_registered():
    assert "conv_relu_pool" in catalog.names()
    with pytest.raises(InvalidArgument, match="conv_relu_pool"):
        catalog.get("no_such_kernel")


@pytest.mark.parametrize("name", catalog.names())
def test_entry_builds_a_signature_for_every_flag_value(name):
    """Under the interpreter too: every cover combination x every config gives a spec whose
    constexprs and signature name every kernel argument once."""
    entry = catalog.get(name)
    fn = entry.load()
    for arch in catalog.DEFAULT_ARCHS:
        configs = entry.config_list(arch)
        assert configs, f"{name}: no configs for {arch}"
        for dtype in entry.dtypes:
            for flags, config in zip(itertools.cycle(entry.flag_cover(dtype)), configs):
                spec = entry.signature(fn, dtype, flags, config)
                assert list(spec.signature) == list(fn.arg_names)
                constexprs = {k for k, v in spec.signature.items() if v == "constexpr"}
                assert constexprs == set(spec.constexprs)
                assert spec.options["num_warps"] == config.num_warps


def _launchable_kernels():
    """(module, name) of every public module-level @triton.jit / autotuned kernel in the package
    (device helpers are private: `_name`)."""
    import importlib
    import pkgutil

    import tritonnx.triton_kernels as pkg

    found = set()
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in ("aot", "catalog"):
            continue
        module = importlib.import_module(f"tritonnx.triton_kernels.{info.name}")
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            try:
                fn = catalog.unwrap_jit(obj)
            except (InvalidArgument, TypeError):
                continue
            if getattr(fn.fn, "__module__", None) == module.__name__:
                found.add((module.__name__, name))
    return found


def test_every_kernel_of_the_package_is_in_the_catalog():
    """A kernel added later is covered by the gate once registered: this test says when not."""
    registered = {tuple(e.kernel.rsplit(":", 1)) for e in catalog.entries()}
    kernels = _launchable_kernels()
    assert kernels, "no kernels found"
    missing = sorted(kernels - registered)
    assert not missing, f"kernels not registered in tritonnx.triton_kernels.catalog: {missing}"


def test_conv_entry_uses_the_autotuner_configs():
    from tritonnx.triton_kernels import conv_relu_pool

    entry = catalog.get("conv_relu_pool")
    ids = [catalog.config_id(c) for c in entry.config_list("sm_90")]
    assert ids == [catalog.config_id(c) for c in conv_relu_pool.conv_configs(interpret=False)]


def test_persistent_entry_compiles_what_the_wrapper_launches():
    """Every planned persistent job (full product) is a tile the wrapper launches
    (`persistent_launchable`) with the warps it picks (`persistent_config`, from the weight
    AND h^T tile sizes): the gate checks the launched kernels, not neighbours of them."""
    from tritonnx.triton_kernels import recurrent

    cells = {"LSTM": 0, "GRU": 1, "RNN": 2, "GRU_lbr0": 3}
    elem = {"fp32": 4, "fp16": 2, "bf16": 2}
    jobs = catalog.plan([catalog.get("recurrent_persistent")], ("sm_90",), full=True)
    assert jobs
    for job in jobs:
        f = dict(job.flags)
        assert recurrent.persistent_launchable(cells[f["cell"]], elem[job.dtype], f["kpad"], f["block_b"]), job
        tile = recurrent.TILE_ROWS * f["kpad"] * elem[job.dtype]
        picked = recurrent.persistent_config(tile, f["kpad"] * f["block_b"] * 4)
        assert job.config == catalog.config_id(picked), job


def test_conv_channels_last_compiles_must_pipeline_their_loads():
    """The gate requires cp.async in every channels-last conv compile (unit channel strides:
    the A/B tiles are software-pipelined), not in the plain-NCHW first layer's."""
    entry = catalog.get("conv_relu_pool")
    flags = entry.flag_cover("fp16")[0]
    for arch in catalog.DEFAULT_ARCHS:
        assert entry.required_ptx("fp16", dict(flags, layout="nhwc16"), arch) == ("cp.async",)
        assert entry.required_ptx("fp16", dict(flags, layout="nchw"), arch) == ()
    (msg,) = aot.gate_failures([_row(ptx_requires=["cp.async"], ptx_features=["wgmma"])], spills={})
    assert "lacks cp.async" in msg


def test_make_spec_specialises_like_the_launcher():
    config = triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=3)
    spec = catalog.make_spec(FIXTURES.matmul_kernel, config,
                             pointers={"a_ptr": "fp16", "b_ptr": "fp16", "c_ptr": "fp32"},
                             divisible=("stride_am",), ones=("stride_ak",), int64=("K",))
    assert spec.signature["a_ptr"] == "*fp16" and spec.signature["c_ptr"] == "*fp32"
    assert spec.signature["M"] == "i32" and spec.signature["K"] == "i64"
    assert spec.signature["stride_ak"] == "constexpr" and spec.constexprs["stride_ak"] == 1
    assert spec.constexprs["BLOCK_M"] == 64
    names = FIXTURES.matmul_kernel.arg_names
    assert spec.attrs[(names.index("a_ptr"),)] == [["tt.divisibility", 16]]
    assert spec.attrs[(names.index("stride_am"),)] == [["tt.divisibility", 16]]
    assert (names.index("M"),) not in spec.attrs
    assert spec.options == {"num_warps": 4, "num_stages": 3, "num_ctas": 1}


def test_make_spec_names_unknown_and_missing_arguments():
    config = triton.Config({"BLOCK": 256}, num_warps=4)
    with pytest.raises(InvalidArgument, match=r"scale_kernel.*no argument\(s\) \['z_ptr'\]"):
        catalog.make_spec(FIXTURES.scale_kernel, config, pointers={"z_ptr": "fp32"})
    with pytest.raises(InvalidArgument, match="constexpr 'RELU' has no value"):
        catalog.make_spec(FIXTURES.scale_kernel, config, pointers={"x_ptr": "fp32", "y_ptr": "fp32"})


def test_names_and_aliases():
    assert catalog.canonical_dtype("float16") == "fp16"
    assert [catalog.canonical_arch(a) for a in ("sm_90", "sm90", "80", 90)] == ["sm_90", "sm_90", "sm_80", "sm_90"]
    with pytest.raises(InvalidArgument, match="sm_90"):
        catalog.canonical_arch("sm_75")
    with pytest.raises(InvalidArgument, match="fp32"):
        catalog.canonical_dtype("int8")
    cfg = triton.Config({"B": 2, "A": 1}, num_warps=8, num_stages=2)
    assert catalog.config_id(cfg) == "A=1,B=2,w8,s2"


def _toy_entry(n_configs, flags, valid=None, cost=None):
    configs = [triton.Config({"BLOCK": 2 ** (i + 4)}, num_warps=4) for i in range(n_configs)]
    return catalog.KernelEntry(name="toy", kernel=f"{FIXTURES.HERE}:scale_kernel", configs=lambda: configs,
                               dtypes=("fp32", "fp16"), signature=lambda *a: None, flags=flags,
                               valid=valid, cost=cost)


@pytest.mark.parametrize("n_configs", [1, 3, 7])
def test_sample_covers_every_config_and_flag_value_per_dtype_and_arch(n_configs):
    flags = {"A": (0, 1, 2, 3, 4), "B": (0, 1), "C": ("x", "y", "z")}
    valid = lambda dtype, f: not (f["B"] == 1 and f["C"] == "z")  # noqa: E731
    entry = _toy_entry(n_configs, flags, valid=valid, cost=lambda f: f["A"])
    jobs = catalog.plan([entry], ("sm_90", "sm_80"))
    for arch, dtype in itertools.product(("sm_90", "sm_80"), ("fp32", "fp16")):
        mine = [j for j in jobs if j.arch == arch and j.dtype == dtype]
        assert {j.config_index for j in mine} == set(range(n_configs))
        for name, values in flags.items():
            assert {dict(j.flags)[name] for j in mine} == set(values), (arch, dtype, name)
        assert all(valid(dtype, dict(j.flags)) for j in mine)
        assert all(j.sampled for j in mine)
        assert len(mine) == max(n_configs, len(entry.flag_cover(dtype)))
    # the pairs differ between archs (rotation)
    pairs = {a: [(j.config_index, j.flags) for j in jobs if j.arch == a and j.dtype == "fp32"]
             for a in ("sm_90", "sm_80")}
    assert pairs["sm_90"] != pairs["sm_80"]


def test_per_arch_flags_are_covered_once_per_arch():
    configs = [triton.Config({"BLOCK": 16}, num_warps=4)]
    entry = catalog.KernelEntry(name="toy", kernel=f"{FIXTURES.HERE}:scale_kernel", configs=lambda: configs,
                                dtypes=("fp32", "fp16", "bf16"), signature=lambda *a: None,
                                flags={"ACT": tuple(range(6)), "B": (0, 1)}, per_arch_flags=("ACT",))
    jobs = catalog.plan([entry], ("sm_90", "sm_80"))
    for arch in ("sm_90", "sm_80"):
        mine = [j for j in jobs if j.arch == arch]
        assert {dict(j.flags)["ACT"] for j in mine} == set(range(6))
        for dtype in ("fp32", "fp16", "bf16"):
            assert {dict(j.flags)["B"] for j in mine if j.dtype == dtype} == {0, 1}
    assert len(jobs) < 2 * 3 * 6  # fewer than covering ACT per dtype


def test_compatible_pairs_only():
    configs = [triton.Config({}, num_warps=4), triton.Config({}, num_warps=8)]
    entry = catalog.KernelEntry(name="toy", kernel=f"{FIXTURES.HERE}:scale_kernel", configs=lambda: configs,
                                dtypes=("fp32",), signature=lambda *a: None, flags={"K": (16, 32, 64, 128), "X": (0, 1, 2)},
                                compatible=lambda cfg, dtype, f: cfg.num_warps == (4 if f["K"] <= 32 else 8))
    for full in (False, True):
        jobs = catalog.plan([entry], ("sm_90",), full=full)
        assert all((j.config == "w4,s3") == (dict(j.flags)["K"] <= 32) for j in jobs)
        assert {dict(j.flags)["K"] for j in jobs} == {16, 32, 64, 128}
        assert {j.config for j in jobs} == {"w4,s3", "w8,s3"}


def test_plan_full_product_and_small_products():
    entry = _toy_entry(3, {"A": (0, 1)})
    full = catalog.plan([entry], ("sm_90",), full=True)
    assert len(full) == 3 * 2 * 2 and not any(j.sampled for j in full)
    one_flag = _toy_entry(3, {})
    assert len(catalog.plan([one_flag], ("sm_90",))) == 3 * 2
    assert len(catalog.plan([entry], ("sm_90",), dtypes=("fp16",))) == 3


def test_flag_cover_reports_impossible_values():
    entry = _toy_entry(2, {"A": (0, 1)}, valid=lambda dtype, f: f["A"] == 0)
    with pytest.raises(InvalidArgument, match="no valid combination has"):
        entry.flag_cover("fp32")


def _row(**kw):
    row = {"kernel": "k", "config": "BLOCK=64,w4,s2", "dtype": "fp16", "flags": {}, "arch": "sm_90",
           "status": "ok", "error": "", "shared": 1024, "smem_limit": 227 * 1024, "regs": 100,
           "spill": 0, "tensor_core": "wgmma", "matmul": True, "expect_tensor_core": True,
           "sampled": False, "cached": False, "blocks_per_sm": 2}
    row.update(kw)
    return row


def test_gate_rules():
    assert aot.gate_failures([_row()], spills={}) == []
    (msg,) = aot.gate_failures([_row(status="error", error="CompilationError: at 1:2:\nx = 1\n  ^\nbad thing")], spills={})
    assert "does not compile" in msg and "bad thing" in msg and "`x = 1`" in msg
    (msg,) = aot.gate_failures([_row(shared=300 * 1024)], spills={})
    assert "307200 B of shared memory" in msg and "sm_90" in msg
    (msg,) = aot.gate_failures([_row(spill=64)], spills={})
    assert "spills (64 B" in msg and "keep()" in msg
    assert aot.gate_failures([_row(spill=64)], spills={"k": {"BLOCK=64,w4,s2": "measured faster"}}) == []
    msgs = aot.gate_failures([_row(tensor_core="mma")], spills={})
    assert any("expected wgmma" in m for m in msgs) and any("no config reaches wgmma" in m for m in msgs)
    # a small tile may use mma.sync as long as another config of the dtype reaches wgmma
    rows = [_row(), _row(config="BLOCK=16,w2,s2", tensor_core="mma", expect_tensor_core=False)]
    assert aot.gate_failures(rows, spills={}) == []
    (msg,) = aot.gate_failures([_row(ptx_features=["bar.sync"], ptx_requires=["atom.release", "bar.sync"])],
                               spills={})
    assert "the PTX lacks atom.release" in msg
    (msg,) = aot.gate_failures([_row(in_autotuner=False)], spills={})
    assert "not in the kernel's @triton.autotune list" in msg
    # sm_80's tensor-core instruction is mma
    assert aot.gate_failures([_row(arch="sm_80", tensor_core="mma", smem_limit=163 * 1024)], spills={}) == []


def test_ptx_features():
    ptx = "wgmma.mma_async.sync.aligned.m64n64k16\n atom.global.gpu.release.add.u32 %r1\n ld.global.gpu.acquire.b32 %r2"
    assert aot.ptx_features(ptx) == ["wgmma", "atom.release", "ld.acquire"]
    assert aot.ptx_features("mma.sync.aligned.m16n8k16 \n cp.async.cg.shared.global [a], [b]") == ["mma.sync", "cp.async"]


def test_blocks_per_sm():
    assert aot.blocks_per_sm("sm_90", 4, 255, 0) == 2
    assert aot.blocks_per_sm("sm_90", 4, 32, 100 * 1024) == 2
    assert aot.blocks_per_sm("sm_80", 8, 128, 0) == 2
