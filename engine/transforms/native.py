"""Apply a transform spec with the C++ core (engine._core.TransformPlan).

The spec is lowered once to the core's plain structs (csrc/transforms.h); applying hands the
core numpy buffers: numeric columns as they are (float32, float64, int64); string columns that
are object arrays as they are (the core reads each str's cached UTF-8, or a bytes' contents
after checking they are UTF-8, in place: no copy, no per-value Python call), any other string
column as the Arrow (offsets, bytes) pair of a large-string array. The core computes with the
GIL released.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.transforms.columns import StringColumn, as_mapping, prepare_columns
from engine.transforms.spec import (
    Bucketize,
    Clip,
    ColumnFeature,
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

__all__ = ["NativeTransform", "apply", "compile_native"]


def _core() -> Any:
    from engine import _core

    return _core


def _encoding(core: Any, value: str) -> Any:
    return core.TransformEncoding.ONEHOT if value == "onehot" else core.TransformEncoding.INDEX


def _lower_step(core: Any, step: Step, is_string: bool) -> Any:
    out = core.TransformStep()
    kind = core.TransformStepKind
    if isinstance(step, (Standardize, MinMaxScale, RobustScale)):
        out.kind = kind.AFFINE
        out.offset, out.scale = step.affine()
    elif isinstance(step, Log1p):
        out.kind = kind.LOG1P
    elif isinstance(step, Clip):
        out.kind = kind.CLIP
        out.min = -np.inf if step.min is None else float(step.min)
        out.max = np.inf if step.max is None else float(step.max)
    elif isinstance(step, Impute) and is_string:
        out.kind = kind.IMPUTE_STRING
        out.string_value = str(step.value)
    elif isinstance(step, Impute):
        out.kind = kind.IMPUTE_NUMERIC
        out.value = float(step.value)
        out.replace_inf = step.replace_inf
    elif isinstance(step, Bucketize):
        out.kind = kind.BUCKETIZE
        out.boundaries = [float(b) for b in step.boundaries]
        out.encoding = _encoding(core, step.encoding)
    elif isinstance(step, Vocabulary):
        out.kind = kind.VOCABULARY
        out.vocabulary = list(step.vocabulary)
        out.num_buckets = step.num_oov_buckets
        out.seed = step.seed
        out.encoding = _encoding(core, step.encoding)
    else:
        assert isinstance(step, Hash)
        out.kind = kind.HASH
        out.num_buckets = step.num_buckets
        out.seed = step.seed
        out.encoding = _encoding(core, step.encoding)
    return out


class NativeTransform:
    """A spec compiled for the C++ core; :meth:`apply` is thread-safe."""

    def __init__(self, spec: TransformSpec) -> None:
        core = _core()
        self.spec = spec
        index = {c.name: i for i, c in enumerate(spec.inputs)}
        features = []
        for feat in spec.features:
            f = core.TransformFeature()
            f.name = feat.name
            if isinstance(feat, ColumnFeature):
                is_string = spec.input(feat.column).is_string
                f.columns = [index[feat.column]]
                f.steps = [_lower_step(core, s, is_string) for s in feat.steps]
            else:
                f.cross = True
                f.columns = [index[c] for c in feat.columns]
                f.cross_buckets = feat.num_buckets
                f.cross_seed = feat.seed
                f.cross_encoding = _encoding(core, feat.encoding)
            features.append(f)
        inputs = [core.TransformInput(c.name, c.dtype) for c in spec.inputs]
        self._plan = core.TransformPlan(inputs, features)
        assert self._plan.width == spec.width

    def apply(self, columns: Any, *, max_threads: int = 0) -> npt.NDArray[np.float32]:
        """float32 [rows, spec.width] from raw columns (mapping or DataFrame).

        Same input rules and errors as :func:`engine.transforms.apply_reference`;
        ``max_threads`` caps the core's threads (0: all cores, when the batch is large).
        """
        mapping = as_mapping(columns)
        direct = {
            c.name: arr
            for c in self.spec.inputs
            if c.is_string and c.name in mapping
            and (arr := _object_array(mapping[c.name])) is not None
        }
        prepared, rows = prepare_columns(self.spec, mapping, widen=False, given=direct)
        args: list[Any] = []
        for col in self.spec.inputs:
            value = prepared[col.name]
            if isinstance(value, StringColumn):
                args.append((np.ascontiguousarray(value.offsets), value.data))
            else:
                args.append(value)
        out: npt.NDArray[np.float32] = self._plan.apply(args, rows, max_threads)
        return out


def _object_array(values: Any) -> npt.NDArray[np.object_] | None:
    """``values`` as a 1-D object ndarray when it already is one (or an object Series)."""
    if type(values).__module__.startswith("pandas") and getattr(values, "dtype", None) == object:
        values = values.to_numpy()
    if isinstance(values, np.ndarray) and values.dtype == object:
        if values.ndim == 2 and values.shape[1] == 1:
            return values[:, 0]
        if values.ndim == 1:
            return values
    return None


def compile_native(spec: TransformSpec) -> NativeTransform:
    """Lower ``spec`` to the core once, for repeated :meth:`NativeTransform.apply` calls."""
    return NativeTransform(spec)


_CACHE: OrderedDict[int, NativeTransform] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 16


def apply(spec: TransformSpec, columns: Any, *, max_threads: int = 0) -> npt.NDArray[np.float32]:
    """Apply ``spec`` with the C++ core: float32 [rows, spec.width].

    Raises InvalidInputError naming the column for a missing column, a wrong type or a length
    mismatch. Compiled plans of the last few specs are cached (by identity).
    """
    with _CACHE_LOCK:
        native = _CACHE.get(id(spec))
        if native is None or native.spec is not spec:
            native = NativeTransform(spec)
            _CACHE[id(spec)] = native
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        _CACHE.move_to_end(id(spec))
    return native.apply(columns, max_threads=max_threads)
