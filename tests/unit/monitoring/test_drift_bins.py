"""The drift-bin contract: slot layout of bin_counts (the oracle for the core) and validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.errors import InvalidConfigError
from engine.monitoring.bins import (
    FeatureBins,
    NumpyDriftCounter,
    bin_counts,
    canonical_category,
    parse_features,
    select_column,
    slot_labels,
    value_span,
)

NUM = FeatureBins("f", "x", -1, "numeric", edges=(0.0, 1.0, 2.5))
CAT = FeatureBins("g", "s", -1, "categorical", categories=("a", "b", "7"))


def slot_by_definition(v: float, edges: tuple[float, ...]) -> int:
    """The contract's words, element by element."""
    k = len(edges)
    if math.isnan(v):
        return k + 1
    if math.isinf(v):
        return k + 2
    if k == 0 or v < edges[0]:
        return 0
    for i in range(1, k):
        if edges[i - 1] <= v < edges[i]:
            return i
    return k


def test_numeric_layout_edges_belong_to_the_bin_on_their_right() -> None:
    values = [-5.0, 0.0, 0.5, 1.0, 2.4999, 2.5, 99.0, math.nan, math.inf, -math.inf, math.nan]
    assert bin_counts(np.array(values), NUM).tolist() == [1, 2, 2, 2, 2, 2]


def test_numeric_matches_the_definition_on_random_values() -> None:
    rng = np.random.default_rng(0)
    edges = tuple(np.sort(rng.choice(np.arange(-20, 20) / 4, 7, replace=False)).tolist())
    feature = FeatureBins("f", "x", -1, "numeric", edges=edges)
    values = np.concatenate(
        [rng.normal(0, 3, 2000), np.array(edges), [math.nan, math.inf, -math.inf]]
    ).astype(np.float32)
    expected = np.zeros(len(edges) + 3, dtype=np.int64)
    for v in values.astype(np.float64).tolist():
        expected[slot_by_definition(v, edges)] += 1
    assert bin_counts(values, feature).tolist() == expected.tolist()
    # float32 elements are compared after conversion to float64, so both dtypes agree.
    assert bin_counts(values.astype(np.float64), feature).tolist() == expected.tolist()


def test_numeric_without_edges_and_integer_values() -> None:
    feature = FeatureBins("f", "x", -1, "numeric")
    assert bin_counts(np.array([1.0, math.nan, math.inf]), feature).tolist() == [1, 1, 1]
    ints = FeatureBins("i", "x", -1, "numeric", edges=(2.0,))
    assert bin_counts(np.array([1, 2, 3], dtype=np.int64), ints).tolist() == [1, 2, 0, 0]
    assert bin_counts(np.array([], dtype=np.float32), ints).tolist() == [0, 0, 0, 0]


def test_categorical_layout() -> None:
    values = np.array(["a", "b", "b", "zzz", "", None, b"a", "7"], dtype=object)
    # a, b, 7, other, missing
    assert bin_counts(values, CAT).tolist() == [2, 2, 1, 1, 2]


def test_numeric_coded_categorical() -> None:
    feature = FeatureBins("g", "s", -1, "categorical", categories=("3", "7", "0.5", "1"))
    floats = np.array([3.0, 7.0, 7.0, 0.5, 4.0, math.nan, math.nan])
    assert bin_counts(floats, feature).tolist() == [1, 2, 1, 0, 1, 2]
    ints = np.array([3, 3, 9], dtype=np.int32)
    assert bin_counts(ints, feature).tolist() == [2, 0, 0, 0, 1, 0]
    # Booleans are numbers: True names category "1", False is "0" (other here).
    assert bin_counts(np.array([True, False]), feature).tolist() == [0, 0, 0, 1, 1, 0]
    big = np.array([2**62, 2**62 + 1], dtype=np.int64)  # compared after conversion to float64
    assert canonical_category(float(big[0])) == canonical_category(float(big[1]))


@pytest.mark.parametrize(
    "value", [0.0, 1.0, 5.0, -3.0, 0.1, -0.044641636506989, 0.0506801187398187, 1e-30, 2.0**24 + 1]
)
def test_value_span_holds_the_value_as_float64_and_float32_and_nothing_else(value: float) -> None:
    lo, hi = value_span(value)
    assert lo <= value < hi and lo <= float(np.float32(value)) < hi
    # The float32 numbers bracketing the value are inside; the next ones out are not.
    down = up = np.float32(value)
    if float(down) > value:
        down = np.nextafter(down, np.float32(-np.inf))
    if float(up) < value:
        up = np.nextafter(up, np.float32(np.inf))
    tiny = float(np.finfo(np.float64).tiny)  # hi of 0: no subnormal edge
    assert (float(down), max(float(np.nextafter(float(up), np.inf)), float(up) + tiny)) == (lo, hi)
    outside = [np.nextafter(down, np.float32(-np.inf)), np.nextafter(up, np.float32(np.inf))]
    feature = FeatureBins("v", "x", -1, "numeric", edges=(lo, hi))
    assert bin_counts(np.array(outside, np.float32), feature).tolist() == [1, 0, 1, 0, 0]
    assert bin_counts(np.array([value], np.float32), feature).tolist() == [0, 1, 0, 0, 0]
    assert bin_counts(np.array([value]), feature).tolist() == [0, 1, 0, 0, 0]


