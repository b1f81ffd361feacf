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


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    counts = {"passed": 0, "skipped": 0, "failed": 0}
    for outcome in counts:
        for rep in terminalreporter.stats.get(outcome, []):
            if _CONFORMANCE in getattr(rep, "nodeid", "") and getattr(rep, "when", "call") in ("call", "setup"):
                if outcome == "passed" and rep.when != "call":
                    continue
                counts[outcome] += 1
    total = sum(counts.values())
    if total:
        terminalreporter.write_sep("=", "ONNX conformance (onnx backend node tests)")
        terminalreporter.write_line(
            f"passed {counts['passed']} / skipped {counts['skipped']} / failed {counts['failed']} / total {total}"
        )
