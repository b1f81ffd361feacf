"""onnxruntime's module path for its exceptions (``onnxruntime.capi.onnxruntime_pybind11_state``),
so ``except`` clauses written for onnxruntime port with the import swap."""
