"""Raw input columns: check names, types and lengths, and convert to the working representation.

Numeric columns become float64 numpy arrays (object columns may hold numbers with None, NaN
or pandas NA as missing values, which become NaN). String columns become Arrow large-string
arrays with nulls (None, NaN, pandas NA) replaced by the empty string, which is the spec's
missing value for strings; bytes elements (object arrays, numpy ``S`` arrays without their NUL
padding) are taken as UTF-8, and bytes that are not valid UTF-8 are refused. Every error names
the column and raises InvalidInputError.
"""

from __future__ import annotations

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
    return typed if numbers else None


def object_numbers_dtype(values: Any) -> str | None:
    """"int64", or "float64" (floats or missing values), for an object column of numbers;
    None when it holds anything else."""
    typed = _arrow_numbers(values)
    types = _pyarrow().types
    if typed is None or types.is_null(typed.type):  # all missing: no evidence of numbers
        return None
    return "int64" if types.is_integer(typed.type) and typed.null_count == 0 else "float64"


def _object_numbers(name: str, arr: np.ndarray[Any, Any]) -> F64:
    typed = _arrow_numbers(arr)
    if typed is None:
        raise InvalidInputError(
            f"column {name!r} must be numeric; got object values that are not all numbers "
            "(None, NaN and pandas NA are the missing values)"
        )
    # Nulls become NaN (Arrow gives float64 for an integer column with nulls).
    return np.asarray(typed.to_numpy(zero_copy_only=False), dtype=np.float64)


def numeric_column(name: str, values: Any, *, widen: bool = True) -> Any:
    """float64 copy/view of a numeric column (float32, float64, any integer).

    With ``widen=False`` float32, float64 and int64 columns keep their dtype (contiguous, for
    the C++ core, which widens per element); other integer types still become float64.
    """
    if _is_pandas(values):
        import pandas as pd  # type: ignore[import-untyped]

        if values.dtype == object:
            values = values.to_numpy()  # numbers and missing values, read below
        elif pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            raise InvalidInputError(f"column {name!r} must be numeric; got {values.dtype}")
        else:
            values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = _one_dim(name, np.asarray(values))
    if arr.dtype.kind == "O":
        arr = _object_numbers(name, arr)
    if arr.dtype.kind not in "fiu":
        raise InvalidInputError(f"column {name!r} must be numeric; got {arr.dtype}")
    if not widen and arr.dtype.newbyteorder("=") in _NATIVE_NUMERIC:
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return arr.astype(np.float64, copy=False)


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


def exact_numeric_column(name: str, values: Any, dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """A raw numeric column in the spec's declared ``dtype``, for transforms run by a model.

    A model's batches hold one dtype per column, so the column is converted to the declared
    dtype, but only when that changes no value: the transforms then see the same float64
    values :func:`numeric_column` gives ``engine.transforms.apply``. So int64 or float32 data
    fits a float64 column, integral floats an int64 column; 1.5 or NaN for an int64 column,
    or 0.1 (float64) for a float32 column, raise InvalidInputError naming the column.

    The served path converts in C++ by the same rule (csrc/exact_convert.h, ConvertExactly:
    a value's float64 must survive the trip to ``dtype``, NaN only into a float column), so a
    column the gRPC server takes is one this takes, and the reverse: change both or neither.
    """
    arr: np.ndarray[Any, Any] = numeric_column(name, values, widen=False)
    if arr.dtype == dtype:
        return arr
    with np.errstate(invalid="ignore", over="ignore"):
        converted = arr.astype(dtype)
    wanted, got = arr.astype(np.float64), converted.astype(np.float64)
    changed = (wanted != got) & ~(np.isnan(wanted) & np.isnan(got))
    if changed.any():
        example = arr[np.argmax(changed)].item()
        raise InvalidInputError(
            f"column {name!r}: {arr.dtype} value {example!r} does not convert exactly to "
            f"{dtype}, the transform spec's dtype for this column; cast the column first"
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
