"""The transform spec: a versioned, validated, JSON-serialisable description of preprocessing.

A spec names the raw input columns (with their dtypes), a list of *features* and the output
tensor. Each feature becomes a block of float32 columns in the output, in list order; the
blocks concatenated give the model input ``[rows, width]``.

JSON, schema version 1::

    {
      "schema_version": 1,
      "inputs": [{"name": "age", "dtype": "float64"}, {"name": "city", "dtype": "string"}],
      "features": [
        {"name": "age", "column": "age", "steps": [
            {"op": "impute", "strategy": "median", "value": 37.0, "replace_inf": false},
            {"op": "standardize", "mean": 0.1, "std": 1.3}]},
        {"name": "city", "column": "city", "steps": [
            {"op": "vocabulary", "vocabulary": ["paris", "rome"], "num_oov_buckets": 1,
             "seed": 0, "encoding": "onehot"}]},
        {"name": "city_x_dev", "cross": ["city", "device"], "num_buckets": 64, "seed": 0,
         "encoding": "index"}
      ],
      "output": {"name": "features"}
    }

Semantics (the numpy reference, the ONNX export and the C++ core all implement exactly this).
Numeric columns (float32, float64, int64) are widened to float64; every numeric step computes
in float64 and the output is rounded to float32 once at the end.

- ``standardize``   ``(x - mean) / std``                        std finite and > 0
- ``min_max_scale`` ``(x - min) / (max - min)``                 max > min
- ``robust_scale``  ``(x - median) / iqr``                      iqr finite and > 0
- ``log1p``         ``log(1 + x)``; x < -1 gives NaN, x = -1 gives -inf
- ``clip``          bounds ``min`` and/or ``max``; NaN stays NaN
- ``impute``        numeric: NaN (and +-inf when ``replace_inf``) becomes ``value``;
                    string: the empty string (missing values arrive as "") becomes ``value``.
                    ``strategy`` (mean, median, constant, most_frequent) records how the value
                    was fitted.
- ``bucketize``     index = number of ``boundaries`` <= x, in ``[0, B]``; NaN goes to the
                    extra bucket ``B + 1``; cardinality ``B + 2``.
- ``vocabulary``    index of the string in ``vocabulary``; an unseen string goes to bucket
                    ``V + murmur3(utf8, seed) % num_oov_buckets`` or, with no OOV buckets, to
                    index -1 (all zeros in one-hot); cardinality ``V + num_oov_buckets``.
- ``hash``          ``murmur3(utf8, seed) % num_buckets``.
- cross feature     ``h = murmur3(s1, seed)``; for each further column
                    ``h = murmur3(uint64(h) << 32 | murmur3(s_i, seed), seed)`` over the 8
                    little-endian bytes of the key; bucket ``h % num_buckets``.

``murmur3`` is MurmurHash3 x86 32-bit (Austin Appleby), unsigned, with the step's ``seed``
(default 0), identical to ONNX Runtime's ``com.microsoft.MurmurHash3`` with ``positive=1``.

A numeric chain may end in ``bucketize``; a string chain must end in ``vocabulary`` or ``hash``.
Index-producing steps take ``encoding``: ``"index"`` (one float column holding the index) or
``"onehot"`` (``cardinality`` columns). A numeric feature is one column.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import InvalidConfigError

__all__ = [
    "NUMERIC_DTYPES",
    "SCHEMA_VERSION",
    "Bucketize",
    "Clip",
    "ColumnFeature",
    "CrossFeature",
    "Feature",
    "Hash",
    "Impute",
    "InputColumn",
    "Log1p",
    "MinMaxScale",
    "RobustScale",
    "Standardize",
    "Step",
    "TransformSpec",
    "Vocabulary",
    "feature_width",
    "step_from_dict",
]

SCHEMA_VERSION = 1
NUMERIC_DTYPES = ("float32", "float64", "int64")
_DTYPES = (*NUMERIC_DTYPES, "string")
_ENCODINGS = ("index", "onehot")
_NUMERIC_IMPUTE = ("mean", "median", "constant", "most_frequent")
_STRING_IMPUTE = ("constant", "most_frequent")
_UINT32_LIMIT = 2**32
# Index-encoded features hold the bucket as a float32: keep every index exactly representable.
MAX_INDEX = 1 << 24
# One-hot blocks wider than this are almost certainly a mistake (the output is dense).
MAX_CARDINALITY = 1 << 20

Encoding = Literal["index", "onehot"]


def _fail(where: str, message: str) -> InvalidConfigError:
    return InvalidConfigError(f"transform spec: {where}: {message}")


def _finite(where: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, f"{name} must be a number; was {value!r}")
    if not math.isfinite(value):
        raise _fail(where, f"{name} must be finite; was {value!r}")
    return float(value)


def _count(where: str, name: str, value: Any, minimum: int, maximum: int = MAX_CARDINALITY) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _fail(where, f"{name} must be an integer in [{minimum}, {maximum}]; was {value!r}")
    return value


def _seed(where: str, value: Any) -> int:
    return _count(where, "seed", value, 0, _UINT32_LIMIT - 1)


def _encoding(where: str, value: Any) -> Encoding:
    if value not in _ENCODINGS:
        raise _fail(where, f"encoding must be one of {list(_ENCODINGS)}; was {value!r}")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True)
class InputColumn:
    """A raw input column: its name (the graph input name) and element type."""

    name: str
    dtype: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _fail("inputs", f"a column name must be a non-empty string; was {self.name!r}")
        if self.dtype not in _DTYPES:
            raise _fail(
                f"input {self.name!r}", f"dtype must be one of {list(_DTYPES)}; was {self.dtype!r}"
            )

    @property
    def is_string(self) -> bool:
        return self.dtype == "string"


@dataclass(frozen=True)
class Standardize:
    mean: float
    std: float
    op: Literal["standardize"] = "standardize"

    def validate(self, where: str) -> None:
        _finite(where, "mean", self.mean)
        if _finite(where, "std", self.std) <= 0:
            raise _fail(where, f"std must be > 0; was {self.std!r}")

    def affine(self) -> tuple[float, float]:
        """(offset, scale) with y = (x - offset) / scale."""
        return float(self.mean), float(self.std)


@dataclass(frozen=True)
class MinMaxScale:
    min: float
    max: float
    op: Literal["min_max_scale"] = "min_max_scale"

    def validate(self, where: str) -> None:
        lo, hi = _finite(where, "min", self.min), _finite(where, "max", self.max)
        if not hi > lo or not math.isfinite(hi - lo):
            raise _fail(where, f"max must be > min (finite range); was min={lo!r}, max={hi!r}")

    def affine(self) -> tuple[float, float]:
        return float(self.min), float(self.max) - float(self.min)


@dataclass(frozen=True)
class RobustScale:
    median: float
    iqr: float
    op: Literal["robust_scale"] = "robust_scale"

    def validate(self, where: str) -> None:
        _finite(where, "median", self.median)
        if _finite(where, "iqr", self.iqr) <= 0:
            raise _fail(where, f"iqr must be > 0; was {self.iqr!r}")

    def affine(self) -> tuple[float, float]:
        return float(self.median), float(self.iqr)


@dataclass(frozen=True)
class Log1p:
    op: Literal["log1p"] = "log1p"

    def validate(self, where: str) -> None:
        """Nothing to check: log1p has no parameters."""


@dataclass(frozen=True)
class Clip:
    min: float | None = None
    max: float | None = None
    op: Literal["clip"] = "clip"

    def validate(self, where: str) -> None:
        if self.min is None and self.max is None:
            raise _fail(where, "clip needs min, max or both")
        lo = None if self.min is None else _finite(where, "min", self.min)
        hi = None if self.max is None else _finite(where, "max", self.max)
        if lo is not None and hi is not None and lo > hi:
            raise _fail(where, f"min must be <= max; was min={lo!r}, max={hi!r}")


@dataclass(frozen=True)
class Impute:
    strategy: str
    value: float | str
    replace_inf: bool = False
    op: Literal["impute"] = "impute"

    def validate(self, where: str) -> None:
        if self.strategy not in _NUMERIC_IMPUTE:
            raise _fail(
                where, f"strategy must be one of {list(_NUMERIC_IMPUTE)}; was {self.strategy!r}"
            )
        if not isinstance(self.replace_inf, bool):
            raise _fail(where, f"replace_inf must be true or false; was {self.replace_inf!r}")

    def validate_for(self, where: str, is_string: bool) -> None:
        if is_string:
            if self.strategy not in _STRING_IMPUTE:
                raise _fail(
                    where,
                    f"a string column can only impute with {list(_STRING_IMPUTE)}; "
                    f"was {self.strategy!r}",
                )
            if not isinstance(self.value, str):
                raise _fail(where, f"value must be a string for a string column; was {self.value!r}")
        else:
            _finite(where, "value", self.value)


@dataclass(frozen=True)
class Bucketize:
    boundaries: tuple[float, ...]
    encoding: Encoding = "index"
    op: Literal["bucketize"] = "bucketize"

    def validate(self, where: str) -> None:
        if not self.boundaries:
            raise _fail(where, "boundaries must not be empty")
        values = [_finite(where, "a boundary", b) for b in self.boundaries]
        for a, b in itertools.pairwise(values):
            if not a < b:
                raise _fail(where, f"boundaries must be strictly increasing; {a!r} then {b!r}")
        _encoding(where, self.encoding)
        _count(where, "the bucket count", len(values) + 2, 3)

    @property
    def cardinality(self) -> int:
        return len(self.boundaries) + 2


@dataclass(frozen=True)
class Vocabulary:
    vocabulary: tuple[str, ...]
    num_oov_buckets: int = 1
    seed: int = 0
    encoding: Encoding = "onehot"
    op: Literal["vocabulary"] = "vocabulary"

    def validate(self, where: str) -> None:
        for token in self.vocabulary:
            if not isinstance(token, str):
                raise _fail(where, f"vocabulary entries must be strings; found {token!r}")
        if len(set(self.vocabulary)) != len(self.vocabulary):
            seen: set[str] = set()
            dup = next(t for t in self.vocabulary if t in seen or seen.add(t))  # type: ignore[func-returns-value]
            raise _fail(where, f"vocabulary has a duplicate entry {dup!r}")
        _count(where, "num_oov_buckets", self.num_oov_buckets, 0)
        _seed(where, self.seed)
        _encoding(where, self.encoding)
        _count(where, "vocabulary size + num_oov_buckets", self.cardinality, 1)

    @property
    def cardinality(self) -> int:
        return len(self.vocabulary) + self.num_oov_buckets


@dataclass(frozen=True)
class Hash:
    num_buckets: int
    seed: int = 0
    encoding: Encoding = "index"
    op: Literal["hash"] = "hash"

    def validate(self, where: str) -> None:
        _encoding(where, self.encoding)
        limit = MAX_INDEX if self.encoding == "index" else MAX_CARDINALITY
        _count(where, "num_buckets", self.num_buckets, 1, limit)
        _seed(where, self.seed)

    @property
    def cardinality(self) -> int:
        return self.num_buckets


Step = (Standardize | MinMaxScale | RobustScale | Log1p | Clip | Impute | Bucketize | Vocabulary
        | Hash)
IndexStep = Bucketize | Vocabulary | Hash
_NUMERIC_ONLY = (Standardize, MinMaxScale, RobustScale, Log1p, Clip, Bucketize)
_STRING_ONLY = (Vocabulary, Hash)
_INDEX_STEPS = (Bucketize, Vocabulary, Hash)

_STEP_TYPES: dict[str, type[Any]] = {
    "standardize": Standardize,
    "min_max_scale": MinMaxScale,
    "robust_scale": RobustScale,
    "log1p": Log1p,
    "clip": Clip,
    "impute": Impute,
    "bucketize": Bucketize,
    "vocabulary": Vocabulary,
    "hash": Hash,
}
_STEP_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # op: (required keys, optional keys), besides "op"
    "standardize": ({"mean", "std"}, set()),
    "min_max_scale": ({"min", "max"}, set()),
    "robust_scale": ({"median", "iqr"}, set()),
    "log1p": (set(), set()),
    "clip": (set(), {"min", "max"}),
    "impute": ({"strategy", "value"}, {"replace_inf"}),
    "bucketize": ({"boundaries"}, {"encoding"}),
    "vocabulary": ({"vocabulary"}, {"num_oov_buckets", "seed", "encoding"}),
    "hash": ({"num_buckets"}, {"seed", "encoding"}),
}


def _check_keys(where: str, data: Mapping[str, Any], required: set[str], optional: set[str]) -> None:
    missing = sorted(required - data.keys())
    if missing:
        raise _fail(where, f"missing field(s) {missing}")
    unknown = sorted(data.keys() - required - optional)
    if unknown:
        raise _fail(where, f"unknown field(s) {unknown}; allowed: {sorted(required | optional)}")


def step_from_dict(where: str, data: Any) -> Step:
    """Build and validate one step from its JSON object."""
    if not isinstance(data, Mapping):
        raise _fail(where, f"a step must be an object; was {data!r}")
    op = data.get("op")
    if op not in _STEP_TYPES:
        raise _fail(where, f"op must be one of {sorted(_STEP_TYPES)}; was {op!r}")
    where = f"{where} ({op})"
    required, optional = _STEP_FIELDS[op]
    _check_keys(where, data, required | {"op"}, optional)
    kwargs = {k: v for k, v in data.items() if k != "op"}
    for key in ("boundaries", "vocabulary"):
        if key in kwargs:
            if isinstance(kwargs[key], (str, bytes)) or not isinstance(kwargs[key], Sequence):
                raise _fail(where, f"{key} must be a list; was {kwargs[key]!r}")
            kwargs[key] = tuple(kwargs[key])
    step: Step = _STEP_TYPES[op](**kwargs)
    step.validate(where)
    return step


def _step_to_dict(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"op": step.op}
    for key in sorted(_STEP_FIELDS[step.op][0] | _STEP_FIELDS[step.op][1]):
        value = getattr(step, key)
        if value is None:
            continue
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


@dataclass(frozen=True)
class ColumnFeature:
    """A chain of steps over one input column."""

    name: str
    column: str
    steps: tuple[Step, ...]

    @property
    def index_step(self) -> IndexStep | None:
        last = self.steps[-1] if self.steps else None
        return last if isinstance(last, _INDEX_STEPS) else None

    def width(self) -> int:
        last = self.index_step
        return last.cardinality if last is not None and last.encoding == "onehot" else 1


@dataclass(frozen=True)
class CrossFeature:
    """A hashed combination of two or more string columns."""

    name: str
    columns: tuple[str, ...]
    num_buckets: int
    seed: int = 0
    encoding: Encoding = "index"

    @property
    def cardinality(self) -> int:
        return self.num_buckets

    def width(self) -> int:
        return self.num_buckets if self.encoding == "onehot" else 1


Feature = ColumnFeature | CrossFeature


def feature_width(feature: Feature) -> int:
    """Number of float32 output columns the feature contributes."""
    return feature.width()


def _validate_chain(where: str, column: InputColumn, steps: Sequence[Step]) -> None:
    is_string = column.is_string
    for i, step in enumerate(steps):
        at = f"{where} step {i} ({step.op})"
        if i < len(steps) - 1 and isinstance(step, _INDEX_STEPS):
            raise _fail(at, f"{step.op} produces an index and must be the last step")
        if isinstance(step, Impute):
            step.validate_for(at, is_string)
        elif is_string and isinstance(step, _NUMERIC_ONLY):
            raise _fail(at, f"needs a numeric column but {column.name!r} is a string column")
        elif not is_string and isinstance(step, _STRING_ONLY):
            raise _fail(
                at, f"needs a string column but {column.name!r} is a {column.dtype} column"
            )
    if is_string and not (steps and isinstance(steps[-1], _STRING_ONLY)):
        raise _fail(
            where,
            f"string column {column.name!r} must end in a vocabulary or hash step "
            "(the output is numeric)",
        )


@dataclass(frozen=True)
class TransformSpec:
    """A validated transform spec; construct from JSON with :meth:`from_json`/:meth:`from_dict`.

    Invariants (checked on construction): input names are unique; every feature reads declared
    inputs; feature names are unique; each chain is type-correct (see the module docstring).
    """

    inputs: tuple[InputColumn, ...]
    features: tuple[Feature, ...]
    output_name: str = "features"
    schema_version: int = field(default=SCHEMA_VERSION)

    def __post_init__(self) -> None:
        if self.schema_version != SCHEMA_VERSION:
            raise _fail(
                "schema_version",
                f"unsupported schema version {self.schema_version!r}; this engine reads "
                f"{SCHEMA_VERSION}",
            )
        if not isinstance(self.output_name, str) or not self.output_name:
            raise _fail("output", f"name must be a non-empty string; was {self.output_name!r}")
        by_name: dict[str, InputColumn] = {}
        for col in self.inputs:
            if col.name in by_name:
                raise _fail("inputs", f"duplicate input column {col.name!r}")
            by_name[col.name] = col
        if not self.features:
            raise _fail("features", "at least one feature is required")
        seen: set[str] = set()
        for feat in self.features:
            where = f"feature {feat.name!r}"
            if not isinstance(feat.name, str) or not feat.name:
                raise _fail("features", f"a feature name must be a non-empty string; was {feat.name!r}")
            if feat.name in seen:
                raise _fail(where, "duplicate feature name")
            seen.add(feat.name)
            if isinstance(feat, ColumnFeature):
                if feat.column not in by_name:
                    raise _fail(where, f"column {feat.column!r} is not a declared input")
                _validate_chain(where, by_name[feat.column], feat.steps)
            else:
                _validate_cross(where, feat, by_name)
        if self.output_name in by_name:
            raise _fail("output", f"name {self.output_name!r} clashes with an input column")

    # --- derived layout -------------------------------------------------------------------
    @property
    def width(self) -> int:
        """Columns of the output tensor [rows, width]."""
        return sum(f.width() for f in self.features)

    def input(self, name: str) -> InputColumn:
        for col in self.inputs:
            if col.name == name:
                return col
        raise KeyError(name)

    def layout(self) -> list[tuple[str, int, int]]:
        """(feature name, first output column, width) per feature, in output order."""
        out, start = [], 0
        for f in self.features:
            out.append((f.name, start, f.width()))
            start += f.width()
        return out

    # --- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        features: list[dict[str, Any]] = []
        for f in self.features:
            if isinstance(f, ColumnFeature):
                features.append(
                    {"name": f.name, "column": f.column, "steps": [_step_to_dict(s) for s in f.steps]}
                )
            else:
                features.append(
                    {
                        "name": f.name,
                        "cross": list(f.columns),
                        "num_buckets": f.num_buckets,
                        "seed": f.seed,
                        "encoding": f.encoding,
                    }
                )
        return {
            "schema_version": self.schema_version,
            "inputs": [{"name": c.name, "dtype": c.dtype} for c in self.inputs],
            "features": features,
            "output": {"name": self.output_name},
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        # allow_nan=False: a spec with NaN would not be valid JSON (validation forbids it anyway).
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    @classmethod
    def from_json(cls, text: str | bytes) -> TransformSpec:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail("json", f"not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Any) -> TransformSpec:
        if not isinstance(data, Mapping):
            raise _fail("top level", f"must be an object; was {type(data).__name__}")
        _check_keys("top level", data, {"schema_version", "inputs", "features"}, {"output"})
        version = data["schema_version"]
        if version != SCHEMA_VERSION:
            raise _fail(
                "schema_version",
                f"unsupported schema version {version!r}; this engine reads {SCHEMA_VERSION}",
            )
        inputs = tuple(_input_from_dict(c) for c in _list("inputs", data["inputs"]))
        features = tuple(
            _feature_from_dict(i, f) for i, f in enumerate(_list("features", data["features"]))
        )
        output = data.get("output", {"name": "features"})
        if not isinstance(output, Mapping):
            raise _fail("output", f"must be an object; was {output!r}")
        _check_keys("output", output, {"name"}, set())
        return cls(inputs=inputs, features=features, output_name=output["name"])


def _list(where: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"must be a list; was {type(value).__name__}")
    return value


def _input_from_dict(data: Any) -> InputColumn:
    if not isinstance(data, Mapping):
        raise _fail("inputs", f"each input must be an object; was {data!r}")
    _check_keys(f"input {data.get('name')!r}", data, {"name", "dtype"}, set())
    return InputColumn(name=data["name"], dtype=data["dtype"])


def _feature_from_dict(i: int, data: Any) -> Feature:
    if not isinstance(data, Mapping):
        raise _fail(f"features[{i}]", f"must be an object; was {data!r}")
    where = f"feature {data.get('name', i)!r}"
    if "cross" in data:
        _check_keys(where, data, {"name", "cross", "num_buckets"}, {"seed", "encoding"})
        cols = data["cross"]
        if not isinstance(cols, list) or not all(isinstance(c, str) for c in cols):
            raise _fail(where, f"cross must be a list of column names; was {cols!r}")
        return CrossFeature(
            name=data["name"],
            columns=tuple(cols),
            num_buckets=data["num_buckets"],
            seed=data.get("seed", 0),
            encoding=data.get("encoding", "index"),
        )
    _check_keys(where, data, {"name", "column", "steps"}, set())
    steps = tuple(
        step_from_dict(f"{where} step {j}", s) for j, s in enumerate(_list(where, data["steps"]))
    )
    return ColumnFeature(name=data["name"], column=data["column"], steps=steps)


def _validate_cross(where: str, feat: CrossFeature, by_name: Mapping[str, InputColumn]) -> None:
    if len(feat.columns) < 2:
        raise _fail(where, f"a cross needs at least two columns; was {list(feat.columns)}")
    for name in feat.columns:
        col = by_name.get(name)
        if col is None:
            raise _fail(where, f"column {name!r} is not a declared input")
        if not col.is_string:
            raise _fail(where, f"cross columns must be string columns; {name!r} is {col.dtype}")
    _encoding(where, feat.encoding)
    limit = MAX_INDEX if feat.encoding == "index" else MAX_CARDINALITY
    _count(where, "num_buckets", feat.num_buckets, 1, limit)
    _seed(where, feat.seed)
