"""Raw input columns: check names, types and lengths, and convert to the working representation.

Numeric columns become float64 numpy arrays (object columns may hold numbers with None, NaN
or pandas NA as missing values, which become NaN); a model's raw numeric columns are instead
converted exactly to their declared dtype (:func:`exact_numeric_column`). String columns
become Arrow large-string arrays with nulls (None, NaN, pandas NA) replaced by the empty
string, which is the spec's missing value for strings; bytes elements (object arrays, numpy
``S`` arrays without their NUL padding) are taken as UTF-8, and bytes that are not valid UTF-8
are refused. Every error names the column and raises InvalidInputError.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engine.errors import InvalidInputError, UnsupportedError
from engine.transforms.spec import TransformSpec

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "StringColumn",
    "as_mapping",
    "exact_numeric_column",
    "numeric_column",
    "object_numbers_dtype",
    "prepare_columns",
    "string_column",
]

F64 = npt.NDArray[np.float64]


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:  # pragma: no cover - pyarrow is installed with engine[train]
        raise UnsupportedError(
            "string columns in engine.transforms need pyarrow (pip install 'engine[train]')"
        ) from exc
    return pyarrow


@dataclass(frozen=True)
class StringColumn:
    """UTF-8 strings without nulls: an Arrow array plus its offsets and bytes for hashing."""

    array: pa.LargeStringArray

    @property
    def offsets(self) -> npt.NDArray[np.int64]:
        arr = self.array
        raw = np.frombuffer(arr.buffers()[1], dtype=np.int64)
        return raw[arr.offset : arr.offset + len(arr) + 1]

    @property
    def data(self) -> npt.NDArray[np.uint8]:
        buf = self.array.buffers()[2]
        return np.zeros(0, np.uint8) if buf is None else np.frombuffer(buf, dtype=np.uint8)

    def __len__(self) -> int:
        return len(self.array)

    def to_numpy(self) -> npt.NDArray[np.object_]:
        return np.asarray(self.array.to_numpy(zero_copy_only=False), dtype=object)


def as_mapping(columns: Any) -> Mapping[str, Any]:
    """A pandas DataFrame or a mapping of column name -> 1-D values, as a mapping."""
    if isinstance(columns, Mapping):
        return columns
    if type(columns).__module__.startswith("pandas") and hasattr(columns, "columns"):
        return {str(name): columns[name] for name in columns.columns}
    raise InvalidInputError(
        f"columns must be a mapping of name -> 1-D array or a pandas DataFrame; "
        f"was {type(columns).__name__}"
    )


def _is_pandas(values: Any) -> bool:
    return type(values).__module__.startswith("pandas")


def _one_dim(name: str, arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if arr.ndim == 2 and arr.shape[1] == 1:
        return arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(f"column {name!r} must be 1-D (or [rows, 1]); shape was {arr.shape}")
    return arr


_NATIVE_NUMERIC = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64))


def _arrow_numbers(values: Any) -> Any:
    """Arrow's reading of an object column holding only numbers and nulls; None otherwise."""
    pa = _pyarrow()
    try:
        typed = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None
    t = typed.type
    numbers = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)
    # After a float, Arrow reads Python bools as 1.0 and 0.0, where [True, 1] is refused: a
    # bool is no number here, whatever comes first.
    if pa.types.is_floating(t):
        types = set(map(type, np.asarray(values, dtype=object).ravel()))  # a C loop, not ours
        if bool in types or np.bool_ in types:
            return None
    return typed if numbers else None


# Python-level reading, for what Arrow cannot type: ints beside floats a double would round,
# ints beyond int64. numpy floats wider than a double (longdouble) are not taken.
_FLOATS = (float, np.float16, np.float32, np.float64)


def _python_numbers(values: Any) -> npt.NDArray[np.object_] | None:
    """A 1-D object column as Python ints and floats, missing values (None, pandas NA or NaT)
    as NaN; None when a value is not a number (bools are not). A loop per element: only for
    the columns Arrow cannot type."""
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        return None
    out = np.empty(len(arr), dtype=object)
    for i, x in enumerate(arr):
        if isinstance(x, (bool, np.bool_)):
            return None
        if isinstance(x, (int, np.integer)):
            out[i] = int(x)
        elif isinstance(x, _FLOATS):
            out[i] = float(x)
        elif x is None or (_is_pandas(x) and type(x).__name__ in ("NAType", "NaTType")):
            out[i] = math.nan
        else:
            return None
    return out


