"""Raw input columns: check names, types and lengths, and convert to the working representation.

Numeric columns become float64 numpy arrays. String columns become Arrow large-string arrays
with nulls (None, NaN, pandas NA) replaced by the empty string, which is the spec's missing
value for strings. Every error names the column and raises InvalidInputError.
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

__all__ = ["StringColumn", "as_mapping", "numeric_column", "prepare_columns", "string_column"]

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


def numeric_column(name: str, values: Any, *, widen: bool = True) -> Any:
    """float64 copy/view of a numeric column (float32, float64, any integer).

    With ``widen=False`` float32, float64 and int64 columns keep their dtype (contiguous, for
    the C++ core, which widens per element); other integer types still become float64.
    """
    if _is_pandas(values):
        import pandas as pd  # type: ignore[import-untyped]

        if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
            raise InvalidInputError(f"column {name!r} must be numeric; got {values.dtype}")
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    arr = _one_dim(name, np.asarray(values))
    if arr.dtype.kind not in "fiu":
        raise InvalidInputError(f"column {name!r} must be numeric; got {arr.dtype}")
    if not widen and arr.dtype.newbyteorder("=") in _NATIVE_NUMERIC:
        return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("="))
    return arr.astype(np.float64, copy=False)


def string_column(name: str, values: Any) -> StringColumn:
    """Arrow large-string column with nulls as ""."""
    pa = _pyarrow()
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    else:
        if not _is_pandas(values):
            values = _one_dim(name, np.asarray(values, dtype=object if isinstance(values, list) else None))
            if values.dtype.kind not in "OUS":
                raise InvalidInputError(f"column {name!r} must be strings; got {values.dtype}")
        elif values.dtype.kind in "fiub":
            raise InvalidInputError(f"column {name!r} must be strings; got {values.dtype}")
        try:
            arr = pa.array(values, type=pa.large_string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise InvalidInputError(f"column {name!r} must hold only strings: {exc}") from exc
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_large_string(arr.type):
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            raise InvalidInputError(f"column {name!r} must be strings; got arrow type {arr.type}")
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = arr.fill_null("")
    return StringColumn(arr)


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
