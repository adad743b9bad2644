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
        ({"x": np.array([1.0, "2"], dtype=object), "s": np.array(["a", "b"])},
         "column 'x' must be numeric; got object values that are not all numbers"),
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


@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
def test_object_numbers_with_missing_values_are_nan(apply: object) -> None:
    base = apply(SPEC, {"x": np.array([1.0, np.nan, 3.0]), "s": np.array(["a", "b", "c"])})  # type: ignore[operator]
    for x in ([1.0, None, 3], np.array([1, pd.NA, 3.0], dtype=object)):
        got = apply(SPEC, {"x": x, "s": np.array(["a", "b", "c"])})  # type: ignore[operator]
        np.testing.assert_array_equal(got, base)


@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
def test_bytes_are_read_as_utf8(apply: object) -> None:
    x = np.zeros(4)
    text = apply(SPEC, {"x": x, "s": np.array(["a", "é", "", "e"], dtype=object)})  # type: ignore[operator]
    utf8 = [s.encode() for s in ["a", "é", "", "e"]]
    # numpy "S" arrays pad with NUL bytes (b"a" is stored as b"a\0"): the padding is not data.
    for strings in (np.array(utf8), np.array(utf8, dtype=object),
                    np.array([b"a", "é", None, "e"], dtype=object)):
        got = apply(SPEC, {"x": x, "s": strings})  # type: ignore[operator]
        np.testing.assert_array_equal(got, text)


INVALID_UTF8 = [b"\xff", b"\x80", b"\xc3", b"\xc0\x80", b"\xe0\x80\x80", b"\xed\xa0\x80",
                b"\xf0\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xe2\x28\xa1", b"ok\xc3\xa9\x80"]
VALID_UTF8 = [b"", b"\x00", b"\xc3\xa9", b"\xed\x9f\xbf", b"\xef\xbf\xbf", b"\xf0\x9f\x98\x80",
              b"\xf4\x8f\xbf\xbf"]


@pytest.mark.parametrize("apply", [apply_reference, apply_native], ids=["reference", "core"])
@pytest.mark.parametrize("raw", INVALID_UTF8 + VALID_UTF8)
def test_bytes_must_be_valid_utf8_in_every_path(apply: object, raw: bytes) -> None:
    """Exactly the bytes Python's strict decoder refuses are refused, naming the column."""
    try:
        expected = apply(SPEC, {"x": np.zeros(1), "s": np.array([raw.decode()], dtype=object)})  # type: ignore[operator]
    except UnicodeDecodeError:
        expected = None
    assert (expected is None) == (raw in INVALID_UTF8)
    for strings in (np.array([raw], dtype=object), np.array([raw])):
        if expected is None:
            with pytest.raises(InvalidInputError, match="column 's' holds bytes that are not valid UTF-8"):
                apply(SPEC, {"x": np.zeros(1), "s": strings})  # type: ignore[operator]
        elif strings.dtype == object or not raw.endswith(b"\x00"):  # "S" drops trailing NULs
            np.testing.assert_array_equal(apply(SPEC, {"x": np.zeros(1), "s": strings}), expected)  # type: ignore[operator]
