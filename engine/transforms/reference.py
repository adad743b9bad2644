"""The numpy reference implementation of a transform spec: the test oracle.

Vectorised over rows (loops only over features and steps). Semantics are those in
engine/transforms/spec.py; the ONNX export and the C++ core are tested against this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from engine.transforms.columns import F64, StringColumn, _pyarrow, prepare_columns
from engine.transforms.murmur3 import murmur3_bytes, murmur3_uint64
from engine.transforms.spec import (
    Bucketize,
    Clip,
    ColumnFeature,
    CrossFeature,
    Hash,
    Impute,
    Log1p,
    MinMaxScale,
    RobustScale,
    Standardize,
    Step,
    TransformSpec,
    Vocabulary,
)

__all__ = ["apply_reference", "apply_step", "cross_index", "encode", "hash_strings"]

I64 = npt.NDArray[np.int64]
# A value between steps: numeric, string, or (after an index step) a bucket index.
Value = Union[F64, StringColumn, "IndexValue"]


class IndexValue:
    """Bucket indices in [-1, cardinality) (-1 only for a vocabulary without OOV buckets)."""

    def __init__(self, index: I64, cardinality: int) -> None:
        self.index = index
        self.cardinality = cardinality


def hash_strings(col: StringColumn, seed: int) -> npt.NDArray[np.uint32]:
    return murmur3_bytes(col.offsets, col.data, seed)


def _numeric_step(step: Step, x: F64) -> F64:
    if isinstance(step, (Standardize, MinMaxScale, RobustScale)):
        offset, scale = step.affine()
        return (x - offset) / scale
    if isinstance(step, Log1p):
        return np.log1p(x)
    if isinstance(step, Clip):
        y = x
        if step.min is not None:
            y = np.where(y < step.min, float(step.min), y)
        if step.max is not None:
            y = np.where(y > step.max, float(step.max), y)
        return y
    if isinstance(step, Impute):
        missing = np.isnan(x)
        if step.replace_inf:
            missing |= np.isinf(x)
        return np.where(missing, float(step.value), x)
    raise TypeError(f"{step.op} is not a numeric step")  # unreachable for validated specs


def _string_step(step: Step, col: StringColumn) -> StringColumn | IndexValue:
    pa = _pyarrow()
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    if isinstance(step, Impute):
        arr = pc.if_else(pc.equal(col.array, ""), pa.scalar(step.value, pa.large_string()), col.array)
        return StringColumn(arr)
    if isinstance(step, Vocabulary):
        vocab = pa.array(step.vocabulary, type=pa.large_string())
        found = pc.index_in(col.array, value_set=vocab)
        index = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        if step.num_oov_buckets:
            unseen = index < 0
            oov = hash_strings(col, step.seed).astype(np.int64) % step.num_oov_buckets
            index = np.where(unseen, len(step.vocabulary) + oov, index)
        return IndexValue(index, step.cardinality)
    if isinstance(step, Hash):
        return IndexValue(hash_strings(col, step.seed).astype(np.int64) % step.num_buckets, step.cardinality)
    raise TypeError(f"{step.op} is not a string step")  # unreachable for validated specs


def apply_step(step: Step, value: Value) -> Value:
    """One step on a column's current value (numeric, string or index)."""
    if isinstance(value, StringColumn):
        return _string_step(step, value)
    assert isinstance(value, np.ndarray), "an index value takes no further steps"
    if isinstance(step, Bucketize):
        bounds = np.asarray(step.boundaries, dtype=np.float64)
        index = np.searchsorted(bounds, value, side="right").astype(np.int64)
        index[np.isnan(value)] = len(bounds) + 1
        return IndexValue(index, step.cardinality)
    with np.errstate(all="ignore"):  # IEEE results (inf, NaN) are the defined behaviour
        return _numeric_step(step, value)


def apply_steps(steps: Sequence[Step], value: Value) -> Value:
    for step in steps:
        value = apply_step(step, value)
    return value


def cross_index(cols: Sequence[StringColumn], num_buckets: int, seed: int) -> I64:
    h = hash_strings(cols[0], seed)
    for col in cols[1:]:
        key = (h.astype(np.uint64) << np.uint64(32)) | hash_strings(col, seed).astype(np.uint64)
        h = murmur3_uint64(key, seed)
    return h.astype(np.int64) % num_buckets


def encode(value: Value, encoding: str, out: npt.NDArray[np.float32]) -> None:
    """Write a feature's final value into its output block ``out`` [rows, width]."""
    if isinstance(value, IndexValue):
        if encoding == "onehot":
            out[...] = value.index[:, None] == np.arange(value.cardinality)[None, :]
        else:
            out[:, 0] = value.index
        return
    assert isinstance(value, np.ndarray)
    with np.errstate(over="ignore"):  # beyond float32's range rounds to +-inf, by definition
        out[:, 0] = value


def apply_reference(spec: TransformSpec, columns: Any) -> npt.NDArray[np.float32]:
    """Apply ``spec`` to raw columns (mapping name -> 1-D array, or a DataFrame).

    Returns float32 [rows, spec.width]. Raises InvalidInputError naming the column for a
    missing column, a wrong type or a length mismatch.
    """
    prepared, rows = prepare_columns(spec, columns)
    out = np.empty((rows, spec.width), dtype=np.float32)
    for (name, start, width), feat in zip(spec.layout(), spec.features):
        block = out[:, start : start + width]
        if isinstance(feat, CrossFeature):
            cols = [prepared[c] for c in feat.columns]
            index = cross_index(cols, feat.num_buckets, feat.seed)  # type: ignore[arg-type]
            encode(IndexValue(index, feat.num_buckets), feat.encoding, block)
            continue
        assert isinstance(feat, ColumnFeature)
        value = apply_steps(feat.steps, prepared[feat.column])
        last = feat.index_step
        encode(value, last.encoding if last is not None else "index", block)
    return out

