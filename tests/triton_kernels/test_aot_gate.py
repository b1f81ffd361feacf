"""The compile gate: every registered kernel x config x claimed dtype compiles for sm_90 and
sm_80 (worker processes with TRITON_INTERPRET=0, no GPU), fits the arch's shared memory, spills
only where its catalog entry says why, and reaches the tensor cores where it does a matrix
product. And the gate fails on a deliberately broken kernel."""
import json
import os
import time
from pathlib import Path

import pytest
import torch

from tritonnx.cli import main
from tritonnx.triton_kernels import aot, catalog

pytestmark = pytest.mark.xdist_group("aot_gate")

FIXTURE_FILE = str(Path(__file__).with_name("aot_fixtures.py"))
FIXTURES = catalog._import(FIXTURE_FILE)


def _ref(name: str) -> str:
    return f"{FIXTURE_FILE}:{name}"


def test_gate_all_registered_kernels():
    """THE GATE (sampled: every config and every flag value per dtype and arch; results cached
    by kernel source hash under ~/.cache/tritonnx/aot)."""
    jobs = catalog.plan(archs=("sm_90", "sm_80"))
    rows = aot.run_jobs(jobs)  # one worker per CPU
    failures = aot.gate_failures(rows)
    assert not failures, "compile gate:\n" + "\n".join(failures)
    for entry in catalog.entries():
        for arch in ("sm_90", "sm_80"):
            ids = {c for c in map(catalog.config_id, entry.config_list(arch))}
            per_arch = [r for r in rows if (r["kernel"], r["arch"]) == (entry.name, arch)]
            for dtype in entry.dtypes:
                mine = [r for r in per_arch if r["dtype"] == dtype]
                assert {r["config"] for r in mine} == ids, (entry.name, arch, dtype)
                for flag, values in entry.flags_for(dtype).items():
                    seen = per_arch if flag in entry.per_arch_flags else mine
                    assert set(values) <= {r["flags"][flag] for r in seen}, (entry.name, arch, dtype, flag)


def test_fixture_kernels_report_and_cache(tmp_path):
    jobs = catalog.plan([FIXTURES.MATMUL, FIXTURES.SCALE], ("sm_90", "sm_80"),
                        entry_refs={"test_matmul": _ref("MATMUL"), "test_scale": _ref("SCALE")})
    rows = aot.run_jobs(jobs, workers=2, cache=tmp_path)
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert not any(r["cached"] for r in rows)
    assert aot.gate_failures(rows, spills={}) == []
    by = {(r["kernel"], r["config"], r["arch"]): r for r in rows}
    big = "BLOCK_K=32,BLOCK_M=64,BLOCK_N=64,w4,s2"
    small = "BLOCK_K=32,BLOCK_M=32,BLOCK_N=64,w2,s2"
    # Hopper's wgmma needs BLOCK_M >= 64 and 4 warps; smaller tiles and sm_80 use mma.sync
    assert by[("test_matmul", big, "sm_90")]["tensor_core"] == "wgmma"
    assert by[("test_matmul", small, "sm_90")]["tensor_core"] == "mma"
    assert by[("test_matmul", big, "sm_80")]["tensor_core"] == "mma"
    assert "wgmma" in by[("test_matmul", big, "sm_90")]["ptx_features"]
    assert "mma.sync" in by[("test_matmul", big, "sm_80")]["ptx_features"]
    for r in rows:
        assert r["regs"] > 0 and r["spill"] == 0 and r["blocks_per_sm"] >= 1
        assert r["smem_limit"] == {"sm_90": 227 * 1024, "sm_80": 163 * 1024}[r["arch"]]
        if r["kernel"] == "test_matmul":
            assert 0 < r["shared"] <= r["smem_limit"]
        else:
            assert r["tensor_core"] == "none" and not r["matmul"]
    again = aot.run_jobs(jobs, workers=2, cache=tmp_path)
    assert all(r["cached"] for r in again)
    assert [r["regs"] for r in again] == [r["regs"] for r in rows]


