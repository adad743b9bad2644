"""scikit-learn model families behind one preprocessing step.

Every family is a ``Pipeline([("preprocess", ColumnTransformer), ("model", estimator)])``:
numeric columns are median-imputed then (except for tree families) standardised, categorical
columns one-hot encoded (unknown categories at serving time encode as all zeros). Trees get
no scaler: it would not change their splits, and ONNX computes it in float32 where scikit-learn
uses float64, which would let rows near a split threshold fall on the other side. The whole pipeline is what gets
exported, so the ONNX graph takes the raw columns, strings included. ``engine.transforms``
will take over the preprocessing later; until then scikit-learn's own encoders are used
because skl2onnx converts them.
"""

from __future__ import annotations

from typing import Any

from engine.training.datasets import TabularDataset, Task

__all__ = [
    "FAMILIES",
    "SKLEARN_FAMILIES",
    "TORCH_FAMILIES",
    "TREE_FAMILIES",
    "build_preprocessor",
    "build_sklearn_pipeline",
    "describe_preprocessing",
]

SKLEARN_FAMILIES = ("linear", "hist_gradient_boosting", "random_forest", "mlp")
TORCH_FAMILIES = ("torch_mlp",)
FAMILIES = SKLEARN_FAMILIES + TORCH_FAMILIES


TREE_FAMILIES = ("hist_gradient_boosting", "random_forest")


def build_preprocessor(
    numeric: tuple[str, ...], categorical: tuple[str, ...], scale: bool = True
) -> Any:
    """The ColumnTransformer of the families (dense output: every family accepts it)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if scale:
            steps.append(("scale", StandardScaler()))
        parts.append(("numeric", Pipeline(steps), list(numeric)))
    if categorical:
        parts.append(
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(categorical),
            )
        )
    return ColumnTransformer(parts, sparse_threshold=0.0)


def build_sklearn_pipeline(
    family: str, data: TabularDataset, seed: int, params: dict[str, Any] | None = None
) -> Any:
    """An unfitted pipeline of ``family`` for ``data``'s task; ``params`` override defaults."""
    from sklearn.pipeline import Pipeline

    estimator = _estimator(family, data.task, seed, params or {})
    scale = family not in TREE_FAMILIES
    return Pipeline(
        [
            ("preprocess", build_preprocessor(data.numeric, data.categorical, scale)),
            ("model", estimator),
        ]
    )


def describe_preprocessing(data: TabularDataset, family: str) -> dict[str, Any]:
    """The JSON-able summary of the preprocessing recorded in a version's parameters."""
    numeric_steps = ["impute_median"] + ([] if family in TREE_FAMILIES else ["standardize"])
    return {
        "numeric": {"columns": list(data.numeric), "steps": numeric_steps},
        "categorical": {
            "columns": list(data.categorical),
            "steps": ["one_hot(handle_unknown=ignore)"],
        },
    }


def _estimator(family: str, task: Task, seed: int, params: dict[str, Any]) -> Any:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    classification = task == "classification"
    # Defaults sized for demo data: seconds to train on a laptop core, not leaderboard scores.
    if family == "linear":
        # The linear family: logistic regression for classes, ridge for a continuous target.
        if classification:
            return LogisticRegression(max_iter=1000, **params)
        return Ridge(alpha=1.0, **params)
    if family == "hist_gradient_boosting":
        cls = HistGradientBoostingClassifier if classification else HistGradientBoostingRegressor
        return cls(**{"max_iter": 100, "random_state": seed, **params})
    if family == "random_forest":
        cls = RandomForestClassifier if classification else RandomForestRegressor
        return cls(
            **{"n_estimators": 50, "max_depth": 10, "random_state": seed, "n_jobs": 1, **params}
        )
    if family == "mlp":
        cls = MLPClassifier if classification else MLPRegressor
        # A larger step than the default 1e-3: unscaled regression targets (prices in the
        # hundreds) otherwise need thousands of epochs.
        return cls(
            **{
                "hidden_layer_sizes": (32, 16),
                "learning_rate_init": 0.01,
                "max_iter": 500,
                "early_stopping": True,
                "random_state": seed,
                **params,
            }
        )
    raise ValueError(
        f"unknown scikit-learn model family {family!r}; known: {list(SKLEARN_FAMILIES)}"
    )
