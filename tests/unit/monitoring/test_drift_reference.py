"""Training profile -> drift bins and reference proportions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine.training.profile import assign_bins, categorical_profile, profile_array, profile_frame
from monitoring_scenario import OUTPUTS, SIGNATURE, Signature

from engine.errors import InvalidConfigError
from engine.monitoring.bins import bin_counts, canonical_category, parse_features, value_span
from engine.monitoring.reference import (
    DriftReference,
    drift_reference,
    features_from_profile,
    reference_proportions,
)
from engine.signature import TensorSpec


def test_scenario_reference(reference: DriftReference, profile: dict[str, Any]) -> None:
    by_name = {f.name: f for f in reference.features}
    assert list(by_name) == ["a", "b", "c", "region", "plan", "score"]
    assert (by_name["b"].tensor, by_name["b"].column) == ("x", 1)
    assert (by_name["region"].tensor, by_name["region"].column) == ("region", -1)
    assert (by_name["plan"].tensor, by_name["plan"].column) == ("plan", -1)
    assert (by_name["score"].tensor, by_name["score"].column) == ("score", -1)
    assert by_name["a"].edges == tuple(profile["features"]["a"]["bin_edges"][1:-1])
    assert by_name["region"].categories == ("north", "south", "east", "west")
    for f in reference.features:
        p = reference.proportions[f.name]
        assert p.shape == (f.slot_count,) and p.sum() == pytest.approx(1.0)


def test_core_binning_equals_the_profile_binning(
    profile: dict[str, Any], training: pd.DataFrame
) -> None:
    """bin_counts over the core's edges reproduces the profile's own bins of the same data."""
    features = parse_features(
        features_from_profile(
            profile,
            Signature(SIGNATURE, OUTPUTS),
            columns={"a": ("x", 0), "b": ("x", 1), "c": ("x", 2)},
        )
    )
    props = reference_proportions(profile, features)
    for f in features[:3]:
        values = training[f.name].to_numpy()
        mine = bin_counts(values, f)
        theirs = np.bincount(
            assign_bins(profile["features"][f.name]["bin_edges"], values), minlength=f.value_slots
        )
        assert mine[: f.value_slots].tolist() == theirs.tolist()
        assert mine[: f.value_slots] / mine.sum() == pytest.approx(props[f.name][:-2])


def test_nan_and_missing_fractions_land_in_their_slots() -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0, np.nan, 4.0], "k": ["a", "b", None, ""]})
    profile = profile_frame(frame, ["v"], ["k"], bins=2)
    signature = [("v", "float64", (-1, 1)), ("k", "string", (-1, 1))]
    ref = drift_reference(profile, signature)
    v, k = ref.proportions["v"], ref.proportions["k"]
    assert v.tolist() == pytest.approx([1 / 4, 2 / 4, 1 / 4, 0.0])  # bins, NaN, inf
    # The profile counts "" as a category; the contract counts it as missing.
    assert ref.features[1].categories == ("a", "b")
    assert k.tolist() == pytest.approx([1 / 4, 1 / 4, 0.0, 2 / 4])


def test_inf_fraction_lands_in_the_inf_slot() -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0, np.nan, 4.0, np.inf, -np.inf, 3.0, 5.0]})
    profile = profile_frame(frame, ["v"], [], bins=2)
    ref = drift_reference(profile, [("v", "float64", (-1, 1))])
    # Finite values in the value bins; NaN and +-inf in their own slots, as the core counts.
    assert ref.proportions["v"].tolist() == pytest.approx([2 / 8, 3 / 8, 1 / 8, 2 / 8])
    del profile["features"]["v"]["inf_fraction"]  # a profile made before the field: no inf
    old = drift_reference(profile, [("v", "float64", (-1, 1))])
    assert old.proportions["v"].tolist() == pytest.approx([2 / 5 * 7 / 8, 3 / 5 * 7 / 8, 1 / 8, 0])


def test_wide_tensor_from_profile_array_and_constant_column() -> None:
    data = np.column_stack([np.arange(100.0), np.full(100, 3.0)])
    profile = profile_array(data, bins=4)
    features = features_from_profile(profile, [TensorSpec("input", "float32", (-1, 2))])
    assert [(f["name"], f["tensor"], f["column"]) for f in features] == [
        ("x0", "input", 0),
        ("x1", "input", 1),
    ]
    # A constant feature: below 3 | exactly 3 | above 3, then NaN and inf.
    assert features[1]["edges"] == list(value_span(3.0))
    props = reference_proportions(profile, features)
    assert props["x1"] == [0.0, 1.0, 0.0, 0.0, 0.0]


def test_a_constant_feature_of_an_older_profile_gets_a_value_bin() -> None:
    """Profiles stored before value bins have ``[v, v]`` and one bin; they still load, and
    a change of the value shows."""
    profile = {
        "schema_version": 1,
        "row_count": 10,
        "features": {
            "c": {
                "kind": "numeric",
                "nan_fraction": 0.2,
                "bin_edges": [5.0, 5.0],
                "bin_proportions": [1.0],
            }
        },
    }
    ref = drift_reference(profile, [("c", "float32", (-1, 1))])
    assert ref.features[0].edges == value_span(5.0)
    assert ref.proportions["c"].tolist() == pytest.approx([0.0, 0.8, 0.0, 0.2, 0.0])


def test_indexed_names_and_numeric_coded_categories() -> None:
    profile = {
        "schema_version": 1,
        "features": {
            "x[1]": categorical_profile([1.0, 2.0, 2.0, 3.5]),
        },
    }
    features = features_from_profile(profile, [("x", "float32", (-1, 4))])
    assert features[0]["tensor"] == "x" and features[0]["column"] == 1
    assert features[0]["categories"] == ["2", "1", "3.5"]  # "2.0" -> "2", like the core
    assert reference_proportions(profile, features)["x[1]"] == pytest.approx(
        [0.5, 0.25, 0.25, 0.0, 0.0]
    )


def test_float_tensor_categories_are_the_values_the_tensor_holds() -> None:
    """Categories profiled from float64 data, read from a float32 (float16) tensor: named by
    the value that tensor holds, as the core names a served element."""
    profile = {
        "schema_version": 1,
        "features": {"c": categorical_profile([0.1, 0.5, 0.5, 2.0, 0.3, None])},
    }
    for dtype, narrow in (("float32", np.float32), ("float16", np.float16)):
        (feature,) = parse_features(features_from_profile(profile, [("c", dtype, (-1, 1))]))
        assert feature.categories == tuple(
            canonical_category(float(narrow(v))) for v in (0.5, 0.1, 0.3, 2.0)
        )
        served = np.array([0.1, 0.5, 0.5, 2.0, 0.3], dtype=narrow)
        assert bin_counts(served, feature).tolist() == [2, 1, 1, 1, 0, 0]  # none "other"
        assert reference_proportions(profile, [feature])["c"] == pytest.approx(
            [2 / 6, 1 / 6, 1 / 6, 1 / 6, 0.0, 1 / 6]
        )
    (as_float64,) = features_from_profile(profile, [("c", "float64", (-1, 1))])
    assert as_float64["categories"] == ["0.5", "0.1", "0.3", "2"]


def test_bool_categories_and_all_missing_categorical(caplog: pytest.LogCaptureFixture) -> None:
    frame = pd.DataFrame({"flag": [True, False, True], "empty": [None, None, None]})
    profile = profile_frame(frame, [], ["flag", "empty"])
    features = features_from_profile(
        profile, [("flag", "bool", (-1, 1)), ("empty", "string", (-1, 1))]
    )
    assert [f["name"] for f in features] == ["flag"]  # "empty" has nothing to compare
    assert "'empty' has no categories" in caplog.text
    assert features[0]["categories"] == ["1", "0"]  # the core counts booleans as 1 / 0
    assert reference_proportions(profile, features)["flag"] == pytest.approx(
        [2 / 3, 1 / 3, 0.0, 0.0]
    )


def test_unplaceable_features_name_the_tensors() -> None:
    profile = profile_array(np.zeros((10, 3)), names=["p", "q", "r"])
    with pytest.raises(InvalidConfigError) as info:
        features_from_profile(profile, [("a", "float32", (-1, 2)), ("b", "float32", (-1, 2))])
    assert "['p', 'q', 'r']" in str(info.value) and "pass columns=" in str(info.value)
    with pytest.raises(InvalidConfigError, match="holds strings"):
        features_from_profile(
            profile_array(np.zeros((5, 1)), names=["s"]), [("s", "string", (-1, 1))]
        )
    with pytest.raises(InvalidConfigError, match="out of range"):
        features_from_profile(
            profile,
            [("a", "float32", (-1, 2))],
            columns={"p": ("a", 0), "q": ("a", 1), "r": ("a", 2)},
        )


def test_reference_rejects_mismatched_proportions() -> None:
    with pytest.raises(InvalidConfigError, match="reference proportions need 4 values"):
        DriftReference.from_features(
            [{"name": "f", "tensor": "x", "column": -1, "kind": "numeric", "edges": [1.0]}],
            {"f": [1.0]},
        )


def test_reference_of_a_registry_version(profile: dict[str, Any]) -> None:
    from types import SimpleNamespace

    from engine.monitoring.reference import drift_reference_for_version

    version = SimpleNamespace(
        name="churn",
        version=3,
        params={"reference_profile": profile},
        inputs=SIGNATURE,
        outputs=OUTPUTS,
    )
    ref = drift_reference_for_version(
        version, columns={"a": ("x", 0), "b": ("x", 1), "c": ("x", 2)}
    )
    assert [f.name for f in ref.features] == ["a", "b", "c", "region", "plan", "score"]
    with pytest.raises(InvalidConfigError, match=r"churn:3 has no params\['reference_profile'\]"):
        drift_reference_for_version(SimpleNamespace(name="churn", version=3, params={}))
