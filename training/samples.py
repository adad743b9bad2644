"""Reading ``--sample DATA`` files for export and parity checks.

Formats, chosen by suffix:

- ``.npy``      one array: the model's single input (rows on the first axis).
- ``.npz``      several arrays: one per model input, named by the archive's keys, in order.
- ``.csv``      a table with a header row; categorical columns stay strings.
- ``.parquet``  a table (needs pyarrow).

A table reaches a scikit-learn model fitted on a DataFrame as one ONNX input per column
(``[rows, 1]``: float32 for numeric columns, bool for bool columns, string otherwise; see
:mod:`engine.training.export_sklearn`); for a model fitted on a plain array, or a torch module,
the table's columns become one ``[rows, columns]`` float32 matrix.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ExportError

__all__ = ["SAMPLE_SUFFIXES", "Sample", "read_sample"]

SAMPLE_SUFFIXES = (".npy", ".npz", ".csv", ".parquet")


@dataclass(frozen=True)
class Sample:
    """Either ``table`` (a pandas DataFrame) or ``arrays`` (name -> array), never both."""

    source: str
    table: Any | None = None
    arrays: dict[str, np.ndarray] | None = None

    @property
    def rows(self) -> int:
        if self.table is not None:
            return len(self.table)
        assert self.arrays is not None
        return int(next(iter(self.arrays.values())).shape[0])

    def as_matrix(self) -> np.ndarray:
        """The sample as one 2-D float32 matrix (tables: every column must be numeric)."""
        if self.arrays is not None:
            if len(self.arrays) != 1:
                raise ExportError(
                    f"sample {self.source!r} holds {len(self.arrays)} arrays "
                    f"({', '.join(self.arrays)}); this model takes one input"
                )
            return next(iter(self.arrays.values()))
        import pandas as pd

        frame = self.table
        assert frame is not None  # exactly one of table/arrays is set
        text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if text:
            raise ExportError(
                f"sample {self.source!r} has non-numeric columns {text}; this model "
                "takes one numeric matrix, so give numeric columns only (or .npy)"
            )
        matrix: np.ndarray = frame.to_numpy(dtype=np.float32)
        return matrix


def read_sample(path: str | Path) -> Sample:
    """Read a sample file; raises ExportError naming the file for unknown, unreadable or empty
    input."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"sample file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in SAMPLE_SUFFIXES:
        raise ExportError(
            f"sample file {str(path)!r} has an unknown suffix {suffix!r}; use one "
            f"of {', '.join(SAMPLE_SUFFIXES)}"
        )
    try:
        content = _load(path, suffix)
    except _UNREADABLE as exc:
        raise ExportError(_unreadable(path, suffix, exc)) from exc
    if isinstance(content, dict):
        if not content:
            raise ExportError(f"sample file {str(path)!r} holds no arrays")
        arrays = {key: _rows(array, path) for key, array in content.items()}
        sample = Sample(str(path), arrays=arrays)
    else:
        sample = Sample(str(path), table=content)
    if sample.rows == 0:
        raise ExportError(f"sample file {str(path)!r} has no rows")
    if sample.arrays is not None:
        sizes = {key: a.shape[0] for key, a in sample.arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ExportError(f"sample file {str(path)!r}: arrays differ in row count {sizes}")
    return sample


# What numpy, pandas and pyarrow raise for a file that is not what its suffix says (corrupt,
# truncated, empty, another format): the user's file is bad, not the engine.
_UNREADABLE = (ValueError, OSError, EOFError, zipfile.BadZipFile)


def _load(path: Path, suffix: str) -> dict[str, np.ndarray] | Any:
    """The raw content: name -> array for .npy/.npz, a DataFrame for tables."""
    if suffix in (".npy", ".npz"):
        # Our own handle: np.load leaks the one it opens when a .npz is not a valid zip.
        with open(path, "rb") as f:
            if suffix == ".npy":
                return {"input": np.load(f, allow_pickle=False)}
            with np.load(f, allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
    import pandas as pd

    return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)


def _unreadable(path: Path, suffix: str, exc: BaseException) -> str:
    if suffix in (".npy", ".npz") and "pickled" in str(exc):
        # numpy says "pickled" both for object arrays and for files that are not .npy at all.
        return (
            f"sample file {str(path)!r} is not a plain NumPy {suffix} file: it is corrupt or "
            "holds Python objects, which are not unpickled; save numeric arrays with "
            "numpy.save / numpy.savez, or text columns as .csv or .parquet"
        )
    lines = str(exc).strip().splitlines()
    detail = lines[0] if lines else "no details"
    return f"cannot read sample file {str(path)!r} as {suffix}: {type(exc).__name__}: {detail}"


def _rows(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 0:
        raise ExportError(f"sample file {str(path)!r} holds a scalar; need rows on axis 0")
    # Frameworks default to float32 weights; a float64 sample is compared in float32.
    return array.astype(np.float32) if array.dtype == np.float64 else array
