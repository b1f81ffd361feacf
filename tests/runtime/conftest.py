"""tests/runtime hooks: the ONNX conformance counts (passed / skipped / failed / total) printed
at the end of every run that includes tests/runtime/test_conformance.py (xdist included: the
reports reach the controller)."""
from __future__ import annotations

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