def object_numbers_dtype(values: Any) -> str | None:
    """"int64", or "float64" (floats or missing values), for an object column of numbers;
    None when it holds anything else."""
    typed = _arrow_numbers(values)
    if typed is None:
        numbers = _python_numbers(values)
        if numbers is None or all(isinstance(x, float) and math.isnan(x) for x in numbers):
            return None
        ints = all(isinstance(x, int) and -(2**63) <= x < 2**63 for x in numbers)
        return "int64" if ints else "float64"
    types = _pyarrow().types
    if types.is_null(typed.type):  # all missing: no evidence of numbers
        return None
    return "int64" if types.is_integer(typed.type) and typed.null_count == 0 else "float64"


# Rows with no value in an integer column (None, NaN or pandas NA among integers).
Missing = npt.NDArray[np.bool_] | None


def _object_numbers(name: str, arr: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], Missing]:
    typed = _arrow_numbers(arr)
    if typed is None:
        numbers = _python_numbers(arr)
        if numbers is not None:  # Python ints and floats, missing values as NaN
            return numbers, None
        raise InvalidInputError(
            f"column {name!r} must be numeric; got object values that are not all numbers "
            "(None, NaN and pandas NA are the missing values)"
        )
    types = _pyarrow().types
    if types.is_integer(typed.type) and typed.null_count:
        # Kept as integers (Arrow's float64 would round those beyond 2^53), nulls aside.
        missing = np.asarray(typed.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        return typed.fill_null(0).to_numpy(), missing
    if types.is_null(typed.type):  # all missing
        return np.full(len(typed), np.nan), None
    # Integers without nulls, or floats with nulls as NaN.
    return np.asarray(typed.to_numpy(zero_copy_only=False)), None


def _numbers_as_sent(name: str, values: Any) -> tuple[np.ndarray[Any, Any], Missing, str]:
    """A numeric column as the caller sent it: (numbers, missing, sent).

    ``numbers``: 1-D, native byte order, in the integer or float dtype sent, so each value is
    held exactly; or, for object columns no numpy dtype holds exactly (ints beside floats a
    double would round, ints beyond int64), an object array of Python ints and floats, missing
    values as NaN. ``missing``: for integers with missing values, the rows without one (they
    hold 0 in ``numbers``); None otherwise (a float's missing values are NaN). ``sent``: the
    dtype's name for messages ("int32", "Int64", "object").
    """
    sent: str | None = None
    if _is_pandas(values):
        import pandas as pd  # type: ignore[import-untyped]

        dtype = values.dtype
        if dtype == object:
            values = values.to_numpy()  # numbers and missing values, read below
        elif pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            raise InvalidInputError(f"column {name!r} must be numeric; got {dtype}")
        else:
            sent = dtype.name
            numpy_dtype = np.dtype(getattr(dtype, "numpy_dtype", dtype))  # nullable: Int64...
            nulls = np.asarray(pd.isna(values), dtype=bool)  # a Series or a pandas array
            if numpy_dtype.kind in "iu" and nulls.any():
                return values.to_numpy(dtype=numpy_dtype, na_value=0), nulls, sent
            na = np.nan if numpy_dtype.kind == "f" else None
            values = values.to_numpy(dtype=numpy_dtype, na_value=na)
    arr = _one_dim(name, np.asarray(values))
    if arr.dtype.kind == "O":
        numbers, missing = _object_numbers(name, arr)
        return numbers, missing, "object"
    if arr.dtype.kind not in "fiu":
        raise InvalidInputError(f"column {name!r} must be numeric; got {arr.dtype}")
    return arr.astype(arr.dtype.newbyteorder("="), copy=False), None, sent or arr.dtype.name


def numeric_column(name: str, values: Any, *, widen: bool = True) -> Any:
    """float64 copy/view of a numeric column (float16/32/64, any integer).

    With ``widen=False`` float32, float64 and int64 columns keep their dtype (contiguous, for
    the C++ core, which widens per element); other integer types still become float64.
    """
    numbers, missing, sent = _numbers_as_sent(name, values)
    if numbers.dtype == object:
        try:
            return numbers.astype(np.float64)  # each the nearest double
        except OverflowError:
            row = next(i for i, x in enumerate(numbers) if isinstance(x, int) and _no_double(x))
            raise InvalidInputError(
                f"column {name!r}: {sent} value {numbers[row]!r} (row {row}) is outside "
                "float64's range; cast the column first"
            ) from None
    if missing is None:
        if not widen and numbers.dtype in _NATIVE_NUMERIC:
            return np.ascontiguousarray(numbers)
        return numbers.astype(np.float64, copy=False)
    out = numbers.astype(np.float64)
    out[missing] = np.nan
    return out


def _not_strings(name: str, exc: Exception) -> InvalidInputError:
    if "utf8" in str(exc).lower():
        return InvalidInputError(f"column {name!r} holds bytes that are not valid UTF-8: {exc}")
    return InvalidInputError(f"column {name!r} must hold only strings: {exc}")


def string_column(name: str, values: Any) -> StringColumn:
    """Arrow large-string column with nulls as ""; bytes are taken as UTF-8."""
    pa = _pyarrow()
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        if not _is_pandas(values):
            values = _one_dim(name, np.asarray(values, dtype=object if isinstance(values, list) else None))
            if values.dtype.kind not in "OUS":
                raise InvalidInputError(f"column {name!r} must be strings; got {values.dtype}")
            if values.dtype.kind == "S":
                # As objects, fixed-width bytes lose their NUL padding (b"x" in S2 is b"x\0").
                values = values.astype(object)
        elif values.dtype.kind in "fiub":
            raise InvalidInputError(f"column {name!r} must be strings; got {values.dtype}")
        try:
            arr = pa.array(values, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise _not_strings(name, exc) from exc
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_large_string(arr.type):
        text = pa.types.is_string(arr.type)
        if not (text or pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)):
            raise InvalidInputError(f"column {name!r} must be strings; got arrow type {arr.type}")
        try:
            arr = arr.cast(pa.large_string())  # checks that binary values are UTF-8
        except pa.ArrowInvalid as exc:
            raise _not_strings(name, exc) from exc
    if arr.null_count:
        arr = arr.fill_null("")
    return StringColumn(arr)


def _no_double(value: int) -> bool:
    try:
        float(value)
    except OverflowError:
        return True
    return False


def _convert_python(
    numbers: npt.NDArray[np.object_], dtype: np.dtype[Any]
) -> tuple[np.ndarray[Any, Any], npt.NDArray[np.bool_]]:
    """:func:`_convert` for Python ints and floats, per element. Python compares an int with
    a float exactly, so ``float(c) == x`` says whether ``x`` kept its value."""
    converted = np.zeros(len(numbers), dtype=dtype)
    exact = np.zeros(len(numbers), dtype=bool)
    if dtype.kind == "f":
        with np.errstate(over="ignore"):
            for i, x in enumerate(numbers):
                try:
                    c = dtype.type(float(x))  # an int: the nearest double first
                except OverflowError:  # an int beyond every double
                    continue
                converted[i] = c
                # NaN (a missing value too) stays NaN.
                exact[i] = float(c) == x or (isinstance(x, float) and math.isnan(x))
        return converted, exact
    info = np.iinfo(dtype)
    for i, x in enumerate(numbers):
        if isinstance(x, float) and not (math.isfinite(x) and x.is_integer()):
            continue
        whole = int(x)
        if info.min <= whole <= info.max:
            converted[i], exact[i] = whole, True
    return converted, exact


def _convert(
    numbers: np.ndarray[Any, Any], dtype: np.dtype[Any]
) -> tuple[np.ndarray[Any, Any], npt.NDArray[np.bool_]]:
    """``numbers`` in ``dtype``, and which of them kept their value there (the others are
    converted to something else: only good for refusing)."""
    if numbers.dtype == object:
        return _convert_python(numbers, dtype)
    if numbers.dtype.kind == "f":
        wide = numbers.astype(np.float64)  # exact for every float type
        if dtype.kind == "f":
            with np.errstate(over="ignore"):
                converted = numbers.astype(dtype)
            return converted, (converted.astype(np.float64) == wide) | np.isnan(wide)
        # Whole and in [-2^63, 2^63) (both bounds are exact floats); checked before the cast,
        # which is undefined outside that range.
        exact = np.isfinite(wide) & (np.trunc(wide) == wide)
        exact &= (wide >= -(2.0**63)) & (wide < 2.0**63)
        return np.where(exact, wide, 0).astype(dtype), exact
    # Integers as themselves, never through a double (which rounds beyond 2^53).
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        exact = (numbers >= info.min) & (numbers <= info.max)  # numpy compares ints exactly
        return numbers.astype(dtype), exact
    converted = numbers.astype(dtype)  # the nearest float
    back = converted.astype(np.float64)
    # Compared back as integers only inside the integer type's range: the float nearest
    # 2^63 - 1 is 2^63, whose cast back to int64 is undefined. Both bounds are exact floats.
    info = np.iinfo(numbers.dtype)
    inside = (back >= float(info.min)) & (back < float(info.max + 1))
    return converted, inside & (np.where(inside, back, 0).astype(numbers.dtype) == numbers)


def _inexact_reason(value: float, dtype: np.dtype[Any]) -> str:
    """Why ``value`` (one :func:`_convert` refused) changes in ``dtype``, in the words of
    csrc/exact_convert.cc."""
    if dtype.kind == "f":
        if abs(value) > float(np.finfo(dtype).max):
            return f"outside {dtype}'s range"
        return f"{dtype} would round it"
    if isinstance(value, int):  # held as itself: only its range can refuse it
        return f"outside {dtype}'s range"
    if math.isnan(value):
        return f"NaN has no {dtype} value"
    if math.isinf(value):
        return f"infinity has no {dtype} value"
    if value != math.trunc(value):
        return "not a whole number"
    return f"outside {dtype}'s range"


def exact_numeric_column(name: str, values: Any, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """A raw numeric column in the spec's declared ``dtype``, for transforms run by a model.

    A model's batches hold one dtype per column, so the column is converted to the declared
    dtype, but only when that changes no value. Integers are taken as themselves, never as
    the double they round to: into int64 when in its range, into a float when it holds them
    exactly. Floats convert by value: integral ones into int64; NaN stays NaN in a float
    column, as do missing values. So int64 data fits a float64 column up to 2^53, integral
    floats an int64 column; 1.5 or NaN for an int64 column, 0.1 (float64) or 2^24 + 1 for a
    float32 one raise InvalidInputError naming the column, the type and value sent, the row
    and why.

    The served path converts in C++ by the same rule, in the same words (csrc/exact_convert.h,
    ConvertExactly), so a column the gRPC server takes is one this takes, and the reverse:
    change both or neither.
    """
    numbers, missing, sent = _numbers_as_sent(name, values)
    if missing is None and numbers.dtype == dtype:
        return np.ascontiguousarray(numbers)
    converted, exact = _convert(numbers, dtype)
    if missing is not None:
        if dtype.kind == "f":
            converted[missing] = np.nan
            exact |= missing
        else:
            exact &= ~missing
    if not exact.all():
        row = int(np.argmin(exact))
        # A Python int or float, whichever dtype holds the numbers.
        sent_value = numbers[row : row + 1].tolist()[0]
        # A missing value among integers (pandas NA of a nullable column; None, NaN or NA in
        # an object column of ints), kept as a mask. Among floats a missing value is NaN and
        # is worded as one: the two cannot be told apart there.
        if missing is not None and missing[row]:
            shown, why = "<NA>", f"a missing value has no {dtype} value"
        else:
            shown, why = repr(sent_value), _inexact_reason(sent_value, dtype)
        raise InvalidInputError(
            f"column {name!r}: {sent} value {shown} does not convert exactly to {dtype}, the "
            f"transform spec's dtype for this column (row {row}: {why}); cast the column first"
        )
    return converted


Prepared = dict[str, "F64 | StringColumn"]


def prepare_columns(
    spec: TransformSpec, columns: Any, *, widen: bool = True, given: Mapping[str, Any] | None = None
) -> tuple[Prepared, int]:
    """Check and convert every input the spec declares; returns (columns, rows).

    ``widen``: see :func:`numeric_column`. ``given``: columns the caller already converted
    (taken as they are; only their lengths are checked).
    """
    mapping = as_mapping(columns)
    out: Prepared = {}
    rows: int | None = None
    first = ""
    for col in spec.inputs:
        if col.name not in mapping:
            raise InvalidInputError(
                f"missing input column {col.name!r}; the transform spec needs "
                f"{[c.name for c in spec.inputs]}"
            )
        values = mapping[col.name]
        if given is not None and col.name in given:
            conv = given[col.name]
        elif col.is_string:
            conv = string_column(col.name, values)
        else:
            conv = numeric_column(col.name, values, widen=widen)
        n = len(conv)
        if rows is None:
            rows, first = n, col.name
        elif n != rows:
            raise InvalidInputError(
                f"column {col.name!r} has {n} rows; column {first!r} has {rows}"
            )
        out[col.name] = conv
    return out, rows or 0
