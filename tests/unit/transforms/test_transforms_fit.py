"""Fitting: the statistics each step learns, data formats, and fit-time errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import InvalidConfigError, InvalidInputError
from engine.transforms.fit import fit
from engine.transforms.reference import apply_reference
from engine.transforms.spec import Bucketize, Clip, Impute, Standardize, Vocabulary


def test_numeric_statistics_skip_nan_and_inf() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan, np.inf, 100.0])
    spec = fit({"x": x}, {
        "std": {"column": "x", "steps": [{"op": "standardize"}]},
        "mm": {"column": "x", "steps": [{"op": "min_max_scale"}]},
        "rb": {"column": "x", "steps": [{"op": "robust_scale"}]},
        "imp": {"column": "x", "steps": [{"op": "impute", "strategy": "median"},
                                         {"op": "standardize"}]},
    })
    finite = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    s = spec.features[0].steps[0]
    assert (s.mean, s.std) == (finite.mean(), finite.std())
    m = spec.features[1].steps[0]
    assert (m.min, m.max) == (1.0, 100.0)
    r = spec.features[2].steps[0]
    assert (r.median, r.iqr) == (3.0, 2.0)
    imp, after = spec.features[3].steps
    assert imp == Impute(strategy="median", value=3.0)
    # standardize is fitted on the imputed values: NaN became 3.0, inf stays out
    assert after == Standardize(mean=float(np.append(finite, 3.0).mean()),
                                std=float(np.append(finite, 3.0).std()))


def test_constant_column_gets_unit_scale() -> None:
    spec = fit({"x": np.full(10, 7.0)}, {"x": [{"op": "standardize"}]})
    assert spec.features[0].steps[0] == Standardize(mean=7.0, std=1.0)
    np.testing.assert_array_equal(apply_reference(spec, {"x": np.array([7.0, 8.0])})[:, 0], [0, 1])


def test_quantile_bucketize_and_clip() -> None:
    x = np.arange(100, dtype=np.float64)
    spec = fit({"x": x}, {"x": [{"op": "clip", "lower_quantile": 0.1, "upper_quantile": 0.9},
                                {"op": "bucketize", "num_quantiles": 4}]})
    clip, bucket = spec.features[0].steps
    assert clip == Clip(min=float(np.quantile(x, 0.1)), max=float(np.quantile(x, 0.9)))
    clipped = np.clip(x, clip.min, clip.max)
    assert bucket == Bucketize(tuple(float(q) for q in np.quantile(clipped, [0.25, 0.5, 0.75])))
    counts = np.bincount(apply_reference(spec, {"x": x})[:, 0].astype(int))
    assert counts.tolist() == [25, 25, 25, 25]


def test_vocabulary_order_limits_and_most_frequent() -> None:
    s = np.array(["b", "a", "c", "a", "b", "d", "", "", "", None], dtype=object)
    spec = fit({"s": s}, {
        "v": {"column": "s", "steps": [{"op": "vocabulary", "max_tokens": 2}]},
        "w": {"column": "s", "steps": [{"op": "vocabulary", "min_frequency": 2,
                                        "num_oov_buckets": 0, "encoding": "index"}]},
        "i": {"column": "s", "steps": [{"op": "impute", "strategy": "most_frequent"},
                                       {"op": "hash", "num_buckets": 4}]},
    })
    assert spec.features[0].steps[0] == Vocabulary(("a", "b"))
    assert spec.features[1].steps[0].vocabulary == ("a", "b")
    assert spec.features[2].steps[0] == Impute(strategy="most_frequent", value="a")


def test_numeric_most_frequent_takes_smallest_on_ties() -> None:
    spec = fit({"x": np.array([5.0, 2.0, 5.0, 2.0, np.nan])},
               {"x": [{"op": "impute", "strategy": "most_frequent"}]})
    assert spec.features[0].steps[0].value == 2.0


def test_dataframe_input_and_inferred_dtypes() -> None:
    df = pd.DataFrame({
        "f32": np.array([1, 2, 3], dtype=np.float32),
        "i": np.array([1, 2, 3], dtype=np.int64),
        "s": pd.Series(["a", None, "b"], dtype="string"),
        "o": ["x", "y", "x"],
    })
    spec = fit(df, {"f32": [{"op": "standardize"}], "i": [{"op": "min_max_scale"}],
                    "s": [{"op": "vocabulary"}], "o": [{"op": "hash", "num_buckets": 2}]})
    assert [(c.name, c.dtype) for c in spec.inputs] == [
        ("f32", "float32"), ("i", "int64"), ("s", "string"), ("o", "string")]
    np.testing.assert_array_equal(apply_reference(spec, df), apply_reference(spec, {
        k: df[k].to_numpy() for k in df.columns}))


def test_full_template_with_declared_inputs() -> None:
    template = {
        "schema_version": 1,
        "inputs": [{"name": "x", "dtype": "float32"}],
        "features": [{"name": "x", "column": "x", "steps": [{"op": "log1p"}]}],
        "output": {"name": "model_in"},
    }
    spec = fit({"x": np.arange(3.0)}, template)
    assert spec.inputs[0].dtype == "float32" and spec.output_name == "model_in"


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ({"x": [{"op": "bucketize"}]}, "give boundaries or num_quantiles >= 2; num_quantiles was None"),
        ({"x": [{"op": "impute", "strategy": "constant"}]}, "strategy 'constant' needs a value"),
        ({"x": [{"op": "clip", "lower_quantile": 1.5}]}, "lower_quantile must be in [0, 1]; was 1.5"),
        ({"x": [{"op": "standardize", "scale": 2}]}, "unknown field(s) ['scale']"),
        ({"x": ["standardize"]}, "feature 'x' step 0: a step must be an object"),
        ({"schema_version": 9, "features": []}, "unsupported 9"),
    ],
)
def test_fit_template_errors(template: dict, fragment: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        fit({"x": np.arange(5.0)}, template)
    assert fragment in str(info.value)


def test_fit_data_errors_name_the_column() -> None:
    with pytest.raises(InvalidInputError, match="missing input column 'y' in the training data"):
        fit({"x": np.arange(3.0)}, {"y": [{"op": "log1p"}]})
    with pytest.raises(InvalidConfigError, match="feature 'x' step 0 \\(standardize\\): no finite values"):
        fit({"x": np.array([np.nan, np.inf])}, {"x": [{"op": "standardize"}]})
    with pytest.raises(InvalidInputError, match="column 'x': cannot use dtype bool"):
        fit({"x": np.array([True, False])}, {"x": [{"op": "log1p"}]})
    with pytest.raises(InvalidInputError, match="the std of the training values overflows"):
        fit({"x": np.array([1e300, -1e300])}, {"x": [{"op": "standardize"}]})


@pytest.mark.parametrize(
    "values",
    [[1.0, None, 3.0], [1, None, 3], np.array([1.0, np.nan, 3], dtype=object),
     pd.Series([1.0, pd.NA, 3.0], dtype=object)],
    ids=["list", "int-list", "object-array", "object-series"],
)
def test_numbers_with_missing_values_are_a_numeric_column(values: object) -> None:
    spec = fit({"x": values}, {"x": [{"op": "impute", "strategy": "mean"}]})
    assert spec.inputs[0].dtype == "float64"
    assert spec.features[0].steps[0] == Impute(strategy="mean", value=2.0)
    np.testing.assert_array_equal(apply_reference(spec, {"x": values}), [[1.0], [2.0], [3.0]])


def test_object_columns_of_strings_or_nothing_stay_strings() -> None:
    spec = fit({"s": np.array(["a", None, "a"], dtype=object), "n": [None, None, None]},
               {"s": [{"op": "vocabulary"}], "n": [{"op": "hash", "num_buckets": 2}]})
    assert [c.dtype for c in spec.inputs] == ["string", "string"]


@pytest.mark.parametrize(
    ("data", "op", "fragment"),
    [
        (np.array(["x", "y"], dtype=object), {"op": "standardize"},
         "feature 'x' step 0 (standardize): needs a numeric column but 'x' is a string column"),
        (np.array(["x", "y"], dtype=object), {"op": "bucketize", "num_quantiles": 2},
         "(bucketize): needs a numeric column but 'x' is a string column"),
        (np.arange(2.0), {"op": "vocabulary"},
         "feature 'x' step 0 (vocabulary): needs a string column but 'x' is a numeric column"),
    ],
)
def test_a_step_on_the_wrong_kind_of_column_says_so(data: object, op: dict, fragment: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        fit({"x": data}, {"x": [op]})
    assert fragment in str(info.value)
    assert "missing field" not in str(info.value)
