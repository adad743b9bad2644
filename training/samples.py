"""Reading ``--sample DATA`` files for export and parity checks.

Formats, chosen by suffix:

- ``.npy``      one array: the model's single input (rows on the first axis).
- ``.npz``      several arrays: one per model input, named by the archive's keys, in order.
- ``.csv``      a table with a header row; categorical columns stay strings.
- ``.parquet``  a table (needs pyarrow).

A table reaches a scikit-learn pipeline fitted on a DataFrame as one ONNX input per column
(``[rows, 1]``: float32 for numeric columns, string otherwise); for a model fitted on a plain
array, or a torch module, the table's columns become one ``[rows, columns]`` float32 matrix.
"""

from __future__ import annotations

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
    """Read a sample file; raises ExportError naming the file for unknown or empty input."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"sample file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        sample = Sample(str(path), arrays={"input": _rows(np.load(path, allow_pickle=False), path)})
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: _rows(archive[key], path) for key in archive.files}
        if not arrays:
            raise ExportError(f"sample file {str(path)!r} holds no arrays")
        sample = Sample(str(path), arrays=arrays)
    elif suffix in (".csv", ".parquet"):
        import pandas as pd

        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
        sample = Sample(str(path), table=frame)
    else:
        raise ExportError(
            f"sample file {str(path)!r} has an unknown suffix {suffix!r}; use one "
            f"of {', '.join(SAMPLE_SUFFIXES)}"
        )
    if sample.rows == 0:
        raise ExportError(f"sample file {str(path)!r} has no rows")
    if sample.arrays is not None:
        sizes = {key: a.shape[0] for key, a in sample.arrays.items()}
        if len(set(sizes.values())) != 1:
            raise ExportError(f"sample file {str(path)!r}: arrays differ in row count {sizes}")
    return sample


def _rows(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim == 0:
        raise ExportError(f"sample file {str(path)!r} holds a scalar; need rows on axis 0")
    # Frameworks default to float32 weights; a float64 sample is compared in float32.
    return array.astype(np.float32) if array.dtype == np.float64 else array
