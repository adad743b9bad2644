"""The reusable training pipeline: fit a model family on a split, evaluate it, export it.

``train_tabular`` -> :class:`TrainedModel`; ``evaluate`` gives the task's metrics on another
split; ``export_trained`` writes the validated ONNX artifact (parity measured on the sample it
is given, normally the held-out validation split).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from engine.training.datasets import TabularDataset
from engine.training.export_options import ExportOptions, ExportResult
from engine.training.families import (
    FAMILIES,
    SKLEARN_FAMILIES,
    build_sklearn_pipeline,
    describe_preprocessing,
)
from engine.training.metrics import classification_metrics, regression_metrics
from engine.training.samples import Sample
from engine.training.torch_mlp import TorchTrainParams

__all__ = ["TrainedModel", "evaluate", "export_trained", "train_tabular"]


@dataclass
class TrainedModel:
    """A fitted model of ``family``; ``params`` is the JSON-able record of how it was made and
    ``notes`` what the fit reported (e.g. that an optimiser stopped before converging)."""

    family: str
    framework: str  # "sklearn" or "torch"
    task: str
    model: Any  # a fitted sklearn Pipeline, or a TorchTabularModel
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def train_tabular(
    data: TabularDataset,
    family: str,
    seed: int = 0,
    *,
    sklearn_params: dict[str, Any] | None = None,
    torch_params: TorchTrainParams | None = None,
) -> TrainedModel:
    """Fit ``family`` on all of ``data`` (pass the training split) with a fixed seed."""
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {list(FAMILIES)}")
    params: dict[str, Any] = {
        "family": family,
        "seed": seed,
        "preprocessing": describe_preprocessing(data, family),
    }
    with warnings.catch_warnings(record=True) as caught:
        # Convergence warnings are results worth recording, not failures of the run.
        warnings.simplefilter("always", _convergence_warning())
        if family in SKLEARN_FAMILIES:
            model = build_sklearn_pipeline(family, data, seed, sklearn_params)
            model.fit(data.features, data.target)
            params["estimator"] = _json_safe(model.named_steps["model"].get_params(deep=False))
            framework = "sklearn"
        else:
            from engine.training.torch_mlp import train_torch_mlp

            torch_params = torch_params or TorchTrainParams()
            model = train_torch_mlp(data, seed, torch_params)
            params["estimator"] = torch_params.to_dict()
            framework = "torch"
    notes = [str(w.message) for w in caught if issubclass(w.category, _convergence_warning())]
    for w in caught:
        if not issubclass(w.category, _convergence_warning()):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return TrainedModel(family, framework, data.task, model, params, notes)


def evaluate(trained: TrainedModel, data: TabularDataset) -> dict[str, float]:
    """The task's metrics of ``trained`` on ``data`` (normally the validation split)."""
    if trained.task == "classification":
        proba = trained.model.predict_proba(data.features)
        classes = trained.model.classes if trained.framework == "torch" else trained.model.classes_
        return classification_metrics(data.target, proba, np.asarray(classes))
    return regression_metrics(data.target, trained.model.predict(data.features))


def export_trained(
    trained: TrainedModel,
    sample: TabularDataset,
    out: str | Path,
    options: ExportOptions | None = None,
) -> ExportResult:
    """Export to ``out`` and validate parity on ``sample``'s features."""
    table = Sample(f"{sample.name} ({len(sample.target)} rows)", table=sample.features)
    if trained.framework == "torch":
        from engine.training.export_tabular import export_tabular_torch

        return export_tabular_torch(trained.model, table, out, options)
    from engine.training.export_sklearn import export_sklearn

    return export_sklearn(trained.model, table, out, options)


def _convergence_warning() -> type[Warning]:
    from sklearn.exceptions import ConvergenceWarning

    category: type[Warning] = ConvergenceWarning
    return category


def _json_safe(params: dict[str, Any]) -> dict[str, Any]:
    # Estimator params may hold objects (e.g. a RandomState); record those by their repr.
    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            json.dumps(value, allow_nan=False)
            out[key] = value
        except (TypeError, ValueError):
            out[key] = repr(value)
    return out
