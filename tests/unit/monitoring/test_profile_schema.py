"""Malformed reference profiles are refused with InvalidConfigError naming the field (they
raised ValueError, TypeError or AttributeError from deep inside the parsing, which stopped
`engine serve --registry`); well-formed ones, old and new, pass."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from engine.training.profile import profile_array, profile_frame

from engine.errors import InvalidConfigError
from engine.monitoring.profile_schema import check_profile
from engine.monitoring.reference import drift_reference, reference_proportions

SIGNATURE = [("x", "float32", (-1, 2))]
WHERE = "profile['features']['x[0]']"


def numeric(**stats: Any) -> dict[str, Any]:
    return {"features": {"x[0]": {"kind": "numeric", **stats}}}


def categorical(**stats: Any) -> dict[str, Any]:
    return {"features": {"x[0]": {"kind": "categorical", **stats}}}


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (
            numeric(bin_edges=["x", 1, 2], bin_proportions=[0.5, 0.5]),
            f"{WHERE}['bin_edges'][0] must be a number; was str 'x'",
        ),
        ({"features": {"x[0]": 5}}, f"{WHERE} must be a mapping of statistics; was int 5"),
        (
            numeric(bin_edges=[0, 1, 2], bin_proportions=[0.5, "a"]),
            f"{WHERE}['bin_proportions'][1] must be a number; was str 'a'",
        ),
        (
            numeric(bin_edges=[0, None, 2], bin_proportions=[0.5, 0.5]),
            f"{WHERE}['bin_edges'][1] must be a number; was NoneType None",
        ),
        (
            categorical(categories=5, proportions=[1]),
            f"{WHERE}['categories'] must be a list; was int 5",
        ),
        (
            {"features": [1, 2]},
            "profile['features'] must be a mapping of feature name to statistics; was list",
        ),
        (
            numeric(bin_edges=[0, 1, 2], bin_proportions=[0.5, 0.5], nan_fraction="lots"),
            f"{WHERE}['nan_fraction'] must be a number; was str 'lots'",
        ),
        (
            numeric(bin_edges=[0, 2, 1, 3], bin_proportions=[0.3, 0.3, 0.4]),
            f"{WHERE}['bin_edges'] must not decrease; 1.0 at index 2 follows 2.0",
        ),
        (
            numeric(bin_edges=[0, 1, 2], bin_proportions=[0.5]),
            f"{WHERE}['bin_proportions'] needs 2 value(s), one per bin; got 1",
        ),
        (
            numeric(bin_edges=[0, 1, 2], bin_proportions=[1.5, -0.5]),
            f"{WHERE}['bin_proportions'][1] must be a finite number >= 0; was -0.5",
        ),
        (
            numeric(bin_edges=[0, 1, 2], bin_proportions=[0.5, 0.5], nan_fraction=1.5),
            f"{WHERE}['nan_fraction'] must be in [0, 1]; was 1.5",
        ),
        (
            numeric(bin_edges=[0, 1, 2], bin_proportions=[0.5, 0.5], inf_fraction=2),
            f"{WHERE}['inf_fraction'] must be in [0, 1]; was 2",
        ),
        (
            numeric(bin_edges=[0, 1], bin_proportions=[1.0], nan_fraction=0.5, inf_fraction=0.75),
            f"{WHERE}: nan_fraction + inf_fraction must be <= 1; were 0.5 and 0.75",
        ),
        (
            numeric(bin_edges=[True, 2], bin_proportions=[1.0]),
            f"{WHERE}['bin_edges'][0] must be a number; was bool True",
        ),
        (
            numeric(bin_edges=[1.0], bin_proportions=[]),
            f"{WHERE}['bin_edges'] needs no values or at least 2",
        ),
        (
            numeric(bin_edges="0,1", bin_proportions=[1.0]),
            f"{WHERE}['bin_edges'] must be a list; was str '0,1'",
        ),
        (
            categorical(categories=["a", None], proportions=[0.5, 0.5]),
            f"{WHERE}['categories'][1] must be a string; was NoneType None",
        ),
        (
            categorical(categories=["a"], proportions=[1.0], other_proportion="x"),
            f"{WHERE}['other_proportion'] must be a number; was str 'x'",
        ),
        (
            categorical(categories=["a"], proportions=[1.0], missing_fraction=-0.1),
            f"{WHERE}['missing_fraction'] must be in [0, 1]; was -0.1",
        ),
        ({"features": {"x[0]": {"kind": "ordinal"}}}, f"{WHERE}['kind'] is 'ordinal'"),
        ({"outputs": {"y": []}}, "profile['outputs']['y'] must be a mapping of statistics"),
    ],
)
def test_malformed_profiles_are_refused_naming_the_field(
    profile: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        drift_reference(profile, SIGNATURE)
    assert message in str(info.value)
    with pytest.raises(InvalidConfigError):
        reference_proportions(profile, [])


def test_a_profile_that_is_not_a_mapping_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="the reference profile must be a mapping"):
        check_profile([1, 2])


def test_well_formed_profiles_pass() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, 500),
            "flag": rng.integers(0, 2, 500).astype(float),
            "const": np.full(500, 3.0),
            "empty": np.full(500, np.nan),
            "city": rng.choice(["a", "b", "c"], 500),
        }
    )
    check_profile(profile_frame(frame, ["age", "flag", "const", "empty"], ["city"]))
    check_profile(profile_array(rng.normal(size=(100, 3))))
    # Written by an older release (one bin for a constant), with extra fields of any kind,
    # numpy numbers, and numbers as categories.
    check_profile(
        {
            "schema_version": 1,
            "something_new": {"a": [1, "b"]},
            "features": {
                "c": {"kind": "numeric", "bin_edges": [5.0, 5.0], "bin_proportions": [1.0]},
                "n": {
                    "kind": "numeric",
                    "bin_edges": [np.float32(0), np.int64(1), float("inf")],
                    "bin_proportions": [np.float64(0.5), 0.5],
                    "nan_fraction": None,
                    "extra": "ignored",
                },
                "k": {"kind": "categorical", "categories": [1, 2.5, "x", True],
                      "proportions": [0.25] * 4},
                "none": {"kind": "categorical", "categories": [], "proportions": []},
            },
            "outputs": None,
        }
    )  # fmt: skip
