from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from engine.training.profile import (
    assign_bins,
    categorical_profile,
    load_profile,
    numeric_profile,
    profile_array,
    profile_frame,
    profile_outputs,
    save_profile,
)


def test_numeric_profile_statistics_and_quantile_bins() -> None:
    values = np.arange(100, dtype=np.float64)
    values[:5] = np.nan
    p = numeric_profile(values, bins=10)
    finite = values[5:]
    assert p["kind"] == "numeric" and p["count"] == 100
    assert p["nan_fraction"] == pytest.approx(0.05)
    assert p["mean"] == pytest.approx(finite.mean())
    assert p["std"] == pytest.approx(finite.std())
    assert (p["min"], p["max"]) == (5.0, 99.0)
    assert len(p["bin_edges"]) == 11
    assert p["bin_edges"] == pytest.approx(list(np.quantile(finite, np.linspace(0, 1, 11))))
    assert len(p["bin_proportions"]) == 10
    assert sum(p["bin_proportions"]) == pytest.approx(1.0)
    assert max(p["bin_proportions"]) - min(p["bin_proportions"]) < 0.03  # quantile bins


def test_constant_and_empty_numeric_columns() -> None:
    constant = numeric_profile(np.full(20, 3.0))
    assert constant["bin_edges"] == [3.0, 3.0] and constant["bin_proportions"] == [1.0]
    empty = numeric_profile(np.full(4, np.nan))
    assert empty["nan_fraction"] == 1.0 and empty["mean"] is None and empty["bin_edges"] == []


def test_assign_bins_outer_bins_are_open_ended() -> None:
    edges = [0.0, 1.0, 2.0, 3.0]
    got = assign_bins(edges, np.array([-5.0, 0.0, 0.5, 1.0, 2.9, 3.0, 100.0]))
    assert got.tolist() == [0, 0, 0, 1, 2, 2, 2]


def test_categorical_top_k_with_other_and_missing() -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 1 + ["d"] * 1 + [None, float("nan")]
    p = categorical_profile(values, top_k=2)
    assert p["categories"] == ["a", "b"]
    assert p["proportions"] == pytest.approx([0.5, 0.3])
    assert p["other_proportion"] == pytest.approx(0.2)
    assert p["missing_fraction"] == pytest.approx(2 / 12)
    assert p["distinct"] == 4


def test_categorical_ties_are_ordered_by_value() -> None:
    assert categorical_profile(["z", "y", "x"])["categories"] == ["x", "y", "z"]


def test_profile_frame_is_strict_json_and_round_trips(tmp_path, customers) -> None:
    train, _ = customers
    profile = profile_frame(train.features, train.numeric, train.categorical)
    assert profile["schema_version"] == 1 and profile["row_count"] == len(train.target)
    assert set(profile["features"]) == set(train.columns)
    assert profile["features"]["balance"]["nan_fraction"] > 0
    assert profile["features"]["region"]["kind"] == "categorical"
    json.dumps(profile, allow_nan=False)  # raises on NaN
    assert load_profile(save_profile(profile, tmp_path / "p.json")) == profile


def test_profile_frame_names_missing_columns() -> None:
    with pytest.raises(ValueError, match=r"columns \['nope'\] are not in the frame"):
        profile_frame(pd.DataFrame({"a": [1.0]}), ["nope"], [])


def test_profile_array_names_columns() -> None:
    profile = profile_array(np.ones((3, 2)), ["u", "v"])
    assert list(profile["features"]) == ["u", "v"]


def test_profile_outputs_keys_columns_like_the_monitor_reads_them() -> None:
    section = profile_outputs(
        {
            "label": np.array([0, 1, 1]),
            "probabilities": np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]], np.float32),
            "variable": np.array([[1.0], [2.0], [3.0]]),
        }
    )
    assert set(section) == {"label", "probabilities[0]", "probabilities[1]", "variable"}
    assert section["label"]["categories"] == ["1", "0"]
    assert section["variable"]["kind"] == "numeric" and section["variable"]["max"] == 3.0
    with pytest.raises(ValueError, match="cannot profile output 'x'"):
        profile_outputs({"x": np.zeros((2, 2, 2))})
