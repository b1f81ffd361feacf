"""The benchmark harness behind `tritonnx bench` (DESIGN.md, "Benchmark rules").

Modules: `devices` (peak FLOP/s and bandwidth per GPU, roofline fractions), `stats` (quantiles,
agreement), `counting` (FLOPs and minimal bytes from an ONNX graph), `ort` (onnxruntime at its
best on torch tensors), `providers` (tritonnx fused/unfused, onnxruntime, torch eager,
torch.compile), `harness` (the sweep: order, resume, time budget), `report` (table, markdown,
CSV, JSON, PNG), `environment` (what a result set records), `kernels/` (kernel benchmarks).
Nothing here touches the GPU at import.
"""
