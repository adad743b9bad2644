"""Evaluation metrics: accuracy/AUC/log-loss for classification, RMSE/MAE/R2 for regression.

Metrics are computed from the framework's own predictions on the validation split; all values
are plain floats so they can be stored as a registry version's metrics.
"""

from __future__ import annotations

import numpy as np

__all__ = ["classification_metrics", "regression_metrics"]


def classification_metrics(
    y_true: np.ndarray, probabilities: np.ndarray, classes: np.ndarray
) -> dict[str, float]:
    """``accuracy``, ``auc`` (one-vs-rest macro for more than two classes) and ``log_loss``.

    ``probabilities`` is ``[rows, len(classes)]`` in the order of ``classes``.
    """
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    probabilities = np.asarray(probabilities, dtype=np.float64)
    # float32 softmax rows sum to 1 only within ~1e-7, which log_loss rejects; renormalise.
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    predicted = np.asarray(classes)[np.argmax(probabilities, axis=1)]
    if len(classes) == 2:
        auc = roc_auc_score(y_true, probabilities[:, 1])
    else:
        auc = roc_auc_score(y_true, probabilities, multi_class="ovr", labels=classes)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "auc": float(auc),
        "log_loss": float(log_loss(y_true, probabilities, labels=classes)),
    }


def regression_metrics(y_true: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """``rmse``, ``mae`` and ``r2``."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    predicted = np.asarray(predicted, dtype=np.float64).reshape(-1)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, predicted))),
        "mae": float(mean_absolute_error(y_true, predicted)),
        "r2": float(r2_score(y_true, predicted)),
    }
