"""The core's live drift histograms and prediction sampling, seen from Python."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine.errors import InvalidConfigError


def test_drift_counts_match_numpy(mlp_path: Path) -> None:
    edges = [-1.0, 0.0, 1.0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 32)).astype(np.float32)
    x[::50, 3] = np.nan
    x[::70, 3] = np.inf
    with engine.load(mlp_path) as model:
        model.core.set_drift_bins([
            {"name": "x3", "tensor": "x", "column": 3, "kind": "numeric", "edges": edges},
            {"name": "y", "tensor": "y", "column": 0, "kind": "numeric", "edges": [0.0]},
        ])
        futures = [model.submit(x[i:i + 5]) for i in range(0, 500, 5)]
        y = np.concatenate([f.result()["y"] for f in futures])
        counts = model.core.drift_counts()
    assert counts["x3"] == expected_counts(x[:, 3], edges)
    assert counts["y"] == expected_counts(y[:, 0], [0.0])
    assert counts["y"][2] > 0  # NaN inputs made NaN predictions, counted apart


def expected_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    col = values.astype(np.float64)
    finite = col[np.isfinite(col)]
    bins = np.searchsorted(edges, finite, side="right")
    counts = np.bincount(bins, minlength=len(edges) + 1).tolist()
    return counts + [int(np.isnan(col).sum()), int(np.isinf(col).sum())]


def test_bad_drift_feature_is_a_config_error(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        with pytest.raises(InvalidConfigError, match="drift feature 'f': no input or output named 'z'"):
            model.core.set_drift_bins([{"name": "f", "tensor": "z", "kind": "numeric",
                                        "edges": [0.0]}])
        with pytest.raises(InvalidConfigError, match="kind must be"):
            model.core.set_drift_bins([{"name": "f", "tensor": "x", "kind": "other"}])


def test_sampling_rate_and_bounded_buffer(mlp_path: Path) -> None:
    with engine.load(mlp_path) as model:
        model.core.set_sampling(0.25, 100_000)
        x = np.ones((1, 32), np.float32)
        for _ in range(4000):
            model.predict(x)
        samples = model.core.take_samples(100_000)
        # Binomial(4000, 0.25): mean 1000, sd ~27; 6 sd either way.
        assert 840 < len(samples) < 1160
        first = samples[0]
        np.testing.assert_array_equal(first["inputs"]["x"], x)
        assert first["outputs"]["y"].shape == (1, 1)
        assert first["total_us"] >= 0 and first["timestamp_ms"] > 0
        model.core.set_sampling(1.0, 10)
        for _ in range(25):
            model.predict(x)
        assert len(model.core.take_samples(1000)) == 10
        assert model.core.stats()["samples_dropped"] == 15
        with pytest.raises(InvalidConfigError, match="sampling rate must be in"):
            model.core.set_sampling(1.5, 10)
