import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# ---- zoo: tiny ONNX exports shared by every area's tests (owner: zoo/export) ----------------
@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """`tiny_onnx(name, dtype="fp32") -> Path`: the zoo model's tiny config exported once per
    test session (per xdist worker) into a temporary directory, cached by (name, dtype).

    The file passed onnx.checker, strict shape inference and the export's graph checks; it is
    not re-verified against torch here (tests/export does that). Feed it with
    `tritonnx.zoo.get(name).example_inputs("tiny", batch=..., seq_len=...)`.
    """
    from tritonnx.export import export_model, file_name

    root = tmp_path_factory.mktemp("tiny_onnx")
    cache = {}

    def get(name: str, dtype: str = "fp32"):
        key = (name, dtype)
        if key not in cache:
            cache[key] = export_model(name, root / file_name(name, "tiny", dtype), config="tiny",
                                      dtype=dtype, verify=False).path
        return cache[key]

    return get


# ---- ONNX conformance counts (owner: runtime ops) ---------------------------------------------
# Printed at the end of every run that includes tests/runtime/test_conformance.py. It lives in
# the root conftest: under xdist the controller loads only this one, and the reports reach it.
_CONFORMANCE = "test_conformance.py::test_node["


def _conformance_outcomes(terminalreporter) -> dict[str, tuple[str, str | None]]:
    """case name -> (tritonnx's outcome, onnxruntime's: "passed"/"failed", None if not run)."""
    outcomes: dict[str, tuple[str, str | None]] = {}
    for outcome in ("passed", "skipped", "failed"):
        for rep in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(rep, "nodeid", "")
            if _CONFORMANCE not in nodeid or getattr(rep, "when", "call") not in ("call", "setup"):
                continue
            if outcome == "passed" and rep.when != "call":
                continue
            ort = dict(getattr(rep, "user_properties", ()) or ()).get("onnxruntime")
            outcomes[nodeid.split(_CONFORMANCE, 1)[1].rstrip("]")] = (outcome, ort)
    return outcomes


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    outcomes = _conformance_outcomes(terminalreporter)
    if not outcomes:
        return
    ours = {k: sum(1 for o, _ in outcomes.values() if o == k) for k in ("passed", "skipped", "failed")}
    ort = {k: sum(1 for _, o in outcomes.values() if o == k) for k in ("passed", "failed")}
    only_ort = sorted(n for n, (o, r) in outcomes.items() if r == "passed" and o != "passed")
    only_ours = sorted(n for n, (o, r) in outcomes.items() if r == "failed" and o == "passed")
    write = terminalreporter.write_line
    terminalreporter.write_sep("=", "ONNX conformance (onnx backend node tests)")
    write(f"tritonnx: passed {ours['passed']} / skipped {ours['skipped']} / failed {ours['failed']} / "
          f"total {len(outcomes)}")
    write(f"onnxruntime (CPU): passed {ort['passed']} / failed {ort['failed']}")
    write(f"onnxruntime passes and tritonnx does not: {len(only_ort)} (each skipped with its reason, or failed)"
          + (f": {', '.join(only_ort)}" if only_ort else ""))
    write(f"tritonnx passes and onnxruntime does not: {len(only_ours)}")
