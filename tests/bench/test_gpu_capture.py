"""Fused zoo models through the session with CUDA graphs on a real GPU (issue 20, item 4):
every input signature captured (none fell back to eager runs) and the outputs equal to
onnxruntime's on the same file. The CPU half of this check is
tests/runtime/test_capture_simulation.py (host syncs raising inside a simulated capture)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu

MODELS = ("lenet5", "resnet18", "char_lstm")


@pytest.mark.parametrize("model", MODELS)
def test_fused_zoo_model_captures_without_fallback(tmp_path, model):
    ort = pytest.importorskip("onnxruntime")
    import tritonnx.zoo
    from tritonnx import InferenceSession
    from tritonnx.export import export_model

    path = tmp_path / f"{model}.onnx"
    export_model(model, path, config="tiny", verify=False)
    sess = InferenceSession(str(path), providers=["CUDAExecutionProvider"], tf32=False)
    assert sess.fusion_report().fused, f"{model}: nothing fused"
    names = [i.name for i in sess.get_inputs()]
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        feeds = dict(zip(names, tritonnx.zoo.get(model).example_inputs("tiny", batch=batch, seed=batch)))
        want = ref.run(None, {k: v.numpy() for k, v in feeds.items()})
        for _ in range(2):  # capture, then replay
            got = sess.run_torch(None, {k: v.cuda() for k, v in feeds.items()})
            for g, w in zip(got, want):
                np.testing.assert_allclose(g.float().cpu().numpy(), w, rtol=2e-3, atol=2e-4)
    executor = sess._executor
    assert not executor.graph_fallbacks, f"{model}: eager fallbacks {executor.graph_fallbacks}"
    assert len(executor.captured_signatures) == 2
    torch.cuda.synchronize()