def test_gate_fails_on_the_broken_kernel(tmp_path):
    """`tl.dot` on 8x8 blocks: Triton's interpreter runs it, the GPU compiler rejects it."""
    a = torch.randn(8, 8, generator=torch.Generator().manual_seed(0))
    c = torch.full((8, 8), float("nan"))
    FIXTURES.broken_kernel[(1,)](a, c, BLOCK=8)  # this process runs under the interpreter
    torch.testing.assert_close(c, a @ a)

    jobs = catalog.plan([FIXTURES.BROKEN], ("sm_90", "sm_80"), entry_refs={"test_broken": _ref("BROKEN")})
    rows = aot.run_jobs(jobs, workers=2, cache=tmp_path)
    failures = aot.gate_failures(rows, spills={})
    assert len(failures) == 2, failures  # one per arch
    for arch in ("sm_90", "sm_80"):
        (msg,) = [f for f in failures if arch in f and "does not compile" in f]
        assert "test_broken" in msg and "CompilationError" in msg and "tl.dot(a, a)" in msg and "K >= 16" in msg
    assert "ERROR: CompilationError" in aot.format_table(rows)


def test_gate_fails_when_the_autotuner_runs_other_configs(tmp_path):
    jobs = catalog.plan([FIXTURES.TUNED], ("sm_90",), entry_refs={"test_tuned": _ref("TUNED")})
    rows = aot.run_jobs(jobs, workers=2, cache=tmp_path)
    assert [r["in_autotuner"] for r in rows] == [True, True, False]
    (msg,) = aot.gate_failures(rows, spills={})
    assert "BLOCK=4096" in msg and "@triton.autotune" in msg


def test_a_crashing_or_hung_worker_is_a_failed_row(tmp_path):
    entries = [FIXTURES.CRASH, FIXTURES.HANG, FIXTURES.SCALE]
    jobs = catalog.plan(entries, ("sm_90",), dtypes=("fp32",),
                        entry_refs={e.name: _ref(n) for e, n in zip(entries, ("CRASH", "HANG", "SCALE"))})
    start = time.monotonic()
    rows = aot.run_jobs(jobs, workers=1, cache=tmp_path, timeout=10)
    assert time.monotonic() - start < 100
    crashed = [r for r in rows if r["kernel"] == "test_crash"]
    assert crashed and all("worker died (exit code 3)" in r["error"] for r in crashed)
    (hung,) = [r for r in rows if r["kernel"] == "test_hang"]
    assert "longer than 10 s" in hung["error"]
    assert all(r["status"] == "ok" for r in rows if r["kernel"] == "test_scale")
    assert not any(p.suffix == ".json" and "test_crash" in p.read_text() for p in tmp_path.rglob("*.json"))


def test_cli_report(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRITONNX_CACHE_DIR", str(tmp_path))
    catalog.register(FIXTURES.MATMUL, ref=_ref("MATMUL"))
    try:
        assert main(["kernels", "--report", "--kernel", "test_matmul", "--format", "json", "--check"]) == 0
        printed = capsys.readouterr()
        report = json.loads(printed.out)
        assert "[1/" not in printed.err  # json: no progress
        monkeypatch.setenv("TRITONNX_CACHE_DIR", str(tmp_path / "fresh"))
        assert main(["kernels", "--report", "--kernel", "test_matmul", "--arch", "sm_90"]) == 0
        printed = capsys.readouterr()  # not a terminal: a line per finished compile, no bar
        err = printed.err
        assert err.count("test_matmul fp16 sm_90: ok") == 2 and "[2/2]" in err and "\r" not in err, err
        assert "test_matmul fp16 sm_90 (shared memory limit 227.0 KB): 2 compile(s)" in printed.out
        assert max(len(line) for line in printed.out.splitlines()) <= 100  # a table per kernel x dtype x arch
        monkeypatch.setenv("TRITONNX_CACHE_DIR", str(tmp_path))
        assert report["gate_failures"] == [] and report["archs"] == ["sm_90", "sm_80"]
        assert len(report["rows"]) == 4 and {r["arch"] for r in report["rows"]} == {"sm_90", "sm_80"}
        assert main(["kernels", "--report", "--kernel", "test_matmul", "--arch", "sm_90", "--summary"]) == 0
        out = capsys.readouterr().out
        assert "mma:1 wgmma:1" in out and "compile gate: pass" in out and "2/2 compiled (2 from the cache)" in out
        assert out.startswith("test_matmul:\n") and max(len(line) for line in out.splitlines()) <= 100
        assert main(["kernels"]) == 0
        assert "test_matmul" in capsys.readouterr().out
    finally:
        catalog.unregister("test_matmul")
    assert main(["kernels", "--report", "--kernel", "nope"]) == 2
    assert "no kernel named 'nope'" in capsys.readouterr().err
    assert os.environ["TRITON_INTERPRET"] == "1"  # the parent never left the interpreter
