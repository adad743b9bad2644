"""Bad serving data: each case is either defined by the spec or an error naming the column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engine.errors import InvalidInputError
from engine.transforms.fit import fit
from engine.transforms.native import apply as apply_native
from engine.transforms.native import compile_native
from engine.transforms.reference import apply_reference

SPEC = fit(
    {"x": np.arange(10.0), "s": np.array(list("aabbccddee"), dtype=object)},
    {"x": [{"op": "standardize"}], "s": [{"op": "vocabulary"}]},
)


@pytest.mark.parametrize(
    ("columns", "fragment"),
    [
        ({"x": np.arange(3.0)}, "missing input column 's'"),
        ({"x": np.arange(3.0), "s": np.arange(3)}, "column 's' must be strings; got int64"),
        ({"x": np.array(["1", "2"]), "s": np.array(["a", "b"])}, "column 'x' must be numeric; got <U1"),
        ({"x": np.array([True]), "s": np.array(["a"])}, "column 'x' must be numeric; got bool"),
        ({"x": np.array([1.0, None], dtype=object), "s": np.array(["a", "b"])},
         "column 'x' must be numeric; got object"),
        ({"x": np.arange(3.0), "s": np.array(["a", 1, "c"], dtype=object)},
         "column 's' must hold only strings"),
        ({"x": np.arange(3.0), "s": np.array(["a", "b"])}, "column 's' has 2 rows; column 'x' has 3"),
        ({"x": np.zeros((2, 2)), "s": np.array(["a", "b"])}, "column 'x' must be 1-D (or [rows, 1]); shape was (2, 2)"),
        ([1, 2], "columns must be a mapping of name -> 1-D array or a pandas DataFrame; was list"),
    ],
)
@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
def test_errors_name_the_column(columns: object, fragment: str, apply: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        apply(SPEC, columns)  # type: ignore[operator]
    assert fragment in str(info.value)


def test_core_checks_its_own_buffers() -> None:
    """The core never trusts the buffers it is given: bad offsets are an InvalidInputError."""
    plan = compile_native(SPEC)._plan
    x = np.arange(2.0)
    with pytest.raises(InvalidInputError, match="column 's' has string offsets outside its bytes"):
        plan.apply([x, (np.array([0, 1, 99], np.int64), np.zeros(2, np.uint8))], 2)
    with pytest.raises(InvalidInputError, match="column 's' has decreasing string offsets"):
        plan.apply([x, (np.array([0, 2, 1], np.int64), np.zeros(2, np.uint8))], 2)
    with pytest.raises(InvalidInputError, match="column 'x' must be float32, float64 or int64"):
        plan.apply([x.astype(np.int32), (np.array([0, 1, 2], np.int64), np.zeros(2, np.uint8))], 2)
    with pytest.raises(InvalidInputError, match="column 'x' has 2 rows; expected 3"):
        plan.apply([x, (np.array([0, 1, 2, 2], np.int64), np.zeros(2, np.uint8))], 3)


@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
def test_defined_behaviour_for_bad_values(apply: object) -> None:
    out = apply(SPEC, {  # type: ignore[operator]
        "x": np.array([np.nan, np.inf, -np.inf, 4.5]),
        "s": np.array(["", None, "zz", "a"], dtype=object),
    })
    assert np.isnan(out[0, 0]) and out[1, 0] == np.inf and out[2, 0] == -np.inf
    assert out[3, 0] == 0.0
    # vocabulary a..e then one OOV bucket: "", None and "zz" are all out of vocabulary
    np.testing.assert_array_equal(out[:, 1:], [[0, 0, 0, 0, 0, 1]] * 3 + [[1, 0, 0, 0, 0, 0]])


@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
@pytest.mark.parametrize("dtype", ["string", object])
def test_extra_columns_are_ignored_and_pandas_nulls_are_empty(apply: object, dtype: object) -> None:
    s = pd.Series(["a", pd.NA, None, float("nan"), "b"], dtype=dtype)
    df = pd.DataFrame({"x": np.arange(5.0), "s": s, "z": np.zeros(5)})
    out = apply(SPEC, df)  # type: ignore[operator]
    oov = [0, 0, 0, 0, 0, 1]
    np.testing.assert_array_equal(out[:, 1:], [[1, 0, 0, 0, 0, 0], oov, oov, oov, [0, 1, 0, 0, 0, 0]])


@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
def test_int_and_float32_numeric_inputs_widen_exactly(apply: object) -> None:
    base = apply_reference(SPEC, {"x": np.array([1.0, 7.0]), "s": np.array(["a", "b"])})
    for dtype in (np.int64, np.int32, np.float32, np.uint8, ">f8"):
        got = apply(SPEC, {"x": np.array([1, 7], dtype=dtype), "s": np.array(["a", "b"])})  # type: ignore[operator]
        np.testing.assert_array_equal(got, base)
