"""The spec: JSON round trip, layout, and validation errors that name the place and the value."""

from __future__ import annotations

import copy
import json
from typing import Any

import numpy as np
import pytest
import transforms_gen as gen

from engine.errors import InvalidConfigError
from engine.transforms.fit import fit
from engine.transforms.spec import SCHEMA_VERSION, TransformSpec

BASE: dict[str, Any] = {
    "schema_version": 1,
    "inputs": [{"name": "age", "dtype": "float64"}, {"name": "city", "dtype": "string"},
               {"name": "dev", "dtype": "string"}],
    "features": [
        {"name": "age", "column": "age", "steps": [
            {"op": "impute", "strategy": "median", "value": 37.0},
            {"op": "standardize", "mean": 0.5, "std": 2.0}]},
        {"name": "age_b", "column": "age", "steps": [
            {"op": "bucketize", "boundaries": [18, 65], "encoding": "onehot"}]},
        {"name": "city", "column": "city", "steps": [
            {"op": "vocabulary", "vocabulary": ["paris", "rome"], "num_oov_buckets": 2}]},
        {"name": "x", "cross": ["city", "dev"], "num_buckets": 8, "encoding": "onehot"},
    ],
    "output": {"name": "features"},
}


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


def test_layout_and_width() -> None:
    spec = TransformSpec.from_dict(BASE)
    assert spec.layout() == [("age", 0, 1), ("age_b", 1, 4), ("city", 5, 4), ("x", 9, 8)]
    assert spec.width == 17


def test_json_round_trip_is_identity() -> None:
    spec = TransformSpec.from_dict(BASE)
    again = TransformSpec.from_json(spec.to_json())
    assert again == spec
    assert json.loads(again.to_json()) == json.loads(spec.to_json())
    assert json.loads(spec.to_json())["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize("seed", range(5))
def test_fitted_spec_round_trips_exactly(seed: int) -> None:
    rng = np.random.default_rng(seed)
    spec = fit(gen.frame(rng, 300, gen.INPUTS, unseen=False), gen.template(rng))
    again = TransformSpec.from_json(spec.to_json(indent=None))
    assert again == spec  # floats survive JSON bit for bit (repr round trip)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (["schema_version"], 2, "unsupported schema version 2"),
        (["inputs", 0, "dtype"], "float16", "input 'age': dtype must be one of"),
        (["inputs", 1, "name"], "age", "duplicate input column 'age'"),
        (["features", 0, "steps", 1, "std"], 0.0, "feature 'age' step 1 (standardize): std must be > 0; was 0.0"),
        (["features", 0, "steps", 1, "mean"], "1", "feature 'age' step 1 (standardize): mean must be a number; was '1'"),
        (["features", 0, "steps", 0, "strategy"], "mode", "strategy must be one of"),
        (["features", 0, "steps", 1, "op"], "normalize", "op must be one of"),
        (["features", 0, "steps", 1, "scale"], 3, "unknown field(s) ['scale']"),
        (["features", 0, "steps", 1, "std"], KeyError, "missing field(s) ['std']"),
        (["features", 1, "steps", 0, "boundaries"], [65, 18], "strictly increasing; 65.0 then 18.0"),
        (["features", 1, "steps", 0, "boundaries"], [], "boundaries must not be empty"),
        (["features", 1, "steps", 0, "encoding"], "dense", "encoding must be one of ['index', 'onehot']; was 'dense'"),
        (["features", 2, "steps", 0, "vocabulary"], ["a", "a"], "duplicate entry 'a'"),
        (["features", 2, "steps", 0, "num_oov_buckets"], -1, "num_oov_buckets must be an integer"),
        (["features", 2, "steps", 0, "seed"], 2**32, "seed must be an integer in [0, 4294967295]"),
        (["features", 2, "steps"], [{"op": "standardize", "mean": 0, "std": 1}],
         "feature 'city' step 0 (standardize): needs a numeric column but 'city' is a string column"),
        (["features", 2, "steps"], [], "string column 'city' must end in a vocabulary or hash step"),
        (["features", 0, "steps"], [{"op": "hash", "num_buckets": 3}],
         "feature 'age' step 0 (hash): needs a string column but 'age' is a float64 column"),
        (["features", 1, "steps"], [{"op": "bucketize", "boundaries": [1]}, {"op": "log1p"}],
         "feature 'age_b' step 0 (bucketize): bucketize produces an index and must be the last step"),
        (["features", 2, "column"], "town", "feature 'city': column 'town' is not a declared input"),
        (["features", 3, "cross"], ["city"], "a cross needs at least two columns"),
        (["features", 3, "cross"], ["city", "age"], "cross columns must be string columns; 'age' is float64"),
        (["features", 3, "num_buckets"], 0, "feature 'x': num_buckets must be an integer in [1, "),
        (["features", 3, "name"], "age", "feature 'age': duplicate feature name"),
        (["features", 0, "steps", 0, "value"], float("nan"), "value must be finite; was nan"),
        (["output", "name"], "age", "clashes with an input column"),
    ],
)
def test_invalid_spec_errors_name_the_place_and_value(path: list[Any], value: Any, fragment: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        TransformSpec.from_dict(mutate(path, value))
    assert fragment in str(info.value)


def test_string_impute_rules() -> None:
    bad = mutate(["features", 2, "steps"], [
        {"op": "impute", "strategy": "mean", "value": "x"},
        {"op": "hash", "num_buckets": 3}])
    with pytest.raises(InvalidConfigError, match="a string column can only impute with"):
        TransformSpec.from_dict(bad)
    bad["features"][2]["steps"][0] = {"op": "impute", "strategy": "constant", "value": 1.0}
    with pytest.raises(InvalidConfigError, match="value must be a string for a string column"):
        TransformSpec.from_dict(bad)


def test_bad_json_text() -> None:
    with pytest.raises(InvalidConfigError, match="not valid JSON"):
        TransformSpec.from_json("{")
    with pytest.raises(InvalidConfigError, match="top level: must be an object; was list"):
        TransformSpec.from_json("[]")
