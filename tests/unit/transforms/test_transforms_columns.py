"""exact_numeric_column: a raw column in its declared dtype only when no value changes, taking
integers as themselves (never as the double they round to), and naming what the caller sent.
The gRPC path applies the same rule in C++ (csrc/exact_convert.h); the serving tests check that
the two agree word for word."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from engine.errors import InvalidInputError
from engine.transforms.columns import exact_numeric_column, numeric_column, object_numbers_dtype

INT64, FLOAT32, FLOAT64 = np.dtype(np.int64), np.dtype(np.float32), np.dtype(np.float64)
TWO53, TWO63 = 2**53, 2**63


def _refusal(sent: str, to: str, row: int, why: str) -> str:
    return (f"column 'c': {sent} does not convert exactly to {to}, the transform spec's dtype "
            f"for this column (row {row}: {why}); cast the column first")


@pytest.mark.parametrize("values, dtype, expected", [
    # Integers into int64 by integer arithmetic: 2^53 + 1 stays itself, 2^63 - 1 is in range.
    (np.array([TWO53 + 1, TWO63 - 1, 0], np.uint64), INT64, [TWO53 + 1, TWO63 - 1, 0]),
    (np.array([TWO53 + 1, TWO63 - 1], ">u8"), INT64, [TWO53 + 1, TWO63 - 1]),
    (pd.Series([TWO53 + 1, TWO63 - 1, -TWO63]), INT64, [TWO53 + 1, TWO63 - 1, -TWO63]),
    (pd.Series([TWO53 + 1, TWO63 - 1], dtype="UInt64"), INT64, [TWO53 + 1, TWO63 - 1]),
    (pd.Series([TWO53 + 1, 7], dtype="Int64"), INT64, [TWO53 + 1, 7]),
    (np.array([TWO53 + 1, -3], dtype=object), INT64, [TWO53 + 1, -3]),
    (np.array([[TWO53 + 1], [5]], np.uint64), INT64, [TWO53 + 1, 5]),
    (np.array([4294967295, 0], np.uint32), INT64, [4294967295, 0]),
    # Integers into a float that holds them exactly, at any magnitude.
    (np.array([-TWO63, 2**60, 3 << 40], np.int64), FLOAT32, [-(2.0**63), 2.0**60, 3 * 2.0**40]),
    (np.array([TWO63, 2**64 - 2**11], np.uint64), FLOAT64, [2.0**63, 2.0**64 - 2.0**11]),
    (np.array([-(2**31), 2**24], np.int32), FLOAT32, [-(2.0**31), 2.0**24]),
    (np.array([0, 255], np.uint8), FLOAT64, [0.0, 255.0]),
    # Missing values become NaN in a float column; the integers beside them stay exact.
    (pd.Series([TWO53, None, -TWO53], dtype="Int64"), FLOAT64, [2.0**53, np.nan, -(2.0**53)]),
    (np.array([TWO53, None], dtype=object), FLOAT64, [2.0**53, np.nan]),
    # Floats: integral ones into int64, -2^63 included; NaN and inf stay in a float column.
    (np.array([1.0, 2.0**40], np.float32), INT64, [1, 2**40]),
    (np.array([-(2.0**63), -0.0]), INT64, [-TWO63, 0]),
    (np.array([0.5, np.nan, -np.inf]), FLOAT32, [0.5, np.nan, -np.inf]),
    (np.array([1.5, -2.0], np.float16), FLOAT32, [1.5, -2.0]),
], ids=lambda v: None if isinstance(v, (list, np.dtype)) else str(getattr(v, "dtype", v)))
def test_exact_values_convert(values: Any, dtype: np.dtype[Any], expected: list[Any]) -> None:
    got = exact_numeric_column("c", values, dtype)
    assert got.dtype == dtype and got.shape == (len(expected),)
    if dtype == INT64:
        assert got.tolist() == expected  # Python ints: compared exactly
    else:
        np.testing.assert_array_equal(got, np.array(expected, dtype))


@pytest.mark.parametrize("values, dtype, message", [
    # A double would round these integers (and then take them).
    (np.array([1, TWO53 + 1], np.int64), FLOAT64,
     _refusal("int64 value 9007199254740993", "float64", 1, "float64 would round it")),
    (np.array([-TWO53 - 1], np.int64), FLOAT64,
     _refusal("int64 value -9007199254740993", "float64", 0, "float64 would round it")),
    (np.array([TWO63 - 1], np.int64), FLOAT64,
     _refusal("int64 value 9223372036854775807", "float64", 0, "float64 would round it")),
    (np.array([TWO53 + 1], np.uint64), FLOAT64,
     _refusal("uint64 value 9007199254740993", "float64", 0, "float64 would round it")),
    (pd.Series([TWO53 + 1]), FLOAT64,
     _refusal("int64 value 9007199254740993", "float64", 0, "float64 would round it")),
    (pd.Series([1, None, TWO53 + 1], dtype="Int64"), FLOAT64,
     _refusal("Int64 value 9007199254740993", "float64", 2, "float64 would round it")),
    (pd.array([None, TWO53 + 1], dtype="Int64"), FLOAT64,
     _refusal("Int64 value 9007199254740993", "float64", 1, "float64 would round it")),
    (np.array([None, 2**60 + 1], dtype=object), FLOAT32,
     _refusal("object value 1152921504606846977", "float32", 1, "float32 would round it")),
    # 2^60 + 1 is a double's 2^60, which float32 holds: still refused, the value changes.
    (np.array([2**60 + 1], np.int64), FLOAT32,
     _refusal("int64 value 1152921504606846977", "float32", 0, "float32 would round it")),
    (np.array([2**24 + 1], np.int64), FLOAT32,
     _refusal("int64 value 16777217", "float32", 0, "float32 would round it")),
    # Narrow types are named as sent, not as the float64 they once were widened to.
    (np.array([3, 2**24 + 1], np.int32), FLOAT32,
     _refusal("int32 value 16777217", "float32", 1, "float32 would round it")),
    (np.array([2**24 + 1], np.uint32), FLOAT32,
     _refusal("uint32 value 16777217", "float32", 0, "float32 would round it")),
    (np.array([0.5], np.float16), INT64,
     _refusal("float16 value 0.5", "int64", 0, "not a whole number")),
    # Out of int64's range: refused, never wrapped.
    (np.array([1, TWO63], np.uint64), INT64,
     _refusal("uint64 value 9223372036854775808", "int64", 1, "outside int64's range")),
    (np.array([2**64 - 1], ">u8"), INT64,
     _refusal("uint64 value 18446744073709551615", "int64", 0, "outside int64's range")),
    (np.array([[1.0], [2.0**63]]), INT64,
     _refusal("float64 value 9.223372036854776e+18", "int64", 1, "outside int64's range")),
    # Floats into int64 and float32, worded as the core words them.
    (np.array([1.0, 2.5]), INT64, _refusal("float64 value 2.5", "int64", 1, "not a whole number")),
    (np.array([np.nan]), INT64,
     _refusal("float64 value nan", "int64", 0, "NaN has no int64 value")),
    (np.array([-np.inf], np.float32), INT64,
     _refusal("float32 value -inf", "int64", 0, "infinity has no int64 value")),
    (np.array([0.1], np.float32), INT64,
     _refusal("float32 value 0.10000000149011612", "int64", 0, "not a whole number")),
    (pd.Series([1, None], dtype="Int64"), INT64,
     _refusal("Int64 value <NA>", "int64", 1, "a missing value has no int64 value")),
    (np.array([2.0, 0.1]), FLOAT32,
     _refusal("float64 value 0.1", "float32", 1, "float32 would round it")),
    (np.array([1e-50]), FLOAT32,
     _refusal("float64 value 1e-50", "float32", 0, "float32 would round it")),
    (np.array([-1e39]), FLOAT32,
     _refusal("float64 value -1e+39", "float32", 0, "outside float32's range")),
], ids=lambda v: None if isinstance(v, (str, np.dtype)) else str(getattr(v, "dtype", v)))
def test_changed_values_are_refused_naming_what_was_sent(values: Any, dtype: np.dtype[Any],
                                                         message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        exact_numeric_column("c", values, dtype)
    assert str(refused.value) == message


@pytest.mark.parametrize("values", [
    pd.Series([1, TWO53 + 1]), pd.Series([1, None, TWO53 + 1], dtype="Int64"),
    np.array([1, None, TWO53 + 1], dtype=object), pd.Series([0.5, None], dtype="Float32"),
], ids=["int64-series", "Int64-series", "object", "Float32-series"])
def test_numeric_column_still_reads_float64(values: Any) -> None:
    # The transforms' working representation is unchanged: float64, missing values as NaN.
    got = numeric_column("c", values)
    assert got.dtype == FLOAT64
    np.testing.assert_array_equal(got, pd.Series(values, dtype="Float64").to_numpy(
        dtype=np.float64, na_value=np.nan))


# Object columns Arrow cannot type: Python ints beside floats that a double would round, ints
# beyond int64. They are numbers, so they convert exactly (or are refused) like any other.
@pytest.mark.parametrize("values, dtype, expected", [
    (np.array([TWO63 - 1, 1.0], object), INT64, [TWO63 - 1, 1]),
    (np.array([1.0, TWO53 + 1], object), INT64, [1, TWO53 + 1]),
    (np.array([np.uint64(TWO63 - 1), np.float32(2.0), -TWO63, TWO53 + 1], object), INT64,
     [TWO63 - 1, 2, -TWO63, TWO53 + 1]),
    (np.array([TWO63, 0.5], object), FLOAT64, [2.0**63, 0.5]),
    (np.array([np.uint64(TWO63), 1], object), FLOAT64, [2.0**63, 1.0]),
    (np.array([2**64, None, np.nan, pd.NA, 0.5], object), FLOAT32,
     [2.0**64, np.nan, np.nan, np.nan, 0.5]),
], ids=lambda v: None if isinstance(v, (list, np.dtype)) else str(list(v)))
def test_mixed_and_big_python_numbers_convert_exactly(values: Any, dtype: np.dtype[Any],
                                                      expected: list[Any]) -> None:
    test_exact_values_convert(values, dtype, expected)


@pytest.mark.parametrize("values, dtype, message", [
    (np.array([0.5, TWO53 + 1], object), FLOAT64,
     _refusal("object value 9007199254740993", "float64", 1, "float64 would round it")),
    (np.array([2**70, None, 0.1], object), FLOAT32,
     _refusal("object value 0.1", "float32", 2, "float32 would round it")),
    (np.array([TWO63], object), INT64,
     _refusal("object value 9223372036854775808", "int64", 0, "outside int64's range")),
    (np.array([1, 2**64], object), INT64,
     _refusal("object value 18446744073709551616", "int64", 1, "outside int64's range")),
    (np.array([-TWO63 - 1, 1.5], object), INT64,
     _refusal("object value -9223372036854775809", "int64", 0, "outside int64's range")),
    (np.array([TWO63, 1.5], object), INT64,
     _refusal("object value 9223372036854775808", "int64", 0, "outside int64's range")),
    (np.array([TWO53 + 1, 2.5], object), INT64,
     _refusal("object value 2.5", "int64", 1, "not a whole number")),
    (np.array([10**400], object), FLOAT64,
     _refusal(f"object value {10**400}", "float64", 0, "outside float64's range")),
    (np.array([1.0, -(10**400)], object), FLOAT32,
     _refusal(f"object value {-(10**400)}", "float32", 1, "outside float32's range")),
    # Missing values keep their meaning: no int64 value.
    (np.array([TWO63 - 1, None, 1.0], object), INT64,
     _refusal("object value nan", "int64", 1, "NaN has no int64 value")),
    (np.array([TWO63 - 1, 1.0, pd.NA], object), INT64,
     _refusal("object value nan", "int64", 2, "NaN has no int64 value")),
], ids=lambda v: None if isinstance(v, (str, np.dtype)) else str(list(v))[:40])
def test_mixed_and_big_python_numbers_are_refused_when_changed(values: Any, dtype: np.dtype[Any],
                                                              message: str) -> None:
    test_changed_values_are_refused_naming_what_was_sent(values, dtype, message)


NOT_NUMBERS = ("column 'c' must be numeric; got object values that are not all numbers "
               "(None, NaN and pandas NA are the missing values)")


@pytest.mark.parametrize("values", [
    [TWO63, "1"], [TWO53 + 1, 0.5, b"x"], [TWO63, True], [2**64, np.bool_(False)], [True, 1],
    [TWO63, 1.5, [1]], [TWO63, np.longdouble(1.5)],
    # A float first: Arrow alone would read the bools as 1.0 and 0.0.
    [1.5, True], [0.5, None, np.bool_(False)],
], ids=str)
@pytest.mark.parametrize("dtype", [INT64, FLOAT64], ids=str)
def test_objects_that_are_not_all_numbers_are_still_refused(values: list[Any],
                                                            dtype: np.dtype[Any]) -> None:
    column = np.empty(len(values), object)
    column[:] = values
    for read in (lambda: exact_numeric_column("c", column, dtype), lambda: numeric_column("c", column)):
        with pytest.raises(InvalidInputError) as refused:
            read()
        assert str(refused.value) == NOT_NUMBERS


def test_numeric_column_reads_mixed_and_big_python_numbers() -> None:
    got = numeric_column("c", np.array([TWO63 - 1, None, 0.5, TWO53 + 1, 2**64], object))
    assert got.dtype == FLOAT64
    np.testing.assert_array_equal(got, [2.0**63, np.nan, 0.5, 2.0**53, 2.0**64])
    with pytest.raises(InvalidInputError) as refused:
        numeric_column("c", np.array([0.5, -(10**400)], object))
    assert str(refused.value) == (f"column 'c': object value {-(10**400)} (row 1) is outside "
                                  "float64's range; cast the column first")


@pytest.mark.parametrize("values, inferred", [
    ([TWO63 - 1, 1.0], "float64"), ([TWO63], "float64"), ([None, TWO63], "float64"),
    ([TWO63, "a"], None), ([TWO63, True], None),
], ids=str)
def test_fit_infers_mixed_and_big_python_numbers_as_numbers(values: list[Any],
                                                           inferred: str | None) -> None:
    assert object_numbers_dtype(np.array(values, object)) == inferred
