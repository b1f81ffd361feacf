"""Classic-ML models converted by skl2onnx (scikit-learn and skl2onnx are test-only dependencies,
the `ml` extra): a scaler + random-forest pipeline, a logistic regression with ZipMap (a list of
dicts, as onnxruntime returns it) and a gradient-boosted regressor, on tiny data built here, run
in tritonnx and in onnxruntime (CPU) and compared."""
from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")

from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from skl2onnx import to_onnx  # noqa: E402

from tritonnx.runtime import InferenceSession  # noqa: E402

N_TRAIN, N_TEST, FEATURES = 60, 17, 4


def _data(classes: int | None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_TRAIN + N_TEST, FEATURES)).astype(np.float32) + 0.1
    if classes is None:
        y = x @ rng.normal(size=FEATURES) + 0.3 * np.sin(3 * x[:, 0])
    else:
        y = (np.digitize(x[:, 0] + 0.5 * x[:, 1], np.linspace(-1, 1, classes - 1))).astype(np.int64)
    return x[:N_TRAIN], y[:N_TRAIN], x[N_TRAIN:]


def _both(model, x_test, **options):
    onx = to_onnx(model, x_test[:1], target_opset={"": 17, "ai.onnx.ml": 3}, options=options or None)
    data = onx.SerializeToString()
    ours = InferenceSession(data, providers=["CPUExecutionProvider"])
    theirs = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feed = {ours.get_inputs()[0].name: x_test}
    return ours, ours.run(None, feed), theirs.run(None, feed)


@pytest.mark.parametrize("classes", [2, 3], ids=["binary", "three_classes"])
def test_scaler_random_forest_pipeline(classes):
    x, y, x_test = _data(classes)
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0))
    model.fit(x, y)
    _, (label, proba), (ort_label, ort_proba) = _both(model, x_test, zipmap=False)
    np.testing.assert_array_equal(label, ort_label)
    np.testing.assert_allclose(proba, ort_proba, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(label, model.predict(x_test))


def test_logistic_regression_zipmap():
    x, y, x_test = _data(3)
    model = LogisticRegression(max_iter=200).fit(x, y)
    sess, (label, proba), (ort_label, ort_proba) = _both(model, x_test)
    np.testing.assert_array_equal(label, ort_label)
    assert isinstance(proba, list) and len(proba) == N_TEST and all(isinstance(d, dict) for d in proba)
    assert [sorted(d) for d in proba] == [sorted(d) for d in ort_proba]
    for ours, theirs in zip(proba, ort_proba):
        np.testing.assert_allclose([ours[k] for k in sorted(ours)], [theirs[k] for k in sorted(theirs)],
                                   rtol=1e-5, atol=1e-6)
    assert sess.get_outputs()[1].type == "seq(map(int64,tensor(float)))"


def test_gradient_boosting_regressor():
    x, y, x_test = _data(None)
    model = GradientBoostingRegressor(n_estimators=8, max_depth=3, random_state=0).fit(x, y)
    _, (pred,), (ort_pred,) = _both(model, x_test)
    np.testing.assert_allclose(pred, ort_pred, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pred.reshape(-1), model.predict(x_test), rtol=1e-4, atol=1e-4)
