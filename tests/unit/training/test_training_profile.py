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


def test_infinities_are_counted_apart_and_the_profile_stays_strict_json(tmp_path) -> None:
    # The core counts +inf and -inf in a slot of their own: the profile must not bin them.
    values = np.concatenate([np.arange(90, dtype=np.float64), [np.inf] * 6, [-np.inf] * 2])
    values = np.concatenate([values, [np.nan] * 2])
    p = numeric_profile(values, bins=10)
    finite = np.arange(90, dtype=np.float64)
    assert (p["nan_fraction"], p["inf_fraction"]) == (pytest.approx(0.02), pytest.approx(0.08))
    assert (p["min"], p["max"]) == (0.0, 89.0)
    assert p["mean"] == pytest.approx(finite.mean()) and p["std"] == pytest.approx(finite.std())
    assert p["bin_edges"] == pytest.approx(list(np.quantile(finite, np.linspace(0, 1, 11))))
    assert sum(p["bin_proportions"]) == pytest.approx(1.0)
    assert max(p["bin_proportions"]) - min(p["bin_proportions"]) < 0.03  # finite values only
    only_inf = numeric_profile(np.array([np.inf, -np.inf, np.nan]))
    assert (only_inf["inf_fraction"], only_inf["nan_fraction"]) == (
        pytest.approx(2 / 3),
        pytest.approx(1 / 3),
    )
    assert [only_inf[k] for k in ("mean", "std", "min", "max")] == [None] * 4
    assert (only_inf["bin_edges"], only_inf["bin_proportions"]) == ([], [])
    frame = pd.DataFrame({"a": values, "b": np.where(np.isfinite(values), 1.0, np.inf)})
    profile = profile_frame(frame, ["a", "b"], [])
    assert load_profile(save_profile(profile, tmp_path / "p.json")) == profile  # strict JSON


def test_constant_and_empty_numeric_columns() -> None:
    constant = numeric_profile(np.full(20, 3.0))
    # 3.0 in a bin of its own, between empty bins below and above: any other value shows.
    edges = constant["bin_edges"]
    assert edges[1:-1] == [3.0, float(np.nextafter(3.0, np.inf))]
    assert edges[0] < 3.0 < edges[-1] and constant["bin_proportions"] == [0.0, 1.0, 0.0]
    assert assign_bins(edges, np.array([-1e30, 2.999, 3.0, 3.001, 1000.0])).tolist() == [
        0,
        0,
        1,
        2,
        2,
    ]
    zero = numeric_profile(np.zeros(5))
    assert assign_bins(zero["bin_edges"], np.array([-1e-30, -0.0, 0.0, 1e-30])).tolist() == [
        0,
        1,
        1,
        2,
    ]
    empty = numeric_profile(np.full(4, np.nan))
    assert empty["nan_fraction"] == 1.0 and empty["mean"] is None and empty["bin_edges"] == []


def test_few_distinct_values_have_a_bin_each() -> None:
    rng = np.random.default_rng(0)
    flag = (rng.random(10_000) < 0.3).astype(np.float64)
    p = numeric_profile(flag, bins=10)
    assert p["bin_edges"][1:-1] == [0.0, 0.5, float(np.nextafter(1.0, np.inf))]
    assert p["bin_proportions"] == pytest.approx([0.0, 1 - flag.mean(), flag.mean(), 0.0])
    assert assign_bins(p["bin_edges"], np.array([-1.0, 0.0, 0.4, 0.6, 1.0, 1.5])).tolist() == [
        0,
        1,
        1,
        2,
        2,
        3,
    ]
    # Four counts, more distinct values than bins / 2: still a bin per value (2 and 3 apart).
    kids = numeric_profile(rng.integers(0, 4, 1000).astype(np.float64), bins=4)
    assert kids["bin_edges"][1:-1] == [0.0, 0.5, 1.5, 2.5, float(np.nextafter(3.0, np.inf))]
    assert len(kids["bin_proportions"]) == 6 and kids["bin_proportions"][0] == 0.0


def test_value_bins_hold_the_float32_rounding_of_each_value() -> None:
    """A float64 training value reaches the core as a float32 in a float32 tensor: it must
    land in the same bin (the diabetes data's ``sex`` column, -0.0446 / 0.0507)."""
    values = np.array([-0.044641636506989, 0.0506801187398187] * 50)
    p = numeric_profile(values)
    as_float64 = assign_bins(p["bin_edges"], values[:2])
    as_float32 = assign_bins(p["bin_edges"], values[:2].astype(np.float32).astype(np.float64))
    assert as_float64.tolist() == as_float32.tolist() == [1, 2]
    assert p["bin_proportions"] == [0.0, 0.5, 0.5, 0.0]
    # The bins hold the float32 numbers bracketing each value; the next ones out are outside.
    lo, hi = p["bin_edges"][1], p["bin_edges"][-2]
    below = np.nextafter(np.float32(lo), np.float32(-1))
    above = np.nextafter(np.float32(np.nextafter(hi, -1.0)), np.float32(1))
    assert assign_bins(p["bin_edges"], np.array([below, above], np.float64)).tolist() == [0, 3]


def test_a_point_mass_among_many_values_has_its_own_bin() -> None:
    rng = np.random.default_rng(1)
    values = np.where(rng.random(10_000) < 0.6, 0.0, rng.exponential(1.0, 10_000))
    p = numeric_profile(values, bins=10)
    edges = p["bin_edges"]
    tiny = float(np.finfo(np.float64).tiny)
    assert edges[1:3] == [0.0, tiny] and edges[0] < 0.0  # below 0 | exactly 0 | above
    assert p["bin_proportions"][0] == 0.0
    assert p["bin_proportions"][1] == pytest.approx(np.mean(values == 0.0))
    assert sum(p["bin_proportions"]) == pytest.approx(1.0)
    assert np.all(np.diff(edges) > 0)
    # Quantile bins above the mass, as before: the 70%, 80% and 90% quantiles are edges.
    for q in np.quantile(values, np.linspace(0.0, 1.0, 11))[7:10]:
        assert float(q) in edges


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
