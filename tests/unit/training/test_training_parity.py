"""Every model family, both tasks: the exported model, run by the engine on held-out rows,
matches the framework's own predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine.training.datasets import TabularDataset
from engine.training.export_options import ExportOptions
from engine.training.families import SKLEARN_FAMILIES
from engine.training.pipeline import TrainedModel, evaluate, export_trained, train_tabular
from engine.training.torch_mlp import TorchTrainParams

import engine
from engine.config import ModelConfig


def _engine_predict(path: Path, frame) -> dict[str, np.ndarray]:
    """Run the artifact the way a batch job would: one [rows, 1] tensor per column."""
    feeds = {}
    for column in frame.columns:
        values = frame[column]
        if values.dtype.kind == "f":
            feeds[column] = values.to_numpy(np.float32).reshape(-1, 1)
        else:
            feeds[column] = np.array([str(v) for v in values], dtype=object).reshape(-1, 1)
    config = ModelConfig(batching=False, max_batch_size=len(frame))
    with engine.load(path, config=config) as model:
        return model.predict(feeds)


def _check_held_out(trained: TrainedModel, valid: TabularDataset, path: Path) -> None:
    got = _engine_predict(path, valid.features)
    if trained.task == "classification":
        np.testing.assert_allclose(
            got["probabilities"], trained.model.predict_proba(valid.features), atol=1e-4
        )
        agree = np.mean(got["label"] == trained.model.predict(valid.features))
        assert agree >= 0.99  # ties at p=0.5 may round either way in float32
    else:
        np.testing.assert_allclose(
            got["variable"].reshape(-1), trained.model.predict(valid.features), rtol=1e-3, atol=1e-3
        )


# Small models keep the suite fast; parity does not depend on model size.
_SMALL = {
    "mlp": {"max_iter": 30},
    "hist_gradient_boosting": {"max_iter": 20},
    "random_forest": {"n_estimators": 10},
}


@pytest.mark.parametrize("family", SKLEARN_FAMILIES)
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_sklearn_family_parity_on_held_out_rows(family, task, customers, houses, tmp_path) -> None:
    train, valid = customers if task == "classification" else houses
    trained = train_tabular(train, family, seed=0, sklearn_params=_SMALL.get(family))
    result = export_trained(trained, valid, tmp_path / "m.onnx")
    assert result.parity.passed and result.parity.rows == len(valid.target)
    assert result.parity.max_abs_error < 1e-3
    assert [t.name for t in result.inputs] == valid.columns
    assert {t.dtype for t in result.inputs} == {"float32", "string"}
    assert all(t.shape[0] == -1 for t in (*result.inputs, *result.outputs))
    _check_held_out(trained, valid, tmp_path / "m.onnx")
    metrics = evaluate(trained, valid)
    if task == "classification":
        assert set(metrics) == {"accuracy", "auc", "log_loss"} and metrics["auc"] > 0.7
    else:
        assert set(metrics) == {"rmse", "mae", "r2"} and metrics["r2"] > 0.5


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_torch_mlp_family_parity_on_held_out_rows(task, customers, houses, tmp_path) -> None:
    train, valid = customers if task == "classification" else houses
    trained = train_tabular(train, "torch_mlp", seed=0, torch_params=TorchTrainParams(epochs=5))
    result = export_trained(trained, valid, tmp_path / "m.onnx")
    assert result.framework == "torch" and result.parity.passed
    assert [t.name for t in result.inputs] == valid.columns
    _check_held_out(trained, valid, tmp_path / "m.onnx")


def test_torch_training_is_repeatable(customers) -> None:
    train, valid = customers
    params = TorchTrainParams(epochs=2)
    a = train_tabular(train, "torch_mlp", seed=7, torch_params=params).model
    b = train_tabular(train, "torch_mlp", seed=7, torch_params=params).model
    np.testing.assert_array_equal(a.predict_proba(valid.features), b.predict_proba(valid.features))


def test_fixed_batch_export_has_the_sample_batch(customers, tmp_path) -> None:
    train, valid = customers
    trained = train_tabular(train, "linear", seed=0)
    result = export_trained(trained, valid, tmp_path / "m.onnx", ExportOptions(dynamic_batch=False))
    assert {t.shape[0] for t in result.inputs} == {len(valid.target)}


def test_torch_output_with_infinities_passes_parity(tmp_path) -> None:
    """log(|x|) of a sample holding a zero is -inf in torch and in the engine: equal
    infinities agree (inf - inf is NaN, which failed every tolerance before)."""
    import torch
    from engine.training.export_torch import export_torch
    from engine.training.samples import Sample

    class LogAbs(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.log(x.abs())

    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    x[3, 1] = 0.0
    result = export_torch(LogAbs(), Sample("s", arrays={"input": x}), tmp_path / "m.onnx")
    assert result.parity.passed and result.parity.outputs[0].elements == 48
    with engine.load(tmp_path / "m.onnx") as model:
        got = model.predict({"input": x})["output"]
    assert got[3, 1] == -np.inf and np.isfinite(np.delete(got.reshape(-1), 3 * 3 + 1)).all()


def test_every_output_is_compared_or_said_to_be_unchecked(tmp_path: Path) -> None:
    from engine.training.export_sklearn import export_sklearn
    from engine.training.samples import Sample
    from sklearn.cluster import KMeans
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.svm import LinearSVC

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 3))
    # KMeans' second output ("scores") is its transform(): compared, not just the labels.
    clusters = KMeans(3, n_init=2, random_state=0).fit(x)
    report = export_sklearn(clusters, Sample("s", arrays={"input": x}), tmp_path / "k.onnx").parity
    assert [o.name for o in report.outputs] == ["label", "scores"] and report.unchecked == ()
    # A classifier without predict_proba whose exported scores have no known layout against
    # its decision_function(): reported as not compared rather than as matching.
    ovr = OneVsRestClassifier(LinearSVC()).fit(x, np.digitize(x[:, 0], [-0.5, 0.5]))
    report = export_sklearn(ovr, Sample("s", arrays={"input": x}), tmp_path / "s.onnx").parity
    assert [o.name for o in report.outputs] == ["label"]
    assert report.unchecked == ("probabilities",)
    assert report.to_dict()["unchecked"] == ["probabilities"]