def test_labels_of_value_bins() -> None:
    def labels(*edges: float) -> list[str]:
        return slot_labels(FeatureBins("v", "x", -1, "numeric", edges=edges))

    assert labels(*value_span(5.0)) == ["<5", "=5", ">5", "NaN", "±inf"]
    assert labels(*value_span(0.0)) == ["<0", "=0", ">0", "NaN", "±inf"]
    assert labels(0.0, 0.5, value_span(1.0)[1]) == ["<0", "[0,0.5)", "[0.5,1]", ">1", "NaN", "±inf"]
    assert labels(*value_span(0.0), 2.5) == ["<0", "=0", "(0,2.5)", ">=2.5", "NaN", "±inf"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.0, "3"),
        (-2.0, "-2"),
        (0.25, "0.25"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        (math.nan, None),
        (np.int64(12), "12"),
        (True, "1"),
        (np.bool_(False), "0"),
        (1e19, "1e+19"),
        (b"x", "x"),
        ("", None),
        (None, None),
        (np.float32(0.5), "0.5"),
    ],
)
def test_canonical_category(value: object, text: str | None) -> None:
    assert canonical_category(value) == text


def test_counter_reads_tensor_columns_like_the_core() -> None:
    counter = NumpyDriftCounter()
    counter.set_drift_bins(
        [
            {
                "name": "c1",
                "tensor": "x",
                "column": 1,
                "kind": "numeric",
                "edges": [0.0],
                "categories": [],
            },
            {
                "name": "s",
                "tensor": "s",
                "column": -1,
                "kind": "categorical",
                "edges": [],
                "categories": ["a"],
            },
        ]
    )
    x = np.array([[9.0, -1.0], [9.0, 1.0], [9.0, math.nan]], dtype=np.float32)
    counter.observe({"x": x, "s": np.array([["a"], ["b"], ["a"]], dtype=object)})
    counter.observe({"x": x})  # a batch without the string tensor counts only x
    assert counter.drift_counts() == {"c1": [2, 2, 2, 0], "s": [2, 1, 0]}
    counter.set_drift_bins([])
    assert counter.drift_counts() == {}


def test_to_dict_round_trip_and_labels() -> None:
    for f in (NUM, CAT):
        assert FeatureBins.from_dict(f.to_dict()) == f
    assert NUM.to_dict() == {
        "name": "f",
        "tensor": "x",
        "column": -1,
        "kind": "numeric",
        "edges": [0.0, 1.0, 2.5],
        "categories": [],
    }
    assert slot_labels(NUM) == ["<0", "[0,1)", "[1,2.5)", ">=2.5", "NaN", "±inf"]
    assert slot_labels(CAT) == ["a", "b", "7", "(other)", "(missing)"]
    assert NUM.slot_count == 6 and CAT.slot_count == 5


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (
            {"name": "f", "tensor": "x", "column": -1, "kind": "numeric", "edges": [1.0, 1.0]},
            "strictly ascending; was [1.0, 1.0]",
        ),
        (
            {"name": "f", "tensor": "x", "column": -1, "kind": "numeric", "edges": [math.inf]},
            "edges must be finite",
        ),
        (
            {"name": "f", "tensor": "x", "column": -2, "kind": "numeric"},
            "column must be an integer",
        ),
        ({"name": "f", "tensor": "x", "column": -1, "kind": "ordinal"}, "kind must be"),
        (
            {
                "name": "f",
                "tensor": "x",
                "column": -1,
                "kind": "categorical",
                "categories": ["a", "a"],
            },
            "distinct",
        ),
        (
            {"name": "f", "tensor": "x", "column": -1, "kind": "categorical", "categories": [""]},
            "empty string counts as missing",
        ),
        ({"name": "", "tensor": "x", "column": -1, "kind": "numeric"}, "non-empty string"),
        ({"name": "f", "tensor": "x", "column": -1, "kind": "categorical"}, "needs categories"),
        ({"name": "f", "tensor": "x", "kind": "numeric", "bins": 3}, "unknown feature fields"),
    ],
)
def test_invalid_features(data: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidConfigError, match=None) as info:
        FeatureBins.from_dict(data)
    assert fragment in str(info.value)


def test_duplicate_names_and_bad_columns() -> None:
    with pytest.raises(InvalidConfigError, match="'f' appears twice"):
        parse_features([NUM, NUM])
    assert select_column(np.arange(12).reshape(4, 3), -1).tolist() == list(range(12))
    assert select_column(np.arange(12).reshape(4, 3), 1).tolist() == [1, 4, 7, 10]
    with pytest.raises(InvalidConfigError, match="column 1 needs a 2-D tensor"):
        select_column(np.zeros(4), 1)
    with pytest.raises(InvalidConfigError, match="out of range"):
        select_column(np.zeros((4, 3)), 3)
    with pytest.raises(InvalidConfigError, match="is numeric but its values have dtype"):
        bin_counts(np.array(["a"], dtype=object), NUM)
